import { describe, expect, it } from '@jest/globals';
import { DestinationNotAllowedError, ValidationFailedError } from '../errors/otp.errors.js';
import {
  maskDestination,
  normalizeDestination,
  resolveChannel,
  type Destination,
  type DestinationRules,
} from './destination.js';
import type { OtpChannel } from '../otp.types.js';

const US: DestinationRules = { defaultRegion: 'US' };
const GB: DestinationRules = { defaultRegion: 'GB' };

/** A valid email of exactly `length` characters (local part 64, domain labels at most 63). */
function emailOfLength(length: number): string {
  const local = 'a'.repeat(64);
  const tld = '.com';
  let rest = length - local.length - 1 - tld.length;
  const labels: string[] = [];
  while (rest > 0) {
    const label = Math.min(63, rest);
    labels.push('b'.repeat(label));
    rest -= label + 1; // the dot before the next label
  }
  const email = `${local}@${labels.join('.')}${tld}`;
  if (email.length !== length) throw new Error(`could not build an email of length ${length}`);
  return email;
}

describe('normalizeDestination', () => {
  describe('emails', () => {
    it.each([
      ['Alice@Example.COM', 'alice@example.com'],
      ['  bob@example.com  ', 'bob@example.com'],
      [' Carol.Smith+otp@Sub.Example.org ', 'carol.smith+otp@sub.example.org'],
    ])('normalizes %j to %j', (raw, expected) => {
      expect(normalizeDestination(raw, US)).toEqual({ kind: 'email', value: expected });
    });

    it.each([
      ['in the local part', 'us\ud800er@example.com'],
      ['in the domain', 'user@exam\udc00ple.com'],
      ['at the end', 'user@example.com\ud83d'],
    ])(
      'refuses half of a surrogate pair %s with a validation error, not a throw of its own',
      (_where, raw) => {
        expect(() => normalizeDestination(raw, US)).toThrow(ValidationFailedError);
      },
    );

    it('accepts a whole surrogate pair where isEmail does (in a domain label)', () => {
      const raw = 'user@ex\ud83d\ude00ample.com';
      expect(normalizeDestination(raw, US)).toEqual({ kind: 'email', value: raw });
    });

    it('accepts an email of 254 characters', () => {
      const email = emailOfLength(254);
      expect(normalizeDestination(email, US)).toEqual({ kind: 'email', value: email });
    });

    it('accepts 254 characters once surrounding spaces are trimmed', () => {
      const email = emailOfLength(254);
      expect(normalizeDestination(`  ${email}  `, US).value).toBe(email);
    });

    it.each([
      ['255 characters', emailOfLength(255)],
      ['10,000 characters', `${'a'.repeat(9_988)}@example.com`],
      ['a space inside', 'ali ce@example.com'],
      ['a space before the @', 'alice @example.com'],
      ['a non-breaking space inside', 'ali\u00a0ce@example.com'],
      ['no domain', 'alice@'],
      ['no local part', '@example.com'],
      ['two @', 'alice@@example.com'],
    ])('refuses an email with %s', (_name, raw) => {
      expect(() => normalizeDestination(raw, US)).toThrow(ValidationFailedError);
    });
  });

  describe('control and invisible characters', () => {
    it.each([
      ['a NUL', 'alice\u0000@example.com'],
      ['a tab', 'alice\t@example.com'],
      ['a trailing newline', 'alice@example.com\n'],
      ['a DEL', 'alice@example.com\u007f'],
      ['a left-to-right mark (U+200E)', 'alice\u200e@example.com'],
      ['a right-to-left override (U+202E)', '\u202ealice@example.com'],
      ['a zero-width space (U+200B)', 'alice@exam\u200bple.com'],
      ['a zero-width joiner (U+200D)', 'alice\u200d@example.com'],
      ['a byte-order mark (U+FEFF)', '\ufeffalice@example.com'],
      ['a right-to-left override in a phone number', '+1 415\u202e 555 2671'],
      ['a zero-width space in a phone number', '+14155552671\u200b'],
    ])('refuses %s', (_name, raw) => {
      expect(() => normalizeDestination(raw, US)).toThrow(ValidationFailedError);
    });

    it('answers VALIDATION_FAILED with status 400', () => {
      let error: unknown;
      try {
        normalizeDestination('alice\u200e@example.com', US);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ValidationFailedError);
      expect((error as ValidationFailedError).getStatus()).toBe(400);
      expect((error as ValidationFailedError).code).toBe('VALIDATION_FAILED');
    });
  });

  describe('phone numbers', () => {
    it.each<[string, DestinationRules, string]>([
      ['+14155552671', US, '+14155552671'],
      ['+1 415 555 2671', US, '+14155552671'],
      ['(415) 555-2671', US, '+14155552671'],
      ['415.555.2671', US, '+14155552671'],
      ['415-555-2671', US, '+14155552671'],
      ['  4155552671  ', US, '+14155552671'],
      ['+44 7400 123456', US, '+447400123456'],
      ['+44 7400 123456', GB, '+447400123456'],
      ['07400 123456', GB, '+447400123456'],
      ['+1 (415) 555-2671', GB, '+14155552671'],
    ])('normalizes %j (default region %o) to E.164', (raw, rules, expected) => {
      expect(normalizeDestination(raw, rules)).toEqual({ kind: 'phone', value: expected });
    });

    it('reads a national number in the default region, not elsewhere', () => {
      expect(normalizeDestination('07400 123456', GB).value).toBe('+447400123456');
      expect(() => normalizeDestination('07400 123456', US)).toThrow(ValidationFailedError);
    });

    it.each([
      ['too short', '12345'],
      ['too long', '+1 415 555 2671 1234'],
      ['not a valid US number', '(123) 456-7890'],
      ['an unknown country code', '+999 123 456 789'],
      ['letters', '415-555-CALL'],
      ['an extension', '+1 415 555 2671 ext 12'],
      ['an "x" extension', '+1 415 555 2671 x12'],
      ['a "#" extension', '+1 415 555 2671#12'],
      ['nothing', ''],
      ['only spaces', '   '],
      ['10,000 digits', '1'.repeat(10_000)],
      ['10,000 characters', '+1 (415) 555-2671 '.repeat(556).slice(0, 10_000)],
    ])('refuses a phone number that is %s', (_name, raw) => {
      expect(() => normalizeDestination(raw, US)).toThrow(ValidationFailedError);
    });

    describe('allowedCountries', () => {
      const usOnly: DestinationRules = { defaultRegion: 'US', allowedCountries: ['US', 'CA'] };

      it('accepts a number of an allowed country', () => {
        expect(normalizeDestination('(415) 555-2671', usOnly).value).toBe('+14155552671');
      });

      it.each([
        ['GB', '+44 7400 123456'],
        ['FR', '+33 6 12 34 56 78'],
      ])('refuses a number of another country (%s)', (_country, raw) => {
        expect(() => normalizeDestination(raw, usOnly)).toThrow(DestinationNotAllowedError);
      });

      it('answers OTP_DESTINATION_NOT_ALLOWED with status 400', () => {
        let error: unknown;
        try {
          normalizeDestination('+44 7400 123456', usOnly);
        } catch (e) {
          error = e;
        }
        expect(error).toBeInstanceOf(DestinationNotAllowedError);
        expect((error as DestinationNotAllowedError).getStatus()).toBe(400);
        expect((error as DestinationNotAllowedError).code).toBe('OTP_DESTINATION_NOT_ALLOWED');
      });

      it('does not restrict emails', () => {
        expect(normalizeDestination('alice@example.fr', usOnly).kind).toBe('email');
      });
    });

    it.each([
      ['US premium rate (+1 900)', '+1 900 555 1234'],
      ['US premium rate, national', '(900) 555-1234'],
      ['GB premium rate (+44 909)', '+44 909 879 0942'],
      ['GB premium rate (+44 871)', '+44 871 234 5678'],
      ['AU shared cost (+61 1300)', '+61 1300 123 456'],
      ['GB UAN (+44 55)', '+44 55 1234 5678'],
      ['FR UAN (+33 806)', '+33 8 06 12 34 56'],
      ['GB pager (+44 7640)', '+44 7640 123456'],
    ])('refuses a %s number as not allowed', (_name, raw) => {
      expect(() => normalizeDestination(raw, US)).toThrow(DestinationNotAllowedError);
    });

    it('takes the refused types from the rules: an empty list lets a pager through', () => {
      expect(normalizeDestination('+44 7640 123456', { ...US, refusedNumberTypes: [] })).toEqual({
        kind: 'phone',
        value: '+447640123456',
      });
      // And a type the defaults allow can be refused: toll-free here.
      expect(() =>
        normalizeDestination('+44 800 123 4567', { ...US, refusedNumberTypes: ['TOLL_FREE'] }),
      ).toThrow(DestinationNotAllowedError);
      expect(normalizeDestination('+44 800 123 4567', US).value).toBe('+448001234567');
    });
  });
});

describe('resolveChannel', () => {
  const email: Destination = { kind: 'email', value: 'alice@example.com' };
  const phone: Destination = { kind: 'phone', value: '+14155552671' };

  it('defaults to email for an email address', () => {
    expect(resolveChannel(email)).toBe('email');
  });

  it('defaults to sms for a phone number', () => {
    expect(resolveChannel(phone)).toBe('sms');
  });

  it.each<[Destination, OtpChannel]>([
    [email, 'email'],
    [phone, 'sms'],
    [phone, 'voice'],
  ])('accepts a fitting channel (%o, %s)', (destination, channel) => {
    expect(resolveChannel(destination, channel)).toBe(channel);
  });

  it.each<[Destination, OtpChannel]>([
    [email, 'sms'],
    [email, 'voice'],
    [phone, 'email'],
  ])('refuses a channel that does not fit (%o, %s)', (destination, channel) => {
    expect(() => resolveChannel(destination, channel)).toThrow(ValidationFailedError);
  });
});

describe('maskDestination', () => {
  it.each([
    ['alice@example.com', 'a•••@example.com'],
    ['a@example.com', 'a•••@example.com'],
    ['bob.smith+otp@sub.example.org', 'b•••@sub.example.org'],
  ])('masks the email %s as %s', (value, expected) => {
    expect(maskDestination(value)).toBe(expected);
  });

  it('shows only the first character of the local part, whatever its length', () => {
    const local = 'secretlocalpart';
    const masked = maskDestination(`${local}@example.com`);
    expect(masked.split('@')[0]).toBe('s•••');
    for (const fragment of ['se', 'ec', 'cr', 'part']) expect(masked).not.toContain(fragment);
  });

  it.each([
    ['+14155552671', '+1', '4155552671'],
    ['+447400123456', '+44', '7400123456'],
    ['+33612345678', '+33', '612345678'],
  ])('masks the phone %s down to its country code and last 2 digits', (value, cc, national) => {
    const masked = maskDestination(value);
    expect(masked).toBe(`${cc}${'•'.repeat(national.length - 2)}${national.slice(-2)}`);
    // Only the country code's digits and two more are shown.
    expect(masked.replace(/\D/g, '')).toBe(`${cc.slice(1)}${national.slice(-2)}`);
  });
});
