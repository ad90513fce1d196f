import type { ThrottlerStorage } from '@nestjs/throttler';
import {
  isSupportedCountry,
  type CountryCode,
  type NumberType as PhoneNumberType,
} from 'libphonenumber-js';
import type { DataSource } from 'typeorm';
import type { ChallengeOptions } from './challenge/challenge-verifier.js';
import type { OtpProvider } from './delivery/otp-provider.interface.js';
import {
  adaptiveDeliveryProblems,
  type DeliveryReceiptsOptions,
} from './delivery/receipts/delivery-receipts.options.js';
import { templateProblems, type OtpLocaleMessages } from './delivery/otp-message.js';
import { DEFAULT_REFUSED_NUMBER_TYPES } from './destination/destination.js';
import { OTP_CHANNELS, type OtpChannel } from './otp.types.js';
import { purposeProblems, type PurposePolicyInput } from './policy/purpose-policy.js';

/** Per-account limits, across every destination of one `subject` (the host's user id). */
export interface SubjectLimits {
  /** Sends for the subject in any 60 minutes. */
  maxSendsPerHour?: number;
  /** Sends for the subject in any 24 hours. */
  maxSendsPerDay?: number;
  /** Wrong guesses for the subject in any 24 hours, all its destinations together. */
  maxFailedVerifiesPerDay?: number;
}

/** A libphonenumber-js number type, or `'UNKNOWN'` for a number whose type it cannot tell. */
export type RefusableNumberType = NonNullable<PhoneNumberType> | 'UNKNOWN';
const NUMBER_TYPES: readonly RefusableNumberType[] = [
  'PREMIUM_RATE',
  'TOLL_FREE',
  'SHARED_COST',
  'VOIP',
  'PERSONAL_NUMBER',
  'PAGER',
  'UAN',
  'VOICEMAIL',
  'FIXED_LINE',
  'MOBILE',
  'FIXED_LINE_OR_MOBILE',
  'UNKNOWN',
];

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
  /**
   * Sends per destination (all purposes) in any 60 minutes; `Infinity` for no hourly cap (the
   * send's history read then skips the probe of the hour). Default `5`.
   */
  maxSendsPerHour = 5;
  /**
   * Sends per destination (all purposes) in any 24 hours; `Infinity` for no daily cap. Default
   * `10`.
   */
  maxSendsPerDay = 10;
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
  hmacSecret?: string = undefined;
  /** Region for phone numbers written without a country code (ISO 3166-1 alpha-2). Default `'US'`. */
  defaultRegion: CountryCode = 'US';
  /**
   * Countries whose phone numbers may receive codes; others are `OTP_DESTINATION_NOT_ALLOWED`.
   * Default: all countries.
   */
  allowedCountries?: CountryCode[] = undefined;
  /** Purpose when a request names none. Default `'login'`. */
  defaultPurpose = 'login';
  /** Seconds a verification token (from a successful verify) stays usable. Default `600`. */
  tokenTtlSeconds = 600;
  /**
   * Where the verify route hands the verification token, and where `@RequireOtp` reads it:
   * `'header'` (the JSON body; clients send `X-OTP-Token`), `'cookie'` (a `__Host-otp-token`
   * cookie, `HttpOnly; Secure; SameSite=Strict; Path=/`, and the body omits the token) or `'both'`.
   * Default `'header'`.
   */
  tokenTransport: 'header' | 'cookie' | 'both' = 'header';
  /**
   * Who carries messages. The first provider that supports a channel carries it. Default: a
   * console provider (development only: it prints the message, code included; it logs a warning
   * at start when `NODE_ENV` is `production`). An empty list is refused.
   */
  providers?: OtpProvider[] = undefined;
  /**
   * Channels the module sends on. Each needs a provider that supports it (checked at start); a send
   * on another channel is a 400 `OTP_CHANNEL_NOT_ALLOWED`. An email-only app sets `['email']`.
   * Default `['sms', 'voice', 'email']`.
   */
  channels: OtpChannel[] = ['sms', 'voice', 'email'];
  /**
   * Channels to try, in order, when a channel's delivery fails. Default `{ sms: ['voice'] }`: an SMS
   * that fails falls back to a voice call; voice and email have no fallback.
   */
  channelFallback: Partial<Record<OtpChannel, OtpChannel[]>> = { sms: ['voice'] };
  /** Milliseconds one delivery attempt may take before it counts as failed. Default `5000`. */
  deliveryTimeoutMs = 5_000;
  /**
   * The app's name in every message ("Acme verification code."). Default `'Your'` ("Your
   * verification code.").
   */
  appName = 'Your';
  /**
   * Message texts by locale, over the built-in English (`ENGLISH_MESSAGES`): any of `sms`,
   * `emailSubject`, `emailText`, `emailHtml`, `voice`, and per-purpose overrides under `purposes`.
   * A send's locale comes from `OtpService.send({ locale })` or the route's `Accept-Language`.
   * Every template must show `{code}` (checked at start). Default `{}`.
   */
  messages: Record<string, OtpLocaleMessages> = {};
  /**
   * Adds `@<domain> #<code>` as the SMS's last line, so Chrome's WebOTP API and iOS/Android
   * auto-fill offer the code on that site. A bare host name, e.g. `'acme.test'`. Default: none.
   */
  webOtpDomain?: string = undefined;
  /**
   * Phone number types (libphonenumber-js) refused with 400 `OTP_DESTINATION_NOT_ALLOWED`, and
   * `'UNKNOWN'` for numbers of no known type: costly numbers are how SMS pumping bills you.
   * Default `['PREMIUM_RATE', 'SHARED_COST', 'UAN', 'PAGER', 'VOICEMAIL', 'UNKNOWN']`.
   */
  refusedNumberTypes: RefusableNumberType[] = [...DEFAULT_REFUSED_NUMBER_TYPES];
  /**
   * Largest request body the OTP routes accept, in bytes; a larger one is a 413
   * `PAYLOAD_TOO_LARGE`. Enforced on these routes only; the host's parsers are left as they are.
   * Default `16384` (16 KiB).
   */
  bodyLimitBytes = 16_384;
  /** Per-IP requests allowed on the OTP routes per window. Default `20`. */
  throttleLimit = 20;
  /** Length of the per-IP throttle window, in seconds. Default `60`. */
  throttleTtlSeconds = 60;
  /**
   * What the per-IP limit does when its storage (e.g. Redis) fails: `'closed'` answers 503
   * `SERVICE_UNAVAILABLE` with `Retry-After`; `'open'` lets the request on, with only the Postgres
   * limits (cooldowns, caps, lockouts), which still hold, and logs a warning at most once a minute.
   * Default `'closed'`.
   */
  throttleStoreFailure: 'closed' | 'open' = 'closed';
  /**
   * Storage for per-IP throttling; share one across instances, e.g.
   * `new RedisThrottlerStorage(new Redis(url))`. Default: in memory (per process).
   */
  throttleStorage?: ThrottlerStorage = undefined;
  /**
   * The host's TypeORM DataSource holding the `otp_requests` table. Default: the app's default
   * DataSource (from `TypeOrmModule.forRoot`). The module checks its schema (and runs its migrations)
   * on it, and opens its own small pool from its connection options (`poolSize`).
   */
  dataSource?: DataSource = undefined;
  /**
   * Longest a statement of the module may run (Postgres `statement_timeout` on the module's own
   * connections); past it the request is a 503 `SERVICE_UNAVAILABLE`. Default `5000`.
   */
  statementTimeoutMs = 5_000;
  /**
   * Longest a statement of the module may wait for a lock (Postgres `lock_timeout`), e.g. behind a
   * migration or a `LOCK TABLE`; past it the request is a 503. Default `3000`.
   */
  lockTimeoutMs = 3_000;
  /** Longest a request may wait for a free connection of the module's pool; then 503. Default `3000`. */
  acquireTimeoutMs = 3_000;
  /**
   * Connections in the module's own pool, opened from the DataSource's connection options (same
   * server and credentials) so its timeouts never touch the host's connections. Default `10`.
   */
  poolSize = 10;
  /**
   * Codes this instance remembers (request id and hash, one a destination and purpose) from its own
   * sends, so that a right code sent here verifies in one statement and one commit instead of two.
   * A hint only: the database still decides, and a code sent by another instance verifies the usual
   * way. With the HMAC hasher only (a bcrypt check runs only on a reserved attempt). About 300
   * bytes a code; `0` turns it off. Default `10000`.
   */
  verifyCacheSize = 10_000;
  /**
   * At start the module checks that its tables and latest migration are in the database and refuses
   * to start otherwise. `true` runs its pending migrations instead (under an advisory lock, so many
   * instances may start at once). Default `false`: migrations are the host's to run.
   */
  migrationsRun = false;
  /**
   * Policy per purpose, over the options above: a preset's name (`'login'`, `'transaction'`,
   * `'account-recovery'`, `'email-verification'`) or fields (`ttlSeconds`, `codeLength`,
   * `maxAttempts`, `resendCooldownSeconds`, `lockoutStepSeconds`, `channels`, `hardLockout`,
   * `autoResend`, `bindToClient`) over an optional `preset`. Send caps and lockout stay the
   * destination's, shared by every purpose. Default `{}`: every purpose uses the options above.
   */
  purposes: Record<string, PurposePolicyInput> = {};
  /** Refuses (400 `VALIDATION_FAILED`) a purpose that has no entry in `purposes`. Default `false`. */
  strictPurposes = false;
  /**
   * Challenge escalation: after `afterFailedVerifies` failed verifies of a destination within
   * `windowSeconds`, sends and verifies need a `challenge` that `verifier` accepts, else 428
   * `OTP_CHALLENGE_REQUIRED`. Default: off.
   */
  challenge?: ChallengeOptions = undefined;
  /**
   * Per-account limits for sends and verifies given a `subject` (through `OtpService`, or
   * `subjectFrom` on the routes; never from the body). Default: none.
   */
  subjectLimits?: SubjectLimits = undefined;
  /**
   * The routes' subject: reads it from the request (e.g. the signed-in user's id set by the host's
   * auth guard). Default: none (the routes send without a subject).
   */
  subjectFrom?: (request: unknown) => string | undefined | Promise<string | undefined> = undefined;
  /**
   * Delivery receipts: mounts `POST /otp/delivery-status/twilio` (`{ twilio: { authToken,
   * publicUrl } }`) and/or `POST /otp/delivery-status/webhook` (`{ webhook: { secret } }`). An
   * `undelivered` or `failed` receipt for the flow's active code sends it at once on the next
   * channel of the chain. Default: none (both routes answer 404).
   */
  deliveryReceipts?: DeliveryReceiptsOptions = undefined;
  /**
   * Key material (at least 32 bytes) that seals a code (AES-256-GCM) while a re-delivery is
   * possible (`deliveryReceipts`, or a purpose's `fallbackAfterSeconds`). Default: `hmacSecret`.
   */
  fallbackSecret?: string = undefined;
  /**
   * How often each instance polls for due fallbacks (`fallbackAfterSeconds`, and receipts whose
   * re-delivery an instance could not finish); `0` turns the timer off (inject
   * `OtpFallbackService` and call `runDue()`, e.g. from cron). The timer only triggers the poll: the due time lives
   * in the database, and rows are claimed with FOR UPDATE SKIP LOCKED. Default `5000`.
   */
  fallbackPollIntervalMs = 5_000;
}

/** What hosts pass: any subset of the options. */
export type OtpModuleOptionsInput = Partial<OtpModuleOptions>;

/** Merges the host's options over the defaults and checks them; throws a message that says the fix. */
export function resolveOtpOptions(input: OtpModuleOptionsInput = {}): OtpModuleOptions {
  if (typeof input !== 'object' || input === null) {
    throw new Error('Invalid OtpModule options: expected an object of options.');
  }
  const known = new Set(Object.keys(new OtpModuleOptions()));
  const unknown = Object.keys(input).filter((key) => !known.has(key));
  if (unknown.length > 0) {
    // A typo would otherwise fall back to the default without a word.
    throw new Error(
      `Invalid OtpModule options: unknown option ${unknown.map((k) => `"${k}"`).join(', ')}` +
        `${unknown.map(suggest).join('')}. Known options: ${[...known].join(', ')}.`,
    );
  }
  const defined = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  const options: OtpModuleOptions = { ...new OtpModuleOptions(), ...defined };
  if (input.channelFallback === undefined && Array.isArray(options.channels)) {
    // The default fallback (sms → voice) applies only where both channels are enabled.
    options.channelFallback = Object.fromEntries(
      Object.entries(options.channelFallback)
        .filter(([from]) => options.channels.includes(from as OtpChannel))
        .map(([from, to]) => [from, (to ?? []).filter((c) => options.channels.includes(c))]),
    );
  }
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
    'tokenTtlSeconds',
    'deliveryTimeoutMs',
    'throttleLimit',
    'throttleTtlSeconds',
    'bodyLimitBytes',
    'statementTimeoutMs',
    'lockTimeoutMs',
    'acquireTimeoutMs',
    'poolSize',
  ] as const) {
    positiveInt(key, options[key]);
  }
  for (const key of ['maxSendsPerHour', 'maxSendsPerDay'] as const) {
    const cap = options[key];
    if (cap !== Infinity && (!Number.isInteger(cap) || cap < 1)) {
      problems.push(`${key} must be a positive integer, or Infinity for no cap`);
    }
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
  if (!Number.isInteger(options.verifyCacheSize) || options.verifyCacheSize < 0) {
    problems.push('verifyCacheSize must be 0 (off) or a positive integer');
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
  if (options.throttleStoreFailure !== 'closed' && options.throttleStoreFailure !== 'open') {
    problems.push(`throttleStoreFailure must be 'closed' or 'open'`);
  }
  if (typeof options.migrationsRun !== 'boolean') problems.push('migrationsRun must be a boolean');
  if (!['header', 'cookie', 'both'].includes(options.tokenTransport)) {
    problems.push(`tokenTransport must be 'header', 'cookie' or 'both'`);
  }
  problems.push(...channelProblems(options));
  problems.push(...purposeProblems(options.purposes, options.channels));
  if (typeof options.strictPurposes !== 'boolean')
    problems.push('strictPurposes must be a boolean');
  if (
    options.strictPurposes === true &&
    typeof options.purposes === 'object' &&
    options.purposes !== null &&
    !Object.hasOwn(options.purposes, options.defaultPurpose)
  ) {
    problems.push(
      `strictPurposes needs an entry in purposes for defaultPurpose '${options.defaultPurpose}'`,
    );
  }
  problems.push(...challengeProblems(options.challenge));
  problems.push(...subjectProblems(options));
  problems.push(...adaptiveDeliveryProblems(options));
  if (typeof options.messages !== 'object' || options.messages === null) {
    problems.push('messages must be an object of locales');
  } else {
    problems.push(...templateProblems(options.messages));
  }
  if (
    options.webOtpDomain !== undefined &&
    !/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i.test(
      options.webOtpDomain,
    )
  ) {
    problems.push(`webOtpDomain must be a bare host name such as 'acme.test'`);
  }
  if (
    !Array.isArray(options.refusedNumberTypes) ||
    options.refusedNumberTypes.some((t) => !NUMBER_TYPES.includes(t))
  ) {
    problems.push(`refusedNumberTypes must be a list of ${NUMBER_TYPES.join(', ')}`);
  }
  if (problems.length > 0) {
    throw new Error(`Invalid OtpModule options: ${problems.join('; ')}.`);
  }
  return options;
}

/** " (did you mean "ttlSeconds"?)" for a key that differs from a known one only in case or an `s`. */
function suggest(key: string): string {
  const plain = (k: string): string => k.toLowerCase().replace(/s$/, '');
  const match = Object.keys(new OtpModuleOptions()).find((k) => plain(k) === plain(key));
  return match ? ` (did you mean "${match}"?)` : '';
}

/** Every enabled channel needs a provider that carries it, and fallbacks stay within `channels`. */
function channelProblems(options: OtpModuleOptions): string[] {
  const problems: string[] = [];
  const { channels, providers, channelFallback } = options;
  if (!Array.isArray(channels) || channels.some((c) => !OTP_CHANNELS.includes(c))) {
    return [`channels must be a list of ${OTP_CHANNELS.join(', ')}`];
  }
  if (providers !== undefined) {
    if (!Array.isArray(providers) || providers.length === 0) {
      return [
        'providers must list at least one OtpProvider (leave it out for the console provider)',
      ];
    }
    const bad = providers.filter(
      (p) => typeof p?.supports !== 'function' || typeof p?.deliver !== 'function',
    );
    if (bad.length > 0) {
      return ['providers must be OtpProviders (with supports() and deliver())'];
    }
    for (const channel of channels) {
      if (!providers.some((p) => p.supports(channel))) {
        problems.push(
          `channels includes '${channel}' but no provider supports it ` +
            `(providers: ${providers.map((p) => p.name).join(', ')}); add one, or remove '${channel}' from channels`,
        );
      }
    }
  }
  for (const [from, to] of Object.entries(channelFallback ?? {})) {
    const outside = (to ?? []).filter((c) => !channels.includes(c));
    if (outside.length > 0 && channels.includes(from as OtpChannel)) {
      problems.push(
        `channelFallback.${from} falls back to ${outside.join(', ')}, which is not in channels`,
      );
    }
  }
  return problems;
}

function challengeProblems(challenge: ChallengeOptions | undefined): string[] {
  if (challenge === undefined) return [];
  const ok =
    typeof challenge === 'object' &&
    challenge !== null &&
    Number.isInteger(challenge.afterFailedVerifies) &&
    challenge.afterFailedVerifies >= 1 &&
    (challenge.windowSeconds === undefined ||
      (Number.isInteger(challenge.windowSeconds) && challenge.windowSeconds >= 1)) &&
    typeof challenge.verifier?.verify === 'function';
  return ok
    ? []
    : [
        'challenge must be { afterFailedVerifies: positive integer, windowSeconds?: positive ' +
          'integer, verifier: ChallengeVerifier (with verify()) }',
      ];
}

function subjectProblems(options: OtpModuleOptions): string[] {
  const problems: string[] = [];
  const limits = options.subjectLimits;
  if (limits !== undefined) {
    if (typeof limits !== 'object' || limits === null) {
      problems.push('subjectLimits must be an object');
    } else {
      for (const [key, value] of Object.entries(limits)) {
        if (!['maxSendsPerHour', 'maxSendsPerDay', 'maxFailedVerifiesPerDay'].includes(key)) {
          problems.push(`subjectLimits has unknown key ${key}`);
        } else if (value !== undefined && (!Number.isInteger(value) || (value as number) < 1)) {
          problems.push(`subjectLimits.${key} must be a positive integer`);
        }
      }
    }
  }
  if (options.subjectFrom !== undefined && typeof options.subjectFrom !== 'function') {
    problems.push('subjectFrom must be a function of the request');
  }
  return problems;
}
