import { describe, expect, it } from '@jest/globals';
import { plainToInstance } from 'class-transformer';
import { validateSync } from 'class-validator';
import fc from 'fast-check';
import { SendOtpDto, SendOtpInputDto } from './send-otp.dto.js';
import { ValidationFailedError } from '../errors/otp.errors.js';
import { validateOtpInput } from './validate-input.js';
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

/** The module's DTOs, each judged on its own. */
const DTOS: (new () => object)[] = [SendOtpDto, SendOtpInputDto, VerifyOtpDto, VerifyOtpInputDto];

describe('passesFastPath', () => {
  it.each(DTOS)(
    'accepts only what class-validator accepts, on the instance and on the plain body (%p)',
    (dto) => {
      fc.assert(
        fc.property(body, (plain) => {
          const instance = plainToInstance(dto, plain);
          if (passesFastPath(dto, instance)) expect(validateSync(instance, OPTIONS)).toEqual([]);
          // The plain body is judged as its instance is, so validateOtpInput may skip the transform.
          expect(passesFastPath(dto, plain)).toBe(passesFastPath(dto, instance));
        }),
        { numRuns: 4000 },
      );
    },
  );

  it('accepts the common valid bodies', () => {
    const send = plainToInstance(SendOtpInputDto, { destination: 'ada@example.com' });
    const verify = { destination: 'ada@example.com', code: '123456' };
    expect(passesFastPath(SendOtpInputDto, send)).toBe(true);
    expect(passesFastPath(VerifyOtpDto, verify)).toBe(true);
    expect(passesFastPath(VerifyOtpDto, { destination: 'a', code: 123456 })).toBe(false);
    expect(passesFastPath(VerifyOtpDto, { ...verify, extra: 'x' })).toBe(false);
  });
});

describe('validateOtpInput', () => {
  it.each(DTOS)(
    'returns what class-transformer would build, or refuses what class-validator refuses (%p)',
    (dto) => {
      fc.assert(
        fc.property(body, (plain) => {
          const instance = plainToInstance(dto, plain);
          const errors = validateSync(instance, OPTIONS);
          if (errors.length > 0) {
            expect(() => validateOtpInput(dto, plain)).toThrow(ValidationFailedError);
          } else {
            const validated = validateOtpInput(dto, plain);
            expect(validated).toBeInstanceOf(dto);
            expect(validated).toStrictEqual(instance);
          }
        }),
        { numRuns: 2000 },
      );
    },
  );
});
