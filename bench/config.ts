import { randomBytes } from 'node:crypto';
import type { OtpModuleOptionsInput } from '../src/otp/otp.options.js';

function positiveNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
}

/** Knobs (environment variables), with the defaults the README's figures were taken with. */
export const settings = {
  /** Each figure is measured this many times; the median is reported. */
  repeats: Math.round(positiveNumber('BENCH_REPEATS', 3)),
  /** Seconds of each autocannon run. */
  loadSeconds: positiveNumber('BENCH_SECONDS', 5),
  /** Seconds of each bcrypt ceiling measurement. */
  ceilingSeconds: positiveNumber('BENCH_CEILING_SECONDS', 3),
  /** Sequential send+verify pairs per growth measurement. */
  growthPairs: Math.round(positiveNumber('BENCH_GROWTH_PAIRS', 400)),
  /** Rows of other destinations for the growth figure. */
  historyRows: Math.round(positiveNumber('BENCH_HISTORY_ROWS', 1_000_000)),
  /** Rows of the destination under test for the growth figure. */
  destinationRows: Math.round(positiveNumber('BENCH_DESTINATION_ROWS', 10_000)),
};

export const BCRYPT_COST = 10;
export const CONCURRENCIES = [1, 16, 64] as const;
/** Connections for the bcrypt verify load: several per pool thread, so the pool never idles. */
export const BCRYPT_CONNECTIONS = 16;
/** bcrypt.compare calls kept in flight for the ceiling. */
export const CEILING_IN_FLIGHT = 32;

/**
 * Policy that stays out of the way of load: no per-IP throttle (all traffic comes from 127.0.0.1),
 * no resend cooldown or lockout, no send caps. Without this, the first 429 would end every run:
 * the growth figure sends to one destination hundreds of times, and the throttle allows 20
 * requests a minute per IP by default. Everything else is the module's default.
 */
const outOfTheWay: OtpModuleOptionsInput = {
  throttleLimit: 1_000_000_000,
  resendCooldownSeconds: [0],
  lockoutStepSeconds: [0],
  maxSendsPerHour: 1_000_000_000,
  maxSendsPerDay: 1_000_000_000,
  // Codes minted at the start of a section must still be valid at its end.
  ttlSeconds: 3600,
};

/** Section 1: bcrypt at the default cost; many wrong guesses per code, each one evaluated. */
export const bcryptApp: OtpModuleOptionsInput = {
  ...outOfTheWay,
  hasher: 'bcrypt',
  bcryptCost: BCRYPT_COST,
  // attempts_used is a smallint: up to 32767 evaluated guesses per code.
  maxAttempts: 30_000,
};

/** Sections 2-4: the HMAC hasher, default attempts (3). */
export const hmacApp: OtpModuleOptionsInput = {
  ...outOfTheWay,
  hasher: 'hmac',
  hmacSecret: randomBytes(32).toString('hex'),
};

/** libuv's pool size for this process and the app process (which inherits the environment). */
export const threadPoolSize = (): string => process.env.UV_THREADPOOL_SIZE ?? '4 (default)';
