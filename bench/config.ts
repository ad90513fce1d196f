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
  /** Rows of one day removed by each layout's retention (section 7). */
  retentionRows: Math.round(positiveNumber('BENCH_RETENTION_ROWS', 1_000_000)),
};

/** Sections to run (BENCH_SECTIONS, comma-separated); all by default. */
export const SECTIONS = ['hash', 'throughput', 'growth', 'side', 'slow', 'retention'] as const;
export type Section = (typeof SECTIONS)[number];
export function sectionEnabled(section: Section): boolean {
  const wanted = process.env.BENCH_SECTIONS;
  if (!wanted) return true;
  return wanted.split(',').some((s) => s.trim() === section);
}

export const BCRYPT_COST = 10;
export const CONCURRENCIES = [1, 16, 64] as const;
/** Connections for the bcrypt verify load: several per pool thread, so the pool never idles. */
export const BCRYPT_CONNECTIONS = 16;
/**
 * bcrypt.compare calls kept in flight for the ceiling: as many as the verify load has requests in
 * flight, and several per pool thread, so the pool never idles.
 */
export const CEILING_IN_FLIGHT = 16;
/** Concurrent requests of the side-by-side runs (section 5). */
export const CONCURRENCY_SIDE_BY_SIDE = 16;
/** Connections of the slow-provider and memory runs (section 6). */
export const SLOW_CONNECTIONS = 64;
/** How long the slow webhook takes to answer (real SMS APIs: 200-800 ms). */
export const SLOW_WEBHOOK_MS = 300;

/**
 * Policy that stays out of the way of load: no per-IP throttle (all traffic comes from 127.0.0.1),
 * no resend cooldown or lockout, no send caps. Without this, the first 429 would end every run:
 * the growth figure sends to one destination hundreds of times, and the throttle allows 20
 * requests a minute per IP by default. Everything else is the module's default.
 */
const outOfTheWay: OtpModuleOptionsInput = {
  throttleLimit: 1_000_000_000,
  // The in-memory throttle store keeps one expiry a hit and filters a key's list on every request.
  // A real client's list holds at most `throttleLimit` (20) hits; each of the fetch client's
  // connections (its own loopback address, one key) at ~100 req/s would hold 60 s x 100 of them,
  // a cost no real client causes: a 1 s window keeps the store doing its per-request work without
  // that artifact. autocannon's connections all come from 127.0.0.1: one key, a list of a second's
  // requests.
  throttleTtlSeconds: 1,
  resendCooldownSeconds: [0],
  lockoutStepSeconds: [0],
  // No caps, rather than huge ones: a cap's probe reads the send at position `cap` of its window,
  // so a cap of 1e9 walked every send of the day (10,000 for the growth section's destination),
  // a cost a real cap (the default is 10) bounds at that many rows.
  maxSendsPerHour: Infinity,
  maxSendsPerDay: Infinity,
  // Codes minted at the start of a section must still be valid at its end.
  ttlSeconds: 3600,
  // BENCH_VERIFY_CACHE_SIZE=0 measures the two-statement verify (a code sent by another instance).
  ...(process.env.BENCH_VERIFY_CACHE_SIZE
    ? { verifyCacheSize: Number(process.env.BENCH_VERIFY_CACHE_SIZE) }
    : {}),
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
