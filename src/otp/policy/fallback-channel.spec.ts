import { describe, expect, it } from '@jest/globals';
import { fallbackChannelFor } from './fallback-channel.js';
import type { SendHistoryEntry } from './send-policy.js';

const at = (minutesAgo: number): Date => new Date(Date.UTC(2026, 0, 1, 12) - minutesAgo * 60_000);
const send = (over: Partial<SendHistoryEntry>): SendHistoryEntry => ({
  purpose: 'login',
  channel: 'sms',
  createdAt: at(1),
  deliveryStatus: 'sent',
  verifiedAt: null,
  exhaustedAt: null,
  ...over,
});
const chain = { sms: ['voice', 'email'], voice: ['email'] } as const;
const all = ['sms', 'voice', 'email'] as const;

describe('fallbackChannelFor', () => {
  it('offers nothing after the first send on a channel', () => {
    expect(fallbackChannelFor([send({})], 'login', 'sms', chain, all)).toBeUndefined();
  });

  it('offers the next channel of the chain after two sends on one channel', () => {
    const entries = [send({ createdAt: at(2) }), send({ createdAt: at(1) })];
    expect(fallbackChannelFor(entries, 'login', 'sms', chain, all)).toBe('voice');
    expect(
      fallbackChannelFor(
        entries.map((e) => ({ ...e, channel: 'voice' as const })),
        'login',
        'voice',
        chain,
        all,
      ),
    ).toBe('email');
  });

  it('skips a channel that is not enabled, and offers nothing at the end of the chain', () => {
    const entries = [send({ createdAt: at(2) }), send({ createdAt: at(1) })];
    expect(fallbackChannelFor(entries, 'login', 'sms', chain, ['sms', 'email'])).toBe('email');
    expect(fallbackChannelFor(entries, 'login', 'sms', chain, ['sms'])).toBeUndefined();
    const emails = entries.map((e) => ({ ...e, channel: 'email' as const }));
    expect(fallbackChannelFor(emails, 'login', 'email', chain, all)).toBeUndefined();
  });

  it('counts only the flow: its purpose, since its last successful verify, delivered sends', () => {
    expect(
      fallbackChannelFor(
        [send({ createdAt: at(2), purpose: 'pay' }), send({ createdAt: at(1) })],
        'login',
        'sms',
        chain,
        all,
      ),
    ).toBeUndefined();
    expect(
      fallbackChannelFor(
        [send({ createdAt: at(3), verifiedAt: at(2) }), send({ createdAt: at(1) })],
        'login',
        'sms',
        chain,
        all,
      ),
    ).toBeUndefined();
    expect(
      fallbackChannelFor(
        [send({ createdAt: at(2), deliveryStatus: 'failed' }), send({ createdAt: at(1) })],
        'login',
        'sms',
        chain,
        all,
      ),
    ).toBeUndefined();
    expect(
      fallbackChannelFor(
        [send({ createdAt: at(2), channel: 'voice' }), send({ createdAt: at(1) })],
        'login',
        'sms',
        chain,
        all,
      ),
    ).toBeUndefined();
  });
});
