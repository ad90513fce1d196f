import { Logger } from '@nestjs/common';
import { Redis } from 'ioredis';
import { isSupportedCountry, type CountryCode } from 'libphonenumber-js';
import type { LevelWithSilent } from 'pino';
import {
  ConsoleOtpProvider,
  RedisThrottlerStorage,
  resolveOtpOptions,
  SmtpOtpProvider,
  TwilioOtpProvider,
  WebhookOtpProvider,
  type OtpChannel,
  type OtpDeliveryAccepted,
  type OtpMessage,
  type OtpModuleOptionsInput,
  type OtpProvider,
  PURPOSE_PRESETS,
  type PurposePresetName,
  type ChallengeOptions,
} from '../src/index.js';
import { TurnstileChallengeVerifier } from './turnstile.verifier.js';

/** The example app's settings, read from the contract's environment variables. */
export interface ExampleConfig {
  port: number;
  databaseUrl?: string;
  /** `LOG_LEVEL`: pino's level for the JSON logs. Default `info`. */
  logLevel: LevelWithSilent;
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

const LOG_LEVELS: readonly LevelWithSilent[] = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
];

function logLevel(env: Env): LevelWithSilent {
  const raw = env.LOG_LEVEL;
  if (raw === undefined || raw === '') return 'info';
  const level = LOG_LEVELS.find((l) => l === raw.trim());
  if (level === undefined) {
    throw new Error(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${raw}".`);
  }
  return level;
}

/** Reads and checks the environment; throws a message that names the variable to fix. */
export function readExampleConfig(env: Env = process.env): ExampleConfig {
  const delivery = readDelivery(env);
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
    logLevel: logLevel(env),
    otp: {
      providers: delivery.providers,
      channels: delivery.channels,
      appName: appName(env),
      webOtpDomain: webOtpDomain(env),
      allowedCountries: countries(env),
      purposes: purposes(env),
      challenge: challenge(env),
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

// ---------------------------------------------------------------------------------------------
// Delivery: which providers carry which channel, in which order.

const PROVIDER_NAMES = ['console', 'webhook', 'smtp', 'twilio'] as const;
type ProviderName = (typeof PROVIDER_NAMES)[number];

/**
 * In the module's order; also the order of the `channels` option. Not `push`: it needs the host's
 * own app, which the example app has none of.
 */
const CHANNELS: readonly ExampleChannel[] = ['sms', 'voice', 'email'];
type ExampleChannel = Exclude<OtpChannel, 'push'>;

const CHANNEL_VARIABLES: Record<ExampleChannel, string> = {
  sms: 'OTP_SMS_PROVIDERS',
  voice: 'OTP_VOICE_PROVIDERS',
  email: 'OTP_EMAIL_PROVIDERS',
};

/** The most each provider can carry (twilio's voice also needs `OTP_TWILIO_FROM`). */
const CARRIES: Record<ProviderName, readonly OtpChannel[]> = {
  console: ['sms', 'voice', 'email'],
  webhook: ['sms', 'voice', 'email'],
  smtp: ['email'],
  twilio: ['sms', 'voice'],
};

function isProviderName(value: string): value is ProviderName {
  return (PROVIDER_NAMES as readonly string[]).includes(value);
}

/** What the module's lifecycle may call on a provider (both optional). */
interface ProviderLifecycle {
  ready?(): Promise<void>;
  close?(): void | Promise<void>;
}

/**
 * One provider instance, offered for only the channels a variable listed it for: the module asks
 * each provider's `supports(channel)`, so this is how `OTP_SMS_PROVIDERS=twilio` keeps a webhook
 * that carries email from also carrying SMS. The instance is shared, never copied: one SMTP pool,
 * one Twilio configuration, however many channels list it.
 */
export class ChannelLimitedOtpProvider implements OtpProvider {
  readonly name: string;

  constructor(
    readonly provider: OtpProvider,
    readonly channels: readonly OtpChannel[],
  ) {
    this.name = provider.name;
  }

  supports(channel: OtpChannel): boolean {
    return this.channels.includes(channel) && this.provider.supports(channel);
  }

  deliver(message: OtpMessage, signal: AbortSignal): Promise<void | OtpDeliveryAccepted> {
    if (!this.supports(message.channel)) {
      return Promise.reject(new Error(`${this.name} is not listed for ${message.channel}`));
    }
    return this.provider.deliver(message, signal);
  }

  ready(): Promise<void> {
    return (this.provider as ProviderLifecycle).ready?.() ?? Promise.resolve();
  }

  close(): void | Promise<void> {
    return (this.provider as ProviderLifecycle).close?.();
  }
}

interface Delivery {
  providers: OtpProvider[];
  channels: OtpChannel[];
}

/** A comma list of provider names, or undefined when the variable is unset or empty. */
function providerNames(env: Env, variable: string): ProviderName[] | undefined {
  const raw = env[variable];
  if (raw === undefined || raw === '') return undefined;
  const list = raw.split(',').map((s) => s.trim());
  if (!list.every(isProviderName)) {
    throw new Error(
      `${variable} must be a comma list of ${PROVIDER_NAMES.join(', ')}, got "${raw}".`,
    );
  }
  const twice = list.find((name, i) => list.indexOf(name) !== i);
  if (twice !== undefined) throw new Error(`${variable} lists ${twice} twice.`);
  return list;
}

/**
 * `OTP_<CHANNEL>_PROVIDERS`, each channel's providers in order, defaulting to `OTP_PROVIDER` for
 * every channel that provider can carry (so `OTP_PROVIDER=smtp` makes an email-only app).
 */
function readDelivery(env: Env): Delivery {
  const fallback = env.OTP_PROVIDER || 'console';
  if (!isProviderName(fallback)) {
    throw new Error(`OTP_PROVIDER must be one of ${PROVIDER_NAMES.join(', ')}, got "${fallback}".`);
  }
  const listed = CHANNELS.map((channel) => {
    const variable = CHANNEL_VARIABLES[channel];
    const names = providerNames(env, variable);
    if (names === undefined) {
      const implied = CARRIES[fallback].includes(channel) ? [fallback] : [];
      return { channel, variable: 'OTP_PROVIDER', names: implied, explicit: false };
    }
    const misfit = names.find((name) => !CARRIES[name].includes(channel));
    if (misfit !== undefined) {
      throw new Error(
        `${variable} lists ${misfit}, which cannot carry ${channel}: ` +
          `${misfit} carries ${CARRIES[misfit].join(' and ')} only.`,
      );
    }
    return { channel, variable, names, explicit: true };
  });

  // One instance per provider name, built only when some channel uses it.
  const instances = new Map<ProviderName, OtpProvider>();
  const instance = (name: ProviderName, listedBy: string): OtpProvider => {
    let provider = instances.get(name);
    if (provider === undefined) {
      provider = createProvider(name, env, listedBy);
      instances.set(name, provider);
    }
    return provider;
  };
  const routes = new Map<OtpChannel, OtpProvider[]>();
  for (const { channel, variable, names, explicit } of listed) {
    const providers: OtpProvider[] = [];
    for (const name of names) {
      const provider = instance(name, variable);
      if (provider.supports(channel)) {
        providers.push(provider);
      } else if (explicit) {
        // Only twilio gets here: a Messaging Service sends messages, a call needs a caller ID.
        throw new Error(
          `${variable} lists ${name} for ${channel}, which needs OTP_TWILIO_FROM (a caller ID): ` +
            'OTP_TWILIO_MESSAGING_SERVICE_SID sends SMS only.',
        );
      }
    }
    routes.set(channel, providers);
  }
  return {
    providers: inOrder(routes).map(({ provider, channels }) =>
      CHANNELS.every((c) => provider.supports(c) === channels.includes(c))
        ? provider
        : new ChannelLimitedOtpProvider(provider, channels),
    ),
    channels: CHANNELS.filter((c) => (routes.get(c) ?? []).length > 0),
  };
}

/**
 * One list for the module, in which each channel's providers come in that channel's order (the
 * module tries, in list order, the providers that support a channel). A provider goes once, for
 * all its channels, when it heads each of their lists; when the channels disagree (email
 * `webhook,console`, SMS `console,webhook`), it goes once per channel instead.
 */
function inOrder(
  routes: Map<OtpChannel, OtpProvider[]>,
): { provider: OtpProvider; channels: OtpChannel[] }[] {
  const queues = CHANNELS.map((channel) => ({ channel, queue: [...(routes.get(channel) ?? [])] }));
  const entries: { provider: OtpProvider; channels: OtpChannel[] }[] = [];
  for (;;) {
    const waiting = queues.filter((q) => q.queue.length > 0);
    const [head] = waiting;
    if (head === undefined) return entries;
    const heads = waiting.map((q) => q.queue[0] as OtpProvider);
    const everywhere = heads.find((p) =>
      queues.every((q) => !q.queue.includes(p) || q.queue[0] === p),
    );
    const taking = everywhere ? waiting.filter((q) => q.queue[0] === everywhere) : [head];
    entries.push({
      provider: everywhere ?? (head.queue[0] as OtpProvider),
      channels: taking.map((q) => q.channel),
    });
    for (const q of taking) q.queue.shift();
  }
}

/** "OTP_SMS_PROVIDERS lists twilio, which needs X." or "OTP_PROVIDER=twilio needs X." */
function needs(listedBy: string, name: ProviderName, what: string): Error {
  const who =
    listedBy === 'OTP_PROVIDER' ? `OTP_PROVIDER=${name}` : `${listedBy} lists ${name}, which`;
  return new Error(`${who} needs ${what}.`);
}

/**
 * A provider constructor's error, with the variable it is about in front. Constructors name the
 * option at fault (and never echo its value): the option named first decides.
 */
function named(build: () => OtpProvider, variables: Record<string, string>): OtpProvider {
  try {
    return build();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const hits = Object.keys(variables)
      .map((option) => ({ option, at: message.indexOf(option) }))
      .filter(({ at }) => at >= 0)
      .sort((a, b) => a.at - b.at);
    const variable =
      hits[0] !== undefined
        ? variables[hits[0].option]
        : [...new Set(Object.values(variables))].join(' / ');
    throw new Error(`${variable}: ${message}`);
  }
}

function createProvider(name: ProviderName, env: Env, listedBy: string): OtpProvider {
  const value = (variable: string): string | undefined => env[variable] || undefined;
  switch (name) {
    case 'console':
      return new ConsoleOtpProvider();
    case 'webhook': {
      const url = value('OTP_WEBHOOK_URL');
      if (url === undefined) throw needs(listedBy, name, 'OTP_WEBHOOK_URL');
      // Empty or unset: unsigned, as before the secret existed.
      const secret = value('OTP_WEBHOOK_SECRET');
      return named(() => new WebhookOtpProvider(url, { secret }), {
        URL: 'OTP_WEBHOOK_URL',
        secret: 'OTP_WEBHOOK_SECRET',
      });
    }
    case 'smtp': {
      const url = value('OTP_SMTP_URL');
      const from = value('OTP_EMAIL_FROM');
      if (url === undefined) throw needs(listedBy, name, 'OTP_SMTP_URL');
      if (from === undefined) throw needs(listedBy, name, 'OTP_EMAIL_FROM');
      return named(() => new SmtpOtpProvider({ url, from }), {
        url: 'OTP_SMTP_URL',
        from: 'OTP_EMAIL_FROM',
      });
    }
    case 'twilio': {
      const accountSid = value('OTP_TWILIO_ACCOUNT_SID');
      const authToken = value('OTP_TWILIO_AUTH_TOKEN');
      const from = value('OTP_TWILIO_FROM');
      const messagingServiceSid = value('OTP_TWILIO_MESSAGING_SERVICE_SID');
      if (accountSid === undefined) throw needs(listedBy, name, 'OTP_TWILIO_ACCOUNT_SID');
      if (authToken === undefined) throw needs(listedBy, name, 'OTP_TWILIO_AUTH_TOKEN');
      if ((from === undefined) === (messagingServiceSid === undefined)) {
        throw needs(
          listedBy,
          name,
          'exactly one of OTP_TWILIO_FROM (a Twilio number) and OTP_TWILIO_MESSAGING_SERVICE_SID',
        );
      }
      const apiUrl = value('OTP_TWILIO_API_URL');
      return named(
        () => new TwilioOtpProvider({ accountSid, authToken, from, messagingServiceSid, apiUrl }),
        {
          accountSid: 'OTP_TWILIO_ACCOUNT_SID',
          authToken: 'OTP_TWILIO_AUTH_TOKEN',
          messagingServiceSid: 'OTP_TWILIO_MESSAGING_SERVICE_SID',
          from: 'OTP_TWILIO_FROM',
          apiUrl: 'OTP_TWILIO_API_URL',
        },
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// What messages say, and where phones may be.

function appName(env: Env): string | undefined {
  const raw = env.OTP_APP_NAME;
  if (raw === undefined || raw.trim() === '') return undefined;
  // A line break would end an email subject or an SMS's first line early.
  if (/[\u0000-\u001f\u007f]/.test(raw)) {
    throw new Error('OTP_APP_NAME must be one line of text, without control characters.');
  }
  return raw.trim();
}

function webOtpDomain(env: Env): string | undefined {
  const raw = env.OTP_WEBOTP_DOMAIN;
  if (raw === undefined || raw === '') return undefined;
  try {
    // The module's own check, so the two never disagree.
    resolveOtpOptions({ webOtpDomain: raw });
  } catch {
    throw new Error(
      `OTP_WEBOTP_DOMAIN must be a bare host name such as acme.test (no scheme, port or path), got "${raw}".`,
    );
  }
  return raw;
}

function countries(env: Env): CountryCode[] | undefined {
  const raw = env.OTP_ALLOWED_COUNTRIES;
  if (raw === undefined || raw === '') return undefined;
  const list = raw.split(',').map((s) => s.trim());
  const bad = list.filter((code) => !/^[A-Z]{2}$/.test(code) || !isSupportedCountry(code));
  if (bad.length > 0) {
    throw new Error(
      'OTP_ALLOWED_COUNTRIES must be a comma list of ISO 3166-1 alpha-2 codes such as "US,GB,DE"; ' +
        `not one: ${bad.map((code) => `"${code}"`).join(', ')}.`,
    );
  }
  return [...new Set(list)] as CountryCode[];
}

// ---------------------------------------------------------------------------------------------
// Per-purpose presets, and challenge escalation with Cloudflare Turnstile.

/** `OTP_PURPOSES=login=login,pay=transaction`: a preset per purpose. */
function purposes(env: Env): Record<string, PurposePresetName> | undefined {
  const raw = env.OTP_PURPOSES;
  if (raw === undefined || raw.trim() === '') return undefined;
  const presets = Object.keys(PURPOSE_PRESETS);
  const entries = raw.split(',').map((pair) => pair.split('=').map((s) => s.trim()));
  const bad = entries.filter(
    ([purpose, preset, ...rest]) =>
      !purpose || !preset || rest.length > 0 || !presets.includes(preset),
  );
  if (bad.length > 0) {
    throw new Error(
      `OTP_PURPOSES must be a comma list of purpose=preset, presets: ${presets.join(', ')} ` +
        `(e.g. "login=login,pay=transaction"); not one: ${bad.map((e) => `"${e.join('=')}"`).join(', ')}.`,
    );
  }
  return Object.fromEntries(entries.map(([purpose, preset]) => [purpose, preset])) as Record<
    string,
    PurposePresetName
  >;
}

/**
 * `OTP_TURNSTILE_SECRET` turns challenge escalation on: after `OTP_CHALLENGE_AFTER_FAILED_VERIFIES`
 * (default 5) failed verifies of a destination in an hour, calls need a Turnstile token, checked at
 * `OTP_TURNSTILE_VERIFY_URL` (default Cloudflare's siteverify).
 */
function challenge(env: Env): ChallengeOptions | undefined {
  const secret = env.OTP_TURNSTILE_SECRET;
  if (secret === undefined || secret === '') return undefined;
  const url = env.OTP_TURNSTILE_VERIFY_URL || undefined;
  if (url !== undefined && !/^https?:\/\/[^\s]+$/.test(url)) {
    throw new Error(`OTP_TURNSTILE_VERIFY_URL must be an http(s) URL, got "${url}".`);
  }
  return {
    afterFailedVerifies: integer(env, 'OTP_CHALLENGE_AFTER_FAILED_VERIFIES') ?? 5,
    verifier: new TurnstileChallengeVerifier({ secret, ...(url ? { url } : {}) }),
  };
}
