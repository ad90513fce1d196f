import { Logger } from '@nestjs/common';
import { Redis } from 'ioredis';
import type { CountryCode } from 'libphonenumber-js';
import {
  ConsoleOtpProvider,
  RedisThrottlerStorage,
  WebhookOtpProvider,
  type OtpModuleOptionsInput,
} from '../src/index.js';

/** The example app's settings, read from the contract's environment variables. */
export interface ExampleConfig {
  port: number;
  databaseUrl?: string;
  otp: OtpModuleOptionsInput;
}

type Env = Record<string, string | undefined>;

function integer(env: Env, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d+$/.test(raw.trim())) throw new Error(`${name} must be a whole number, got "${raw}".`);
  return Number(raw);
}

function seconds(env: Env, name: string): number[] | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const list = raw.split(',').map((s) => s.trim());
  if (list.some((s) => !/^\d+$/.test(s))) {
    throw new Error(`${name} must be a comma list of whole seconds, got "${raw}".`);
  }
  return list.map(Number);
}

/**
 * The throttle storage's Redis client: fails fast while Redis is down (no offline queue, bounded
 * connect and command times; `RedisThrottlerStorage.clientOptions`) and keeps reconnecting in the
 * background. Its `error` events (one per reconnect attempt while Redis is down) are logged at
 * most once a minute, instead of ioredis's "Unhandled error event" on each.
 */
export function createThrottleRedis(url: string, logger = new Logger('Redis')): Redis {
  const redis = new Redis(url, RedisThrottlerStorage.clientOptions);
  const where = `${redis.options.host ?? '?'}:${redis.options.port ?? '?'}`;
  let lastLoggedAt = -Infinity;
  let unlogged = 0;
  redis.on('error', (error: Error) => {
    unlogged += 1;
    const now = Date.now();
    if (now - lastLoggedAt < 60_000) return;
    const more = unlogged > 1 ? ` (and ${unlogged - 1} errors since the last)` : '';
    logger.warn(
      `Redis at ${where}: ${error.message}${more}; reconnecting in the background. ` +
        'At most one such warning a minute.',
    );
    lastLoggedAt = now;
    unlogged = 0;
  });
  return redis;
}

function storeFailure(env: Env): 'closed' | 'open' | undefined {
  const raw = env.OTP_THROTTLE_STORE_FAILURE;
  if (raw === undefined || raw === '') return undefined;
  if (raw !== 'closed' && raw !== 'open') {
    throw new Error(`OTP_THROTTLE_STORE_FAILURE must be "closed" or "open", got "${raw}".`);
  }
  return raw;
}

/** Reads and checks the environment; throws a message that names the variable to fix. */
export function readExampleConfig(env: Env = process.env): ExampleConfig {
  const provider = env.OTP_PROVIDER || 'console';
  if (provider !== 'console' && provider !== 'webhook') {
    throw new Error(`OTP_PROVIDER must be "console" or "webhook", got "${provider}".`);
  }
  if (provider === 'webhook' && !env.OTP_WEBHOOK_URL) {
    throw new Error('OTP_PROVIDER=webhook needs OTP_WEBHOOK_URL.');
  }
  const hasher = env.OTP_HASHER || 'bcrypt';
  if (hasher !== 'bcrypt' && hasher !== 'hmac') {
    throw new Error(`OTP_HASHER must be "bcrypt" or "hmac", got "${hasher}".`);
  }
  if (hasher === 'hmac' && Buffer.byteLength(env.OTP_SECRET ?? '') < 32) {
    throw new Error('OTP_HASHER=hmac needs OTP_SECRET of at least 32 bytes.');
  }
  return {
    port: integer(env, 'PORT') ?? 3000,
    databaseUrl: env.DATABASE_URL || undefined,
    otp: {
      providers: [
        provider === 'webhook'
          ? new WebhookOtpProvider(env.OTP_WEBHOOK_URL as string)
          : new ConsoleOtpProvider(),
      ],
      ttlSeconds: integer(env, 'OTP_TTL_SECONDS'),
      codeLength: integer(env, 'OTP_CODE_LENGTH'),
      maxAttempts: integer(env, 'OTP_MAX_ATTEMPTS'),
      resendCooldownSeconds: seconds(env, 'OTP_RESEND_COOLDOWNS'),
      lockoutStepSeconds: seconds(env, 'OTP_LOCKOUT_STEPS'),
      maxSendsPerHour: integer(env, 'OTP_MAX_SENDS_PER_HOUR'),
      maxSendsPerDay: integer(env, 'OTP_MAX_SENDS_PER_DAY'),
      hasher,
      bcryptCost: integer(env, 'OTP_BCRYPT_COST'),
      hmacSecret: env.OTP_SECRET || undefined,
      defaultRegion: (env.OTP_DEFAULT_REGION as CountryCode | undefined) || undefined,
      throttleLimit: integer(env, 'OTP_THROTTLE_LIMIT'),
      throttleTtlSeconds: integer(env, 'OTP_THROTTLE_TTL_SECONDS'),
      throttleStoreFailure: storeFailure(env),
      // One Redis shared by every instance makes the per-IP limit hold across them.
      throttleStorage: env.REDIS_URL
        ? new RedisThrottlerStorage(createThrottleRedis(env.REDIS_URL))
        : undefined,
    },
  };
}
