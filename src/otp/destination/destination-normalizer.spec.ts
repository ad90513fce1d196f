import { describe, expect, it } from '@jest/globals';
import { DestinationNotAllowedError, ValidationFailedError } from '../errors/otp.errors.js';
import { normalizeDestination, type DestinationRules } from './destination.js';
import { DestinationNormalizer } from './destination-normalizer.js';

const US: DestinationRules = { defaultRegion: 'US' };

describe('DestinationNormalizer', () => {
  it.each([' Ada@Example.COM ', '(415) 555-2671', '+44 20 7946 0958'])(
    'answers %j as normalizeDestination does, the first time and from memory',
    (raw) => {
      const normalizer = new DestinationNormalizer(US);
      const expected = normalizeDestination(raw, US);
      expect(normalizer.normalize(raw)).toEqual(expected);
      expect(normalizer.normalize(raw)).toEqual(expected);
      expect(normalizer.size).toBe(1);
    },
  );

  it('hands out a remembered answer no caller can change', () => {
    const normalizer = new DestinationNormalizer(US);
    const first = normalizer.normalize('ada@example.com');
    expect(Object.isFrozen(first)).toBe(true);
    expect(() => Object.assign(first, { value: 'eve@example.com' })).toThrow(TypeError);
    expect(normalizer.normalize('ada@example.com').value).toBe('ada@example.com');
  });

  it('applies its own rules: a country the rules refuse is refused every time, and not kept', () => {
    const normalizer = new DestinationNormalizer({ defaultRegion: 'US', allowedCountries: ['US'] });
    for (let i = 0; i < 2; i++) {
      expect(() => normalizer.normalize('+44 20 7946 0958')).toThrow(DestinationNotAllowedError);
    }
    expect(normalizer.normalize('(415) 555-2671').value).toBe('+14155552671');
    expect(normalizer.size).toBe(1);
  });

  it('keeps no invalid input: each one is refused with the same message', () => {
    const normalizer = new DestinationNormalizer(US);
    const messages = [0, 1].map(() => {
      try {
        normalizer.normalize('not an address');
        return 'accepted';
      } catch (error) {
        expect(error).toBeInstanceOf(ValidationFailedError);
        return (error as ValidationFailedError).message;
      }
    });
    expect(messages[1]).toBe(messages[0]);
    expect(normalizer.size).toBe(0);
  });

  it('keeps at most `capacity` answers, dropping the oldest first', () => {
    const normalizer = new DestinationNormalizer(US, 3);
    for (let i = 0; i < 5; i++) normalizer.normalize(`user${i}@example.com`);
    expect(normalizer.size).toBe(3);
    // The newest are still answered; an evicted one is computed again (and kept again).
    expect(normalizer.normalize('user4@example.com').value).toBe('user4@example.com');
    expect(normalizer.size).toBe(3);
    expect(normalizer.normalize('user0@example.com').value).toBe('user0@example.com');
    expect(normalizer.size).toBe(3);
  });

  it('keeps nothing with capacity 0', () => {
    const normalizer = new DestinationNormalizer(US, 0);
    expect(normalizer.normalize('ada@example.com').value).toBe('ada@example.com');
    expect(normalizer.size).toBe(0);
  });
});
