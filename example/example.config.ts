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
      // One Redis shared by every instance makes the per-IP limit hold across them.
      throttleStorage: env.REDIS_URL
        ? new RedisThrottlerStorage(new Redis(env.REDIS_URL))
        : undefined,
    },
  };
}
