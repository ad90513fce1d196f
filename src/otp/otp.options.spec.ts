import { describe, expect, it } from '@jest/globals';
import { resolveOtpOptions, type OtpModuleOptionsInput } from './otp.options.js';

const SECRET_32 = 'x'.repeat(32);

/** The defaults the contract promises (its "Policy defaults", routes and example-app tables). */
const CONTRACT_DEFAULTS = {
  codeLength: 6,
  ttlSeconds: 300,
  maxAttempts: 3,
  resendCooldownSeconds: [30, 60, 120, 300],
  lockoutStepSeconds: [30, 60, 300, 900, 3600],
  maxSendsPerHour: 5,
  maxSendsPerDay: 10,
  bodyLimitBytes: 16_384,
  channels: ['sms', 'voice', 'email'],
  migrationsRun: false,
  hasher: 'bcrypt',
  bcryptCost: 10,
  defaultRegion: 'US',
  defaultPurpose: 'login',
  tokenTtlSeconds: 600,
  deliveryTimeoutMs: 5_000,
  throttleLimit: 20,
  throttleTtlSeconds: 60,
};

describe('resolveOtpOptions', () => {
  it('defaults to the contract', () => {
    const options = resolveOtpOptions();
    expect(options).toMatchObject(CONTRACT_DEFAULTS);
    expect(options.hmacSecret).toBeUndefined();
    expect(options.allowedCountries).toBeUndefined();
    expect(options.channelFallback).toEqual({ sms: ['voice'] });
  });

  it('gives the same defaults for an empty object', () => {
    expect(resolveOtpOptions({})).toEqual(resolveOtpOptions());
  });

  it('merges overrides over the defaults', () => {
    const overrides: OtpModuleOptionsInput = {
      codeLength: 8,
      resendCooldownSeconds: [10, 20],
      hasher: 'hmac',
      hmacSecret: SECRET_32,
      defaultRegion: 'GB',
      allowedCountries: ['GB'],
    };
    expect(resolveOtpOptions(overrides)).toMatchObject({ ...CONTRACT_DEFAULTS, ...overrides });
  });

  it('does not let undefined values erase defaults', () => {
    const options = resolveOtpOptions({
      codeLength: undefined,
      ttlSeconds: undefined,
      resendCooldownSeconds: undefined,
      hasher: undefined,
      defaultPurpose: undefined,
    });
    expect(options).toMatchObject(CONTRACT_DEFAULTS);
  });

  it('does not share default lists between resolutions', () => {
    const first = resolveOtpOptions();
    first.resendCooldownSeconds.push(999);
    expect(resolveOtpOptions().resendCooldownSeconds).toEqual([30, 60, 120, 300]);
  });

  it.each<[string, OtpModuleOptionsInput]>([
    ['codeLength', { codeLength: 4 }],
    ['codeLength', { codeLength: 10 }],
    ['resendCooldownSeconds', { resendCooldownSeconds: [0] }],
    ['hmacSecret', { hasher: 'hmac', hmacSecret: SECRET_32 }],
    ['hmacSecret', { hasher: 'hmac', hmacSecret: 'é'.repeat(16) }],
    ['bcryptCost', { bcryptCost: 4 }],
    ['defaultPurpose', { defaultPurpose: 'a' }],
    ['defaultPurpose', { defaultPurpose: `a${'b'.repeat(63)}` }],
  ])('accepts a boundary value of %s (%o)', (_name, input) => {
    expect(() => resolveOtpOptions(input)).not.toThrow();
  });

  it.each<[string, OtpModuleOptionsInput]>([
    ['codeLength', { codeLength: 3 }],
    ['codeLength', { codeLength: 11 }],
    ['codeLength', { codeLength: 6.5 }],
    ['hmacSecret', { hasher: 'hmac' }],
    ['hmacSecret', { hasher: 'hmac', hmacSecret: 'x'.repeat(31) }],
    ['hmacSecret', { hasher: 'hmac', hmacSecret: '' }],
    ['resendCooldownSeconds', { resendCooldownSeconds: [] }],
    ['resendCooldownSeconds', { resendCooldownSeconds: [30, -1] }],
    ['resendCooldownSeconds', { resendCooldownSeconds: [30, 1.5] }],
    ['lockoutStepSeconds', { lockoutStepSeconds: [] }],
    ['lockoutStepSeconds', { lockoutStepSeconds: [-30] }],
    ['defaultPurpose', { defaultPurpose: 'Login' }],
    ['defaultPurpose', { defaultPurpose: '' }],
    ['defaultPurpose', { defaultPurpose: '1login' }],
    ['defaultPurpose', { defaultPurpose: 'log in' }],
    ['defaultPurpose', { defaultPurpose: `a${'b'.repeat(64)}` }],
    ['hasher', { hasher: 'sha1' as 'bcrypt' }],
    ['bcryptCost', { bcryptCost: 3 }],
    ['bcryptCost', { bcryptCost: 32 }],
    ['ttlSeconds', { ttlSeconds: 0 }],
    ['maxAttempts', { maxAttempts: 0 }],
    ['maxSendsPerHour', { maxSendsPerHour: -1 }],
    ['maxSendsPerDay', { maxSendsPerDay: 2.5 }],
    ['maxSendsPerDay', { maxSendsPerDay: -Infinity }],
    ['maxSendsPerHour', { maxSendsPerHour: NaN }],
    ['tokenTtlSeconds', { tokenTtlSeconds: 0 }],
    ['throttleLimit', { throttleLimit: 0 }],
    ['bcryptCost', { bcryptCost: 4.5 }],
    ['defaultRegion', { defaultRegion: 'gb' as 'GB' }],
    ['allowedCountries', { allowedCountries: ['US', 'XX' as 'US'] }],
    ['retentionSeconds', { retentionSeconds: 3600 }],
    ['purgeIntervalSeconds', { purgeIntervalSeconds: -1 }],
    ['bodyLimitBytes', { bodyLimitBytes: 0 }],
    ['channels', { channels: ['fax' as 'sms'] }],
    ['migrationsRun', { migrationsRun: 'yes' as unknown as boolean }],
    ['messages.fr.sms', { messages: { fr: { sms: 'Votre code' } } }],
    ['messages.en.voice', { messages: { en: { voice: [] } } }],
    ['webOtpDomain', { webOtpDomain: 'https://acme.test' }],
    ['webOtpDomain', { webOtpDomain: 'acme.test/login' }],
    ['refusedNumberTypes', { refusedNumberTypes: ['PREMIUM' as 'PREMIUM_RATE'] }],
    ['throttleStoreFailure', { throttleStoreFailure: 'maybe' as 'open' }],
    ['statementTimeoutMs', { statementTimeoutMs: 0 }],
    ['poolSize', { poolSize: 0 }],
    ['verifyCacheSize', { verifyCacheSize: -1 }],
    ['verifyCacheSize', { verifyCacheSize: 1.5 }],
  ])('refuses an invalid %s (%o), naming it', (name, input) => {
    expect(() => resolveOtpOptions(input)).toThrow(name);
  });

  it('takes Infinity as no cap for the hourly and daily send caps, and nothing else', () => {
    const resolved = resolveOtpOptions({ maxSendsPerHour: Infinity, maxSendsPerDay: Infinity });
    expect(resolved).toMatchObject({ maxSendsPerHour: Infinity, maxSendsPerDay: Infinity });
    expect(() => resolveOtpOptions({ maxSendsPerDay: 0 })).toThrow(
      'maxSendsPerDay must be a positive integer, or Infinity for no cap',
    );
    expect(() => resolveOtpOptions({ ttlSeconds: Infinity })).toThrow('ttlSeconds');
  });

  it('refuses an unknown option key, naming it and the likely intended one', () => {
    const typo = { ttlSecond: 60 } as OtpModuleOptionsInput;
    expect(() => resolveOtpOptions(typo)).toThrow(/unknown option "ttlSecond".*"ttlSeconds"/);
    const removed = { historyWindowSeconds: 86_400 } as OtpModuleOptionsInput;
    expect(() => resolveOtpOptions(removed)).toThrow('historyWindowSeconds');
  });

  it('refuses an empty provider list, naming providers', () => {
    expect(() => resolveOtpOptions({ providers: [] })).toThrow(/providers must list at least one/);
  });

  it('refuses an enabled channel that no provider supports, naming the channel and the key', () => {
    const emailOnly = {
      name: 'mailer',
      supports: (c: string) => c === 'email',
      deliver: () => Promise.resolve(),
    };
    expect(() => resolveOtpOptions({ providers: [emailOnly] })).toThrow(
      /channels includes 'sms' but no provider supports it \(providers: mailer\).*'voice'/,
    );
    const options = resolveOtpOptions({ providers: [emailOnly], channels: ['email'] });
    // The default sms → voice fallback is dropped with the channels it joins.
    expect(options.channelFallback).toEqual({});
  });

  it('refuses a fallback to a channel that is not enabled', () => {
    expect(() =>
      resolveOtpOptions({ channels: ['sms', 'email'], channelFallback: { sms: ['voice'] } }),
    ).toThrow(/channelFallback.sms falls back to voice/);
  });

  it('lists every problem at once', () => {
    expect(() => resolveOtpOptions({ codeLength: 3, defaultPurpose: 'X' })).toThrow(
      /codeLength.*defaultPurpose/,
    );
  });
});
