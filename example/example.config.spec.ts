import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type { Logger } from '@nestjs/common';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ConsoleOtpProvider,
  OTP_WEBHOOK_SIGNATURE_HEADER,
  resolveOtpOptions,
  SmtpOtpProvider,
  TwilioOtpProvider,
  verifyOtpWebhookSignature,
  WebhookOtpProvider,
  type OtpChannel,
  type OtpMessage,
  type OtpModuleOptions,
  type OtpModuleOptionsInput,
  type OtpProvider,
} from '../src/index.js';
import { FakeTwilio } from '../test/support/fake-twilio.js';
import { startSmtpSink, type SmtpSink } from '../test/support/smtp-sink.js';
import {
  ChannelLimitedOtpProvider,
  createThrottleRedis,
  readExampleConfig,
} from './example.config.js';

type Env = Record<string, string | undefined>;
/** The channels the example app configures from the environment (push needs the host's own app). */
type ExampleChannel = Exclude<OtpChannel, 'push'>;

const SECRET_32 = 's'.repeat(32);
const CHANNELS: ExampleChannel[] = ['sms', 'voice', 'email'];

// Secrets the error messages must never show.
const ACCOUNT_SID = `AC${'0123456789abcdef'.repeat(2)}`;
const AUTH_TOKEN = 'a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6';
const SPACED_TOKEN = 'a1b2c3d4e5f6 a7b8c9d0e1f2a3b4c5d6';
const SMTP_PASSWORD = 'hunter2-smtp-pass';
const WEBHOOK_SECRET = 'w'.repeat(40);
const SHORT_SECRET = 'short-webhook-secret';
const SECRETS = [AUTH_TOKEN, SPACED_TOKEN, SMTP_PASSWORD, WEBHOOK_SECRET, SHORT_SECRET];

const WEBHOOK = { OTP_WEBHOOK_URL: 'https://hooks.example.com/otp' };
const SMTP = {
  OTP_SMTP_URL: `smtp://mailer:${SMTP_PASSWORD}@mail.example.com:587`,
  OTP_EMAIL_FROM: 'Acme <no-reply@acme.test>',
};
const TWILIO = {
  OTP_TWILIO_ACCOUNT_SID: ACCOUNT_SID,
  OTP_TWILIO_AUTH_TOKEN: AUTH_TOKEN,
  OTP_TWILIO_FROM: '+14155550100',
};
const TWILIO_MESSAGING = {
  OTP_TWILIO_ACCOUNT_SID: ACCOUNT_SID,
  OTP_TWILIO_AUTH_TOKEN: AUTH_TOKEN,
  OTP_TWILIO_MESSAGING_SERVICE_SID: `MG${'fedcba9876543210'.repeat(2)}`,
};

/** The instance behind one of the module's providers. */
function unwrap(provider: OtpProvider): OtpProvider {
  return provider instanceof ChannelLimitedOtpProvider ? provider.provider : provider;
}

/** The instances the module tries for `channel`, in its order (the first that supports it first). */
function carriers(otp: OtpModuleOptionsInput, channel: OtpChannel): OtpProvider[] {
  return (otp.providers ?? []).filter((p) => p.supports(channel)).map(unwrap);
}

function carrierNames(otp: OtpModuleOptionsInput): Record<ExampleChannel, string[]> {
  const names = (channel: OtpChannel): string[] => carriers(otp, channel).map((p) => p.name);
  return { sms: names('sms'), voice: names('voice'), email: names('email') };
}

/** Closes the SMTP pools a config made (none is open before a send; this keeps it so). */
function closeAll(otp: OtpModuleOptionsInput): void {
  for (const provider of otp.providers ?? []) {
    const inner = unwrap(provider);
    if (inner instanceof SmtpOtpProvider) inner.close();
  }
}

function expectNoSecretIn(read: () => unknown): void {
  let message = '';
  try {
    read();
  } catch (error) {
    message = error instanceof Error ? error.message : String(error);
  }
  expect(message).not.toBe('');
  for (const secret of SECRETS) expect(message).not.toContain(secret);
}

function message(channel: OtpChannel): OtpMessage {
  return {
    requestId: 'r1',
    channel,
    destination: channel === 'email' ? 'ada@example.com' : '+14155550123',
    purpose: 'login',
    code: '123456',
    text: '123456\nYour verification code.',
    subject: '123456 is your verification code',
    html: '<p>123456</p>',
    speech: ['Your verification code is', '1, 2, 3, 4, 5, 6.'],
    appName: 'Your',
    expiresAt: new Date(0),
  };
}

describe('readExampleConfig', () => {
  describe('defaults (no variable set)', () => {
    const config = readExampleConfig({});

    it('listens on port 3000', () => {
      expect(config.port).toBe(3000);
    });

    it('has no DATABASE_URL, so an embedded Postgres starts', () => {
      expect(config.databaseUrl).toBeUndefined();
    });

    it('delivers through the console provider only', () => {
      expect(config.otp.providers).toHaveLength(1);
      expect(config.otp.providers?.[0]).toBeInstanceOf(ConsoleOtpProvider);
    });

    it("gives the module the contract's defaults", () => {
      expect(resolveOtpOptions(config.otp)).toMatchObject({
        ttlSeconds: 300,
        codeLength: 6,
        maxAttempts: 3,
        resendCooldownSeconds: [30, 60, 120, 300],
        lockoutStepSeconds: [30, 60, 300, 900, 3600],
        maxSendsPerHour: 5,
        maxSendsPerDay: 10,
        hasher: 'bcrypt',
        bcryptCost: 10,
        defaultRegion: 'US',
        throttleLimit: 20,
        throttleTtlSeconds: 60,
      });
      expect(config.otp.hmacSecret).toBeUndefined();
    });
  });

  describe('whole-number variables', () => {
    it('reads PORT', () => {
      expect(readExampleConfig({ PORT: '8080' }).port).toBe(8080);
    });

    it.each<[string, keyof OtpModuleOptions]>([
      ['OTP_TTL_SECONDS', 'ttlSeconds'],
      ['OTP_CODE_LENGTH', 'codeLength'],
      ['OTP_MAX_ATTEMPTS', 'maxAttempts'],
      ['OTP_MAX_SENDS_PER_HOUR', 'maxSendsPerHour'],
      ['OTP_MAX_SENDS_PER_DAY', 'maxSendsPerDay'],
      ['OTP_BCRYPT_COST', 'bcryptCost'],
      ['OTP_THROTTLE_LIMIT', 'throttleLimit'],
      ['OTP_THROTTLE_TTL_SECONDS', 'throttleTtlSeconds'],
    ])('reads %s into %s', (variable, option) => {
      expect(readExampleConfig({ [variable]: '7' }).otp[option]).toBe(7);
      expect(readExampleConfig({ [variable]: ' 12 ' }).otp[option]).toBe(12);
      // Unset or empty: left to the module's default.
      expect(readExampleConfig({ [variable]: '' }).otp[option]).toBeUndefined();
    });

    it.each([
      'PORT',
      'OTP_TTL_SECONDS',
      'OTP_CODE_LENGTH',
      'OTP_MAX_ATTEMPTS',
      'OTP_MAX_SENDS_PER_HOUR',
      'OTP_MAX_SENDS_PER_DAY',
      'OTP_BCRYPT_COST',
      'OTP_THROTTLE_LIMIT',
      'OTP_THROTTLE_TTL_SECONDS',
    ])('refuses a %s that is not a whole number, naming it', (variable) => {
      for (const value of ['abc', '5m', '1.5', '-1', '1e3', '0x10', '3,4']) {
        expect(() => readExampleConfig({ [variable]: value })).toThrow(variable);
      }
    });
  });

  describe('comma lists of seconds', () => {
    it.each<[string, keyof OtpModuleOptions]>([
      ['OTP_RESEND_COOLDOWNS', 'resendCooldownSeconds'],
      ['OTP_LOCKOUT_STEPS', 'lockoutStepSeconds'],
    ])('reads %s into %s', (variable, option) => {
      expect(readExampleConfig({ [variable]: '10,20,40' }).otp[option]).toEqual([10, 20, 40]);
      expect(readExampleConfig({ [variable]: ' 5 , 15 ' }).otp[option]).toEqual([5, 15]);
      expect(readExampleConfig({ [variable]: '45' }).otp[option]).toEqual([45]);
      expect(readExampleConfig({ [variable]: '' }).otp[option]).toBeUndefined();
    });

    it.each(['OTP_RESEND_COOLDOWNS', 'OTP_LOCKOUT_STEPS'])(
      'refuses a bad %s, naming it',
      (variable) => {
        for (const value of [
          '30,,60',
          '30,abc',
          '30,',
          ',30',
          '30;60',
          '30 60',
          '-30',
          '1.5',
          ' ',
        ]) {
          expect(() => readExampleConfig({ [variable]: value })).toThrow(variable);
        }
      },
    );
  });

  describe('LOG_LEVEL', () => {
    it('is info by default, and when empty', () => {
      expect(readExampleConfig({}).logLevel).toBe('info');
      expect(readExampleConfig({ LOG_LEVEL: '' }).logLevel).toBe('info');
    });

    it.each(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])(
      'reads "%s"',
      (level) => {
        expect(readExampleConfig({ LOG_LEVEL: level }).logLevel).toBe(level);
      },
    );

    it.each(['verbose', 'INFO', 'log', '30'])('refuses "%s", naming LOG_LEVEL', (level) => {
      expect(() => readExampleConfig({ LOG_LEVEL: level })).toThrow(
        `LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "${level}".`,
      );
    });
  });

  describe('DATABASE_URL', () => {
    it('is passed through', () => {
      const url = 'postgres://user:pw@db.internal:5432/otp';
      expect(readExampleConfig({ DATABASE_URL: url }).databaseUrl).toBe(url);
    });

    it('is unset when empty', () => {
      expect(readExampleConfig({ DATABASE_URL: '' }).databaseUrl).toBeUndefined();
    });
  });

  describe('delivery: OTP_PROVIDER and OTP_EMAIL/SMS/VOICE_PROVIDERS', () => {
    afterEach(() => {
      jest.restoreAllMocks();
    });

    it.each<[string, Env, Record<ExampleChannel, string[]>]>([
      [
        'nothing set: console everywhere',
        {},
        { sms: ['console'], voice: ['console'], email: ['console'] },
      ],
      [
        'OTP_PROVIDER=webhook',
        { OTP_PROVIDER: 'webhook', ...WEBHOOK },
        { sms: ['webhook'], voice: ['webhook'], email: ['webhook'] },
      ],
      [
        'OTP_PROVIDER=smtp: an email-only app',
        { OTP_PROVIDER: 'smtp', ...SMTP },
        { sms: [], voice: [], email: ['smtp'] },
      ],
      [
        'OTP_PROVIDER=twilio with a number',
        { OTP_PROVIDER: 'twilio', ...TWILIO },
        { sms: ['twilio'], voice: ['twilio'], email: [] },
      ],
      [
        'OTP_PROVIDER=twilio with a Messaging Service: SMS only',
        { OTP_PROVIDER: 'twilio', ...TWILIO_MESSAGING },
        { sms: ['twilio'], voice: [], email: [] },
      ],
      [
        'a list per channel',
        {
          ...SMTP,
          ...TWILIO,
          ...WEBHOOK,
          OTP_EMAIL_PROVIDERS: 'smtp,webhook',
          OTP_SMS_PROVIDERS: 'twilio,webhook',
          OTP_VOICE_PROVIDERS: 'twilio',
        },
        { sms: ['twilio', 'webhook'], voice: ['twilio'], email: ['smtp', 'webhook'] },
      ],
      [
        'lists in opposite orders',
        {
          ...WEBHOOK,
          OTP_EMAIL_PROVIDERS: 'webhook,console',
          OTP_SMS_PROVIDERS: 'console,webhook',
        },
        { sms: ['console', 'webhook'], voice: ['console'], email: ['webhook', 'console'] },
      ],
      [
        'a list for one channel, OTP_PROVIDER for the channels it carries',
        { OTP_PROVIDER: 'smtp', ...SMTP, OTP_SMS_PROVIDERS: 'console' },
        { sms: ['console'], voice: [], email: ['smtp'] },
      ],
      [
        'spaces around names',
        { ...WEBHOOK, OTP_VOICE_PROVIDERS: ' webhook , console ' },
        { sms: ['console'], voice: ['webhook', 'console'], email: ['console'] },
      ],
      [
        'an empty list: OTP_PROVIDER',
        { OTP_PROVIDER: 'webhook', ...WEBHOOK, OTP_EMAIL_PROVIDERS: '' },
        { sms: ['webhook'], voice: ['webhook'], email: ['webhook'] },
      ],
    ])('%s', (_name, env, expected) => {
      const { otp } = readExampleConfig(env);
      expect(carrierNames(otp)).toEqual(expected);
      // Channels with a carrier, and only those, in the module's order.
      expect(otp.channels).toEqual(CHANNELS.filter((c) => expected[c].length > 0));
      const resolved = resolveOtpOptions(otp);
      expect(resolved.channels).toEqual(otp.channels);
      expect(resolved.providers).toBe(otp.providers);
      closeAll(otp);
    });

    it('builds each provider once, however many channels list it', () => {
      const { otp } = readExampleConfig({
        ...SMTP,
        ...TWILIO,
        ...WEBHOOK,
        OTP_EMAIL_PROVIDERS: 'smtp,webhook,console',
        OTP_SMS_PROVIDERS: 'twilio,webhook,console',
        OTP_VOICE_PROVIDERS: 'webhook,twilio',
      });
      const [smtp, emailWebhook, emailConsole] = carriers(otp, 'email');
      const [smsTwilio, smsWebhook, smsConsole] = carriers(otp, 'sms');
      const [voiceWebhook, voiceTwilio] = carriers(otp, 'voice');
      expect(smtp).toBeInstanceOf(SmtpOtpProvider);
      expect(smsTwilio).toBeInstanceOf(TwilioOtpProvider);
      expect(emailWebhook).toBeInstanceOf(WebhookOtpProvider);
      expect(emailConsole).toBeInstanceOf(ConsoleOtpProvider);
      expect(smsWebhook).toBe(emailWebhook);
      expect(voiceWebhook).toBe(emailWebhook);
      expect(smsConsole).toBe(emailConsole);
      expect(voiceTwilio).toBe(smsTwilio);
      expect(new Set((otp.providers ?? []).map(unwrap)).size).toBe(4);
      closeAll(otp);
    });

    it('passes a provider as is when it carries exactly the channels it is listed for', () => {
      const plain = readExampleConfig({}).otp.providers;
      expect(plain).toHaveLength(1);
      // Unwrapped, so the module still warns about the console provider in production.
      expect(plain?.[0]).toBeInstanceOf(ConsoleOtpProvider);

      const smtpOnly = readExampleConfig({ OTP_PROVIDER: 'smtp', ...SMTP }).otp;
      expect(smtpOnly.providers).toHaveLength(1);
      expect(smtpOnly.providers?.[0]).toBeInstanceOf(SmtpOtpProvider);
      closeAll(smtpOnly);
    });

    it('limits a provider to the channels it is listed for', () => {
      const { otp } = readExampleConfig({ ...WEBHOOK, OTP_EMAIL_PROVIDERS: 'webhook' });
      const byName = new Map((otp.providers ?? []).map((p) => [p.name, p]));
      const webhook = byName.get('webhook');
      const console = byName.get('console');
      expect(webhook).toBeInstanceOf(ChannelLimitedOtpProvider);
      expect(unwrap(webhook as OtpProvider)).toBeInstanceOf(WebhookOtpProvider);
      expect(CHANNELS.map((c) => webhook?.supports(c))).toEqual([false, false, true]);
      expect(console).toBeInstanceOf(ChannelLimitedOtpProvider);
      expect(CHANNELS.map((c) => console?.supports(c))).toEqual([true, true, false]);
    });

    it("lists a provider once per channel only when the channels' orders disagree", () => {
      const agree = readExampleConfig({
        ...WEBHOOK,
        OTP_EMAIL_PROVIDERS: 'webhook,console',
        OTP_SMS_PROVIDERS: 'webhook,console',
      }).otp.providers;
      expect(agree?.map((p) => p.name)).toEqual(['webhook', 'console']);

      const disagree = readExampleConfig({
        ...WEBHOOK,
        OTP_EMAIL_PROVIDERS: 'webhook,console',
        OTP_SMS_PROVIDERS: 'console,webhook',
      }).otp.providers;
      expect(disagree?.map((p) => p.name)).toEqual(['console', 'webhook', 'console']);
    });

    describe('ChannelLimitedOtpProvider', () => {
      const inner = {
        name: 'inner',
        supports: (channel: OtpChannel) => channel !== 'voice',
        deliver: jest.fn((_message: OtpMessage, _signal: AbortSignal) => Promise.resolve()),
        ready: jest.fn(() => Promise.resolve()),
        close: jest.fn(() => undefined),
      };
      const limited = new ChannelLimitedOtpProvider(inner, ['email', 'voice']);

      it("takes the provider's name", () => {
        expect(limited.name).toBe('inner');
      });

      it('supports a channel it is listed for and the provider carries', () => {
        expect(CHANNELS.map((c) => limited.supports(c))).toEqual([false, false, true]);
      });

      it('hands deliveries to the shared provider, and refuses other channels', async () => {
        const signal = new AbortController().signal;
        await limited.deliver(message('email'), signal);
        expect(inner.deliver).toHaveBeenCalledWith(message('email'), signal);
        await expect(limited.deliver(message('sms'), signal)).rejects.toThrow('sms');
        expect(inner.deliver).toHaveBeenCalledTimes(1);
      });

      it("passes on the module's ready() and close()", async () => {
        await limited.ready();
        await limited.close();
        expect(inner.ready).toHaveBeenCalledTimes(1);
        expect(inner.close).toHaveBeenCalledTimes(1);
        const bare = new ChannelLimitedOtpProvider(new ConsoleOtpProvider(), ['sms']);
        await expect(bare.ready()).resolves.toBeUndefined();
        expect(bare.close()).toBeUndefined();
      });
    });
  });

  describe('delivery: what reaches the services', () => {
    let twilio: FakeTwilio;
    let sink: SmtpSink;
    let otp: OtpModuleOptionsInput;

    beforeAll(async () => {
      twilio = await FakeTwilio.start({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN });
      sink = await startSmtpSink({ auth: { user: 'mailer', pass: SMTP_PASSWORD } });
      otp = readExampleConfig({
        OTP_EMAIL_PROVIDERS: 'smtp',
        OTP_SMS_PROVIDERS: 'twilio',
        OTP_VOICE_PROVIDERS: 'twilio',
        OTP_SMTP_URL: sink.url,
        OTP_EMAIL_FROM: 'Acme <no-reply@acme.test>',
        ...TWILIO,
        OTP_TWILIO_API_URL: twilio.url,
      }).otp;
    });

    afterAll(async () => {
      closeAll(otp);
      await Promise.all([twilio.close(), sink.close()]);
    });

    it('sends email with OTP_SMTP_URL (its credentials) from OTP_EMAIL_FROM', async () => {
      const [smtp] = carriers(otp, 'email');
      await smtp?.deliver(message('email'), new AbortController().signal);
      const mail = await sink.nextMail();
      expect(mail.user).toBe('mailer');
      expect(mail.parsed.from?.value).toEqual([
        expect.objectContaining({ name: 'Acme', address: 'no-reply@acme.test' }),
      ]);
      expect(mail.envelopeTo).toEqual(['ada@example.com']);
    });

    it.each<[OtpChannel, 'Messages' | 'Calls']>([
      ['sms', 'Messages'],
      ['voice', 'Calls'],
    ])(
      'sends %s through OTP_TWILIO_API_URL as the account, from OTP_TWILIO_FROM',
      async (channel, resource) => {
        const [provider] = carriers(otp, channel);
        await provider?.deliver(message(channel), new AbortController().signal);
        const request = twilio.requests.at(-1);
        expect(request).toMatchObject({
          path: `/2010-04-01/Accounts/${ACCOUNT_SID}/${resource}.json`,
          authorized: true,
          problems: [],
        });
        expect(request?.form).toMatchObject({ To: '+14155550123', From: TWILIO.OTP_TWILIO_FROM });
      },
    );

    it.each<[string, Env, boolean]>([
      ['signs with OTP_WEBHOOK_SECRET', { OTP_WEBHOOK_SECRET: WEBHOOK_SECRET }, true],
      [
        'leaves the body unsigned with an empty OTP_WEBHOOK_SECRET',
        { OTP_WEBHOOK_SECRET: '' },
        false,
      ],
      ['leaves the body unsigned without OTP_WEBHOOK_SECRET', {}, false],
    ])('POSTs to OTP_WEBHOOK_URL and %s', async (_name, env, signed) => {
      // A real receiver on loopback: the provider's own HTTP client is what is under test.
      const received: { url?: string; headers: http.IncomingHttpHeaders; body: Buffer }[] = [];
      const server = http.createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (chunk: Buffer) => chunks.push(chunk));
        req.on('end', () => {
          received.push({ url: req.url, headers: req.headers, body: Buffer.concat(chunks) });
          res.writeHead(204).end();
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      try {
        const { otp: webhookOnly } = readExampleConfig({
          OTP_PROVIDER: 'webhook',
          OTP_WEBHOOK_URL: `http://127.0.0.1:${port}/otp`,
          ...env,
        });
        const [webhook] = carriers(webhookOnly, 'email');
        expect(webhook).toBeInstanceOf(WebhookOtpProvider);
        await webhook?.deliver(message('email'), new AbortController().signal);
        await webhook?.close?.();
        expect(received).toHaveLength(1);
        const [request] = received;
        expect(request?.url).toBe('/otp');
        const header = request?.headers[OTP_WEBHOOK_SIGNATURE_HEADER.toLowerCase()];
        if (signed) {
          expect(
            verifyOtpWebhookSignature(request?.body as Buffer, header as string, WEBHOOK_SECRET),
          ).toBe(true);
        } else {
          expect(header).toBeUndefined();
        }
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    });
  });

  describe('OTP_APP_NAME, OTP_WEBOTP_DOMAIN and OTP_ALLOWED_COUNTRIES', () => {
    it.each<[string, string, keyof OtpModuleOptions, unknown]>([
      ['OTP_APP_NAME', 'Acme', 'appName', 'Acme'],
      ['OTP_APP_NAME', '  Acme Bank ', 'appName', 'Acme Bank'],
      ['OTP_WEBOTP_DOMAIN', 'acme.test', 'webOtpDomain', 'acme.test'],
      ['OTP_WEBOTP_DOMAIN', 'login.acme.co.uk', 'webOtpDomain', 'login.acme.co.uk'],
      ['OTP_ALLOWED_COUNTRIES', 'US', 'allowedCountries', ['US']],
      ['OTP_ALLOWED_COUNTRIES', ' US , GB,DE ', 'allowedCountries', ['US', 'GB', 'DE']],
      ['OTP_ALLOWED_COUNTRIES', 'US,GB,US', 'allowedCountries', ['US', 'GB']],
    ])('reads %s=%j into %s', (variable, value, option, expected) => {
      const { otp } = readExampleConfig({ [variable]: value });
      expect(otp[option]).toEqual(expected);
      expect(resolveOtpOptions(otp)[option]).toEqual(expected);
    });

    it.each<[string, keyof OtpModuleOptions, unknown]>([
      ['OTP_APP_NAME', 'appName', 'Your'],
      ['OTP_WEBOTP_DOMAIN', 'webOtpDomain', undefined],
      ['OTP_ALLOWED_COUNTRIES', 'allowedCountries', undefined],
    ])("leaves %s to the module's default when unset or empty", (variable, option, fallback) => {
      for (const env of [{}, { [variable]: '' }]) {
        const { otp } = readExampleConfig(env);
        expect(otp[option]).toBeUndefined();
        expect(resolveOtpOptions(otp)[option]).toEqual(fallback);
      }
    });
  });

  describe('delivery variables with a bad value stop the app, naming the variable', () => {
    it.each<[string, Env, string]>([
      // Provider names.
      ['an unknown OTP_PROVIDER', { OTP_PROVIDER: 'sms' }, 'OTP_PROVIDER'],
      ['OTP_PROVIDER in capitals', { OTP_PROVIDER: 'WEBHOOK' }, 'OTP_PROVIDER'],
      ['a list in OTP_PROVIDER', { OTP_PROVIDER: 'console,webhook' }, 'OTP_PROVIDER'],
      ['an unknown name', { OTP_SMS_PROVIDERS: 'console,nexmo' }, 'OTP_SMS_PROVIDERS'],
      ['a name in capitals', { OTP_EMAIL_PROVIDERS: 'Console' }, 'OTP_EMAIL_PROVIDERS'],
      ['an empty item', { OTP_VOICE_PROVIDERS: 'console,,console' }, 'OTP_VOICE_PROVIDERS'],
      ['a trailing comma', { OTP_VOICE_PROVIDERS: 'console,' }, 'OTP_VOICE_PROVIDERS'],
      ['blanks only', { OTP_SMS_PROVIDERS: ' ' }, 'OTP_SMS_PROVIDERS'],
      ['a name twice', { OTP_SMS_PROVIDERS: 'console,console' }, 'OTP_SMS_PROVIDERS'],
      // A provider listed for a channel it cannot carry.
      ['smtp for sms', { ...SMTP, OTP_SMS_PROVIDERS: 'smtp' }, 'OTP_SMS_PROVIDERS'],
      ['smtp for voice', { ...SMTP, OTP_VOICE_PROVIDERS: 'console,smtp' }, 'OTP_VOICE_PROVIDERS'],
      ['twilio for email', { ...TWILIO, OTP_EMAIL_PROVIDERS: 'twilio' }, 'OTP_EMAIL_PROVIDERS'],
      [
        'twilio for voice with a Messaging Service only',
        { ...TWILIO_MESSAGING, OTP_VOICE_PROVIDERS: 'twilio' },
        'OTP_VOICE_PROVIDERS',
      ],
      // What a provider needs.
      ['webhook without OTP_WEBHOOK_URL', { OTP_PROVIDER: 'webhook' }, 'OTP_WEBHOOK_URL'],
      [
        'webhook with an empty OTP_WEBHOOK_URL',
        { OTP_SMS_PROVIDERS: 'webhook', OTP_WEBHOOK_URL: '' },
        'OTP_WEBHOOK_URL',
      ],
      [
        'smtp without OTP_SMTP_URL',
        { OTP_EMAIL_PROVIDERS: 'smtp', OTP_EMAIL_FROM: 'a@b.test' },
        'OTP_SMTP_URL',
      ],
      [
        'smtp without OTP_EMAIL_FROM',
        { OTP_EMAIL_PROVIDERS: 'smtp', OTP_SMTP_URL: SMTP.OTP_SMTP_URL },
        'OTP_EMAIL_FROM',
      ],
      [
        'twilio without OTP_TWILIO_ACCOUNT_SID',
        { ...TWILIO, OTP_TWILIO_ACCOUNT_SID: '', OTP_SMS_PROVIDERS: 'twilio' },
        'OTP_TWILIO_ACCOUNT_SID',
      ],
      [
        'twilio without OTP_TWILIO_AUTH_TOKEN',
        { ...TWILIO, OTP_TWILIO_AUTH_TOKEN: undefined, OTP_PROVIDER: 'twilio' },
        'OTP_TWILIO_AUTH_TOKEN',
      ],
      [
        'twilio with neither a number nor a Messaging Service',
        { ...TWILIO, OTP_TWILIO_FROM: '', OTP_SMS_PROVIDERS: 'twilio' },
        'OTP_TWILIO_MESSAGING_SERVICE_SID',
      ],
      [
        'twilio with both a number and a Messaging Service',
        {
          ...TWILIO_MESSAGING,
          OTP_TWILIO_FROM: TWILIO.OTP_TWILIO_FROM,
          OTP_SMS_PROVIDERS: 'twilio',
        },
        'OTP_TWILIO_FROM',
      ],
      // Values of the example app's own checks.
      [
        'an OTP_APP_NAME with a line break',
        { OTP_APP_NAME: 'Acme\nCall +1 900 555 0100' },
        'OTP_APP_NAME',
      ],
      [
        'an OTP_WEBOTP_DOMAIN with a scheme',
        { OTP_WEBOTP_DOMAIN: 'https://acme.test' },
        'OTP_WEBOTP_DOMAIN',
      ],
      [
        'an OTP_WEBOTP_DOMAIN with a port',
        { OTP_WEBOTP_DOMAIN: 'acme.test:443' },
        'OTP_WEBOTP_DOMAIN',
      ],
      [
        'an OTP_WEBOTP_DOMAIN with a path',
        { OTP_WEBOTP_DOMAIN: 'acme.test/login' },
        'OTP_WEBOTP_DOMAIN',
      ],
      ['a lower-case country', { OTP_ALLOWED_COUNTRIES: 'us' }, 'OTP_ALLOWED_COUNTRIES'],
      ['a three-letter country', { OTP_ALLOWED_COUNTRIES: 'USA' }, 'OTP_ALLOWED_COUNTRIES'],
      [
        'a country that does not exist',
        { OTP_ALLOWED_COUNTRIES: 'US,XX' },
        'OTP_ALLOWED_COUNTRIES',
      ],
      ['an empty country', { OTP_ALLOWED_COUNTRIES: 'US,,GB' }, 'OTP_ALLOWED_COUNTRIES'],
      [
        'countries split by semicolons',
        { OTP_ALLOWED_COUNTRIES: 'US;GB' },
        'OTP_ALLOWED_COUNTRIES',
      ],
    ])('%s', (_name, env, variable) => {
      expect(() => readExampleConfig(env)).toThrow(variable);
      expectNoSecretIn(() => readExampleConfig(env));
    });

    // The provider's own check, re-thrown with the variable in front.
    it.each<[string, Env, string]>([
      [
        'an OTP_WEBHOOK_URL that is not http(s)',
        { OTP_PROVIDER: 'webhook', OTP_WEBHOOK_URL: 'ftp://example.com/x' },
        'OTP_WEBHOOK_URL',
      ],
      [
        'a short OTP_WEBHOOK_SECRET',
        { OTP_PROVIDER: 'webhook', ...WEBHOOK, OTP_WEBHOOK_SECRET: SHORT_SECRET },
        'OTP_WEBHOOK_SECRET',
      ],
      [
        'an OTP_SMTP_URL that does not parse',
        {
          ...SMTP,
          OTP_PROVIDER: 'smtp',
          OTP_SMTP_URL: `smtp://mailer:${SMTP_PASSWORD}@[bad host]:25`,
        },
        'OTP_SMTP_URL',
      ],
      [
        'an OTP_SMTP_URL of another scheme',
        {
          ...SMTP,
          OTP_PROVIDER: 'smtp',
          OTP_SMTP_URL: `https://mailer:${SMTP_PASSWORD}@mail.test`,
        },
        'OTP_SMTP_URL',
      ],
      [
        'an OTP_SMTP_URL with a password and no user',
        { ...SMTP, OTP_PROVIDER: 'smtp', OTP_SMTP_URL: `smtp://:${SMTP_PASSWORD}@mail.test` },
        'OTP_SMTP_URL',
      ],
      [
        'an OTP_EMAIL_FROM that is no address',
        { ...SMTP, OTP_PROVIDER: 'smtp', OTP_EMAIL_FROM: 'Acme' },
        'OTP_EMAIL_FROM',
      ],
      [
        'an OTP_EMAIL_FROM with a line break',
        { ...SMTP, OTP_PROVIDER: 'smtp', OTP_EMAIL_FROM: 'a@b.test\r\nBcc: c@d.test' },
        'OTP_EMAIL_FROM',
      ],
      [
        'a malformed OTP_TWILIO_ACCOUNT_SID',
        { ...TWILIO, OTP_PROVIDER: 'twilio', OTP_TWILIO_ACCOUNT_SID: 'AC123' },
        'OTP_TWILIO_ACCOUNT_SID',
      ],
      [
        'an OTP_TWILIO_AUTH_TOKEN with a space',
        { ...TWILIO, OTP_PROVIDER: 'twilio', OTP_TWILIO_AUTH_TOKEN: SPACED_TOKEN },
        'OTP_TWILIO_AUTH_TOKEN',
      ],
      [
        'an OTP_TWILIO_FROM not in E.164',
        { ...TWILIO, OTP_PROVIDER: 'twilio', OTP_TWILIO_FROM: '4155550100' },
        'OTP_TWILIO_FROM',
      ],
      [
        'a malformed OTP_TWILIO_MESSAGING_SERVICE_SID',
        { ...TWILIO_MESSAGING, OTP_PROVIDER: 'twilio', OTP_TWILIO_MESSAGING_SERVICE_SID: 'MG1' },
        'OTP_TWILIO_MESSAGING_SERVICE_SID',
      ],
      [
        'an OTP_TWILIO_API_URL that is not http(s)',
        { ...TWILIO, OTP_PROVIDER: 'twilio', OTP_TWILIO_API_URL: 'ftp://twilio.test' },
        'OTP_TWILIO_API_URL',
      ],
    ])('%s', (_name, env, variable) => {
      expect(() => readExampleConfig(env)).toThrow(new RegExp(`^${variable}: `));
      expectNoSecretIn(() => readExampleConfig(env));
    });
  });

  describe('OTP_HASHER and OTP_SECRET', () => {
    it('reads "bcrypt"', () => {
      expect(readExampleConfig({ OTP_HASHER: 'bcrypt' }).otp.hasher).toBe('bcrypt');
    });

    it('reads "hmac" with OTP_SECRET as the key', () => {
      const { otp } = readExampleConfig({ OTP_HASHER: 'hmac', OTP_SECRET: SECRET_32 });
      expect(otp).toMatchObject({ hasher: 'hmac', hmacSecret: SECRET_32 });
      expect(() => resolveOtpOptions(otp)).not.toThrow();
    });

    it.each([
      ['no OTP_SECRET', {}],
      ['an empty OTP_SECRET', { OTP_SECRET: '' }],
      ['an OTP_SECRET of 31 bytes', { OTP_SECRET: 's'.repeat(31) }],
    ])('refuses "hmac" with %s, naming OTP_SECRET', (_name, env) => {
      expect(() => readExampleConfig({ OTP_HASHER: 'hmac', ...env })).toThrow('OTP_SECRET');
    });

    it('counts OTP_SECRET in bytes, not characters', () => {
      // 16 two-byte characters: 32 bytes.
      expect(() =>
        readExampleConfig({ OTP_HASHER: 'hmac', OTP_SECRET: 'é'.repeat(16) }),
      ).not.toThrow();
      expect(() => readExampleConfig({ OTP_HASHER: 'hmac', OTP_SECRET: 'é'.repeat(15) })).toThrow(
        'OTP_SECRET',
      );
    });

    it.each(['sha256', 'argon2', 'HMAC'])(
      'refuses an unknown hasher %j, naming OTP_HASHER',
      (value) => {
        expect(() => readExampleConfig({ OTP_HASHER: value })).toThrow('OTP_HASHER');
      },
    );
  });

  describe('OTP_DEFAULT_REGION', () => {
    it('reads a region', () => {
      expect(readExampleConfig({ OTP_DEFAULT_REGION: 'GB' }).otp.defaultRegion).toBe('GB');
    });

    it('is left to the default when empty', () => {
      expect(readExampleConfig({ OTP_DEFAULT_REGION: '' }).otp.defaultRegion).toBeUndefined();
    });
  });

  describe('OTP_THROTTLE_STORE_FAILURE', () => {
    it.each(['closed', 'open'] as const)('reads %j into throttleStoreFailure', (value) => {
      const { otp } = readExampleConfig({ OTP_THROTTLE_STORE_FAILURE: value });
      expect(otp.throttleStoreFailure).toBe(value);
      expect(resolveOtpOptions(otp).throttleStoreFailure).toBe(value);
    });

    it("is left to the module's default ('closed') when unset or empty", () => {
      for (const env of [{}, { OTP_THROTTLE_STORE_FAILURE: '' }]) {
        const { otp } = readExampleConfig(env);
        expect(otp.throttleStoreFailure).toBeUndefined();
        expect(resolveOtpOptions(otp).throttleStoreFailure).toBe('closed');
      }
    });

    it.each(['Closed', 'OPEN', 'fail-open', 'true', ' open'])(
      'refuses %j, naming OTP_THROTTLE_STORE_FAILURE',
      (value) => {
        expect(() => readExampleConfig({ OTP_THROTTLE_STORE_FAILURE: value })).toThrow(
          'OTP_THROTTLE_STORE_FAILURE',
        );
      },
    );
  });

  describe('OTP_PURPOSES', () => {
    it('maps each purpose to its preset', () => {
      expect(
        readExampleConfig({ OTP_PURPOSES: 'login=login, pay = transaction' }).otp.purposes,
      ).toEqual({ login: 'login', pay: 'transaction' });
      // The module accepts what it reads.
      expect(() =>
        resolveOtpOptions(readExampleConfig({ OTP_PURPOSES: 'reset=account-recovery' }).otp),
      ).not.toThrow();
    });

    it('is unset when empty', () => {
      expect(readExampleConfig({ OTP_PURPOSES: '' }).otp.purposes).toBeUndefined();
    });

    it.each(['login', 'login=', 'pay=payment', 'a=login=b', '=login'])(
      'refuses %j, naming OTP_PURPOSES and the presets',
      (value) => {
        expect(() => readExampleConfig({ OTP_PURPOSES: value })).toThrow(
          /OTP_PURPOSES.*login, transaction, account-recovery, email-verification/,
        );
      },
    );
  });

  describe('OTP_TURNSTILE_SECRET (challenge escalation)', () => {
    it('is off without a secret', () => {
      expect(readExampleConfig({}).otp.challenge).toBeUndefined();
    });

    it('turns challenges on after 5 failed verifies, or OTP_CHALLENGE_AFTER_FAILED_VERIFIES', () => {
      const on = readExampleConfig({ OTP_TURNSTILE_SECRET: 'x' }).otp.challenge;
      expect(on?.afterFailedVerifies).toBe(5);
      expect(typeof on?.verifier.verify).toBe('function');
      const three = readExampleConfig({
        OTP_TURNSTILE_SECRET: 'x',
        OTP_CHALLENGE_AFTER_FAILED_VERIFIES: '3',
      }).otp.challenge;
      expect(three?.afterFailedVerifies).toBe(3);
    });

    it('refuses an OTP_TURNSTILE_VERIFY_URL that is not http(s)', () => {
      expect(() =>
        readExampleConfig({ OTP_TURNSTILE_SECRET: 'x', OTP_TURNSTILE_VERIFY_URL: 'ftp://x' }),
      ).toThrow('OTP_TURNSTILE_VERIFY_URL');
    });
  });

  describe('createThrottleRedis (the client REDIS_URL gets)', () => {
    it('fails fast while Redis is down and logs its errors at most once a minute', () => {
      const warn = jest.fn();
      // A closed loopback port: the connection is refused at once.
      const redis = createThrottleRedis('redis://127.0.0.1:1', { warn } as unknown as Logger);
      try {
        expect(redis.options).toMatchObject({
          enableOfflineQueue: false,
          maxRetriesPerRequest: 1,
          connectTimeout: 1000,
          commandTimeout: 500,
        });
        for (let i = 0; i < 5; i += 1) redis.emit('error', new Error('connect ECONNREFUSED'));
        expect(warn).toHaveBeenCalledTimes(1);
        expect(String(warn.mock.calls[0]?.[0])).toContain('127.0.0.1:1');
      } finally {
        redis.disconnect();
      }
    });
  });
});
