import type { ThrottlerStorage } from '@nestjs/throttler';
import { isSupportedCountry, type CountryCode } from 'libphonenumber-js';
import type { DataSource } from 'typeorm';
import type { OtpProvider } from './delivery/otp-provider.interface.js';
import type { OtpChannel } from './otp.types.js';

/**
 * Every option of the module, with its default, in one place. Hosts pass a partial object to
 * `OtpModule.forRoot()` / the factory of `forRootAsync()`; it is merged once over these defaults.
 */
export class OtpModuleOptions {
  /** Digits in a code, 4-10. Default `6`. */
  codeLength = 6;
  /** Seconds a code stays valid after it is sent. Default `300`. */
  ttlSeconds = 300;
  /** Wrong or right guesses evaluated per code. Default `3`. */
  maxAttempts = 3;
  /**
   * Wait before the 2nd, 3rd, ... send of a flow (the sends for a destination and purpose since its
   * last successful verify); the last value repeats. Default `[30, 60, 120, 300]`.
   */
  resendCooldownSeconds: number[] = [30, 60, 120, 300];
  /**
   * Progressive lockout: the wait before the next send after the 1st, 2nd, ... exhausted code of a
   * destination in the last 24 h (and since its last successful verify), counted from the moment the
   * code was exhausted; the last value repeats. Default `[30, 60, 300, 900, 3600]`.
   */
  lockoutStepSeconds: number[] = [30, 60, 300, 900, 3600];
  /** Sends per destination (all purposes) in any 60 minutes. Default `5`. */
  maxSendsPerHour = 5;
  /** Sends per destination (all purposes) in any 24 hours. Default `10`. */
  maxSendsPerDay = 10;
  /**
   * How far back the history queries look, in seconds: the longest policy window (daily cap,
   * lockout) and the idempotency window. Rows older than this never affect a decision, so retention
   * may delete them. Default `86400`.
   */
  historyWindowSeconds = 86_400;
  /**
   * Retention: `purge()` deletes rows older than this (never less than the longest policy window,
   * 24 h, nor a code's or token's lifetime). Default `86400`.
   */
  retentionSeconds = 86_400;
  /** Purge on a schedule in the app, every this many seconds; `0` turns it off. Default `0`. */
  purgeIntervalSeconds = 0;
  /** How codes are hashed at rest: `bcrypt` or `hmac` (HMAC-SHA256 keyed with `hmacSecret`). Default `'bcrypt'`. */
  hasher: 'bcrypt' | 'hmac' = 'bcrypt';
  /** bcrypt cost factor. Default `10`. */
  bcryptCost = 10;
  /** HMAC key, at least 32 bytes; required when `hasher` is `'hmac'`. No default. */
  hmacSecret?: string;
  /** Region for phone numbers written without a country code (ISO 3166-1 alpha-2). Default `'US'`. */
  defaultRegion: CountryCode = 'US';
  /**
   * Countries whose phone numbers may receive codes; others are `OTP_DESTINATION_NOT_ALLOWED`.
   * Default: all countries.
   */
  allowedCountries?: CountryCode[];
  /** Purpose when a request names none. Default `'login'`. */
  defaultPurpose = 'login';
  /** Seconds a verification token (from a successful verify) stays usable. Default `600`. */
  tokenTtlSeconds = 600;
  /**
   * Who carries messages. The first provider that supports a channel carries it. Default: a
   * console provider (development only: it prints the message, code included).
   */
  providers?: OtpProvider[];
  /**
   * Channels to try, in order, when a channel's delivery fails. Default `{ sms: ['voice'] }`: an SMS
   * that fails falls back to a voice call; voice and email have no fallback.
   */
  channelFallback: Partial<Record<OtpChannel, OtpChannel[]>> = { sms: ['voice'] };
  /** Milliseconds one delivery attempt may take before it counts as failed. Default `5000`. */
  deliveryTimeoutMs = 5_000;
  /**
   * First word(s) of every message: "<appName> verification code is 123456. …". Default `'Your'`.
   */
  appName = 'Your';
  /** Per-IP requests allowed on the OTP routes per window. Default `20`. */
  throttleLimit = 20;
  /** Length of the per-IP throttle window, in seconds. Default `60`. */
  throttleTtlSeconds = 60;
  /** Storage for per-IP throttling (share one across instances, e.g. Redis). Default: in memory. */
  throttleStorage?: ThrottlerStorage;
  /**
   * The host's TypeORM DataSource holding the `otp_requests` table. Default: the app's default
   * DataSource (from `TypeOrmModule.forRoot`). The module never opens a connection of its own.
   */
  dataSource?: DataSource;
}

/** What hosts pass: any subset of the options. */
export type OtpModuleOptionsInput = Partial<OtpModuleOptions>;

/** Merges the host's options over the defaults and checks them; throws a message that says the fix. */
export function resolveOtpOptions(input: OtpModuleOptionsInput = {}): OtpModuleOptions {
  const defined = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  const options: OtpModuleOptions = { ...new OtpModuleOptions(), ...defined };
  const problems: string[] = [];
  const positiveInt = (name: keyof OtpModuleOptions, value: unknown): void => {
    if (!Number.isInteger(value) || (value as number) < 1)
      problems.push(`${name} must be a positive integer`);
  };
  if (!Number.isInteger(options.codeLength) || options.codeLength < 4 || options.codeLength > 10) {
    problems.push('codeLength must be an integer from 4 to 10');
  }
  for (const key of [
    'ttlSeconds',
    'maxAttempts',
    'maxSendsPerHour',
    'maxSendsPerDay',
    'historyWindowSeconds',
    'tokenTtlSeconds',
    'deliveryTimeoutMs',
    'throttleLimit',
    'throttleTtlSeconds',
  ] as const) {
    positiveInt(key, options[key]);
  }
  for (const key of ['resendCooldownSeconds', 'lockoutStepSeconds'] as const) {
    const list = options[key];
    if (
      !Array.isArray(list) ||
      list.length === 0 ||
      list.some((s) => !Number.isInteger(s) || s < 0)
    ) {
      problems.push(`${key} must be a non-empty list of whole seconds`);
    }
  }
  if (!Number.isInteger(options.retentionSeconds) || options.retentionSeconds < 86_400) {
    problems.push('retentionSeconds must be at least 86400 (the 24 h policy window)');
  }
  if (!Number.isInteger(options.purgeIntervalSeconds) || options.purgeIntervalSeconds < 0) {
    problems.push('purgeIntervalSeconds must be 0 (off) or a positive integer');
  }
  if (options.hasher !== 'bcrypt' && options.hasher !== 'hmac') {
    problems.push(`hasher must be 'bcrypt' or 'hmac'`);
  }
  if (
    options.hasher === 'bcrypt' &&
    (!Number.isInteger(options.bcryptCost) || options.bcryptCost < 4 || options.bcryptCost > 31)
  ) {
    problems.push('bcryptCost must be an integer from 4 to 31');
  }
  if (!isSupportedCountry(options.defaultRegion)) {
    problems.push(`defaultRegion must be a supported ISO 3166-1 alpha-2 code such as 'US'`);
  }
  const unknownCountries = (options.allowedCountries ?? []).filter((c) => !isSupportedCountry(c));
  if (unknownCountries.length > 0) {
    problems.push(`allowedCountries has unsupported codes: ${unknownCountries.join(', ')}`);
  }
  if (options.hasher === 'hmac' && Buffer.byteLength(options.hmacSecret ?? '') < 32) {
    problems.push('hmacSecret (OTP_SECRET) of at least 32 bytes is required when hasher is hmac');
  }
  if (!/^[a-z][a-z0-9_.-]{0,63}$/.test(options.defaultPurpose)) {
    problems.push('defaultPurpose must match ^[a-z][a-z0-9_.-]{0,63}$');
  }
  if (problems.length > 0) {
    throw new Error(`Invalid OtpModule options: ${problems.join('; ')}.`);
  }
  return options;
}
