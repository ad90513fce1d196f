import { describe, expect, it } from '@jest/globals';
import { attemptsRemaining, requestStatus, type RequestLifecycle } from './request-status.js';

const NOW = new Date(Date.UTC(2030, 0, 1, 12, 0, 0));
const later = (seconds: number): Date => new Date(NOW.getTime() + seconds * 1000);

/** A code sent 60 s ago with the contract's defaults (300 s lifetime, 3 attempts), untouched. */
const row = (overrides: Partial<RequestLifecycle> = {}): RequestLifecycle => ({
  deliveryStatus: 'sent',
  expiresAt: later(240),
  verifiedAt: null,
  exhaustedAt: null,
  supersededAt: null,
  attemptsUsed: 0,
  maxAttempts: 3,
  ...overrides,
});

describe('requestStatus', () => {
  it.each<[string, Partial<RequestLifecycle>, string]>([
    ['a delivered, unexpired, untouched code', {}, 'pending'],
    ['a code whose delivery is in progress', { deliveryStatus: 'pending' }, 'pending'],
    ['a code with one attempt left', { attemptsUsed: 2 }, 'pending'],
    ['a code 1 ms before it expires', { expiresAt: later(0.001) }, 'pending'],
    ['a verified code', { verifiedAt: later(-10), attemptsUsed: 1 }, 'verified'],
    [
      'a code verified on its last attempt',
      { verifiedAt: later(-10), attemptsUsed: 3 },
      'verified',
    ],
    [
      'a verified code past its expiry',
      { verifiedAt: later(-400), expiresAt: later(-1) },
      'verified',
    ],
    ['a code at its expiry', { expiresAt: NOW }, 'expired'],
    ['a code past its expiry', { expiresAt: later(-1) }, 'expired'],
    ['an exhausted code', { exhaustedAt: later(-5), attemptsUsed: 3 }, 'exhausted'],
    ['a code with every attempt used', { attemptsUsed: 3 }, 'exhausted'],
    [
      'an exhausted code past its expiry',
      { exhaustedAt: later(-400), attemptsUsed: 3, expiresAt: later(-1) },
      'exhausted',
    ],
    ['a superseded code', { supersededAt: later(-5) }, 'superseded'],
    [
      'a superseded code past its expiry',
      { supersededAt: later(-400), expiresAt: later(-1) },
      'superseded',
    ],
    [
      'a code superseded after it expired',
      { supersededAt: later(-10), expiresAt: later(-20) },
      'expired',
    ],
    [
      'a code superseded at its expiry',
      { supersededAt: later(-20), expiresAt: later(-20) },
      'expired',
    ],
    ['a code whose delivery failed', { deliveryStatus: 'failed' }, 'failed'],
    ['a failed code past its expiry', { deliveryStatus: 'failed', expiresAt: later(-1) }, 'failed'],
  ])('reports %s as %s', (_name, overrides, expected) => {
    expect(requestStatus(row(overrides), NOW)).toBe(expected);
  });
});

describe('attemptsRemaining', () => {
  it.each([
    [0, 3],
    [1, 2],
    [2, 1],
  ])('is maxAttempts minus attempts used on a pending code (%i used → %i)', (used, expected) => {
    expect(attemptsRemaining(row({ attemptsUsed: used }), NOW)).toBe(expected);
  });

  it('follows maxAttempts', () => {
    expect(attemptsRemaining(row({ maxAttempts: 5, attemptsUsed: 1 }), NOW)).toBe(4);
  });

  it.each<[string, Partial<RequestLifecycle>]>([
    ['verified', { verifiedAt: later(-10), attemptsUsed: 1 }],
    ['expired', { expiresAt: later(-1) }],
    ['exhausted', { exhaustedAt: later(-5), attemptsUsed: 3 }],
    ['every attempt used', { attemptsUsed: 3 }],
    ['superseded', { supersededAt: later(-5) }],
    ['failed', { deliveryStatus: 'failed' }],
  ])('is 0 once the code cannot verify (%s)', (_name, overrides) => {
    expect(attemptsRemaining(row(overrides), NOW)).toBe(0);
  });
});
