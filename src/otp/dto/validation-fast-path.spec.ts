import { describe, expect, it } from '@jest/globals';
import { plainToInstance } from 'class-transformer';
import { validateSync } from 'class-validator';
import fc from 'fast-check';
import { SendOtpDto, SendOtpInputDto } from './send-otp.dto.js';
import { passesFastPath } from './validation-fast-path.js';
import { VerifyOtpDto, VerifyOtpInputDto } from './verify-otp.dto.js';

const OPTIONS = {
  whitelist: true,
  forbidNonWhitelisted: true,
  forbidUnknownValues: true,
  validationError: { target: false, value: false },
};

/** Field values near every boundary the DTOs draw: types, lengths, patterns, surrogate pairs. */
const value = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  fc.constant(''),
  fc.integer(),
  fc.boolean(),
  fc.constantFrom('sms', 'voice', 'email', 'fax', 'login', 'signup', 'Login', '123456', '12 34'),
  fc.stringMatching(/^[0-9]{3,11}$/),
  fc.stringMatching(/^[a-z][a-z0-9_.-]{0,66}$/),
  fc.string({ maxLength: 300 }),
  fc.string({ unit: 'grapheme', maxLength: 260 }),
  fc.constantFrom('a'.repeat(254), 'a'.repeat(255), '😀'.repeat(200), 'en-GB', 'x-'),
);
const KEYS = [
  'destination',
  'channel',
  'purpose',
  'code',
  'challenge',
  'idempotencyKey',
  'fallbackEmail',
  'locale',
  'subject',
  'other',
];
const body = fc.dictionary(fc.constantFrom(...KEYS), value, { maxKeys: 6 });

describe('passesFastPath', () => {
  it.each([SendOtpDto, SendOtpInputDto, VerifyOtpDto, VerifyOtpInputDto])(
    'accepts only what class-validator accepts (%p)',
    (type) => {
      fc.assert(
        fc.property(body, (plain) => {
          const instance = plainToInstance(type as new () => object, plain);
          if (passesFastPath(instance)) expect(validateSync(instance, OPTIONS)).toEqual([]);
        }),
        { numRuns: 4000 },
      );
    },
  );

  it('accepts the common valid bodies', () => {
    const send = plainToInstance(SendOtpInputDto, { destination: 'ada@example.com' });
    const verify = plainToInstance(VerifyOtpDto, {
      destination: 'ada@example.com',
      code: '123456',
    });
    expect(passesFastPath(send)).toBe(true);
    expect(passesFastPath(verify)).toBe(true);
    expect(passesFastPath(plainToInstance(VerifyOtpDto, { destination: 'a', code: 123456 }))).toBe(
      false,
    );
  });
});
