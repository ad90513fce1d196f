import { afterEach, describe, expect, it, jest } from '@jest/globals';
import type { Logger } from '@nestjs/common';
import {
  ConsoleOtpProvider,
  type OtpModuleOptions,
  resolveOtpOptions,
  WebhookOtpProvider,
} from '../src/index.js';
import { createThrottleRedis, readExampleConfig } from './example.config.js';

const SECRET_32 = 's'.repeat(32);

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

  describe('DATABASE_URL', () => {
    it('is passed through', () => {
      const url = 'postgres://user:pw@db.internal:5432/otp';
      expect(readExampleConfig({ DATABASE_URL: url }).databaseUrl).toBe(url);
    });

    it('is unset when empty', () => {
      expect(readExampleConfig({ DATABASE_URL: '' }).databaseUrl).toBeUndefined();
    });
  });

  describe('OTP_PROVIDER and OTP_WEBHOOK_URL', () => {
    afterEach(() => {
      jest.restoreAllMocks();
    });

    it('uses the console provider for "console"', () => {
      const { providers } = readExampleConfig({ OTP_PROVIDER: 'console' }).otp;
      expect(providers).toHaveLength(1);
      expect(providers?.[0]).toBeInstanceOf(ConsoleOtpProvider);
    });

    it('uses a webhook provider that POSTs to OTP_WEBHOOK_URL for "webhook"', async () => {
      const url = 'https://hooks.example.com/otp';
      const { providers } = readExampleConfig({
        OTP_PROVIDER: 'webhook',
        OTP_WEBHOOK_URL: url,
      }).otp;
      expect(providers).toHaveLength(1);
      const provider = providers?.[0];
      expect(provider).toBeInstanceOf(WebhookOtpProvider);

      const fetchSpy = jest
        .spyOn(globalThis, 'fetch')
        .mockResolvedValue(new Response(null, { status: 204 }));
      await provider?.deliver(
        {
          requestId: 'r1',
          channel: 'email',
          destination: 'a@example.com',
          purpose: 'login',
          code: '123456',
          text: 'Your verification code is 123456.',
          subject: '123456 is your verification code',
          html: '<p>123456</p>',
          speech: ['1, 2, 3, 4, 5, 6.'],
          appName: 'Your',
          expiresAt: new Date(0),
        },
        new AbortController().signal,
      );
      expect(fetchSpy).toHaveBeenCalledTimes(1);
      expect(fetchSpy.mock.calls[0]?.[0]).toBe(url);
      expect(fetchSpy.mock.calls[0]?.[1]).toMatchObject({ method: 'POST' });
    });

    it('refuses "webhook" without OTP_WEBHOOK_URL, naming it', () => {
      expect(() => readExampleConfig({ OTP_PROVIDER: 'webhook' })).toThrow('OTP_WEBHOOK_URL');
      expect(() => readExampleConfig({ OTP_PROVIDER: 'webhook', OTP_WEBHOOK_URL: '' })).toThrow(
        'OTP_WEBHOOK_URL',
      );
    });

    it('refuses a webhook URL that is not http(s), naming the variable', () => {
      expect(() =>
        readExampleConfig({ OTP_PROVIDER: 'webhook', OTP_WEBHOOK_URL: 'ftp://example.com/x' }),
      ).toThrow('OTP_WEBHOOK_URL');
    });

    it.each(['sms', 'Console', 'WEBHOOK', 'twilio'])(
      'refuses an unknown provider %j, naming OTP_PROVIDER',
      (value) => {
        expect(() => readExampleConfig({ OTP_PROVIDER: value })).toThrow('OTP_PROVIDER');
      },
    );
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
