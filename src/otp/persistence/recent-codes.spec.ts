import { describe, expect, it } from '@jest/globals';
import { RecentCodes } from './recent-codes.js';

const at = (ms: number): Date => new Date(ms);

describe('RecentCodes', () => {
  it('recalls the newest code of a flow, by destination and purpose', () => {
    const codes = new RecentCodes(10);
    codes.remember('a@x.test', 'login', { id: 'one', expiresAt: at(1_000) });
    codes.remember('a@x.test', 'login', { id: 'two', expiresAt: at(1_000) });
    codes.remember('a@x.test', 'reset', { id: 'three', expiresAt: at(1_000) });
    expect(codes.recall('a@x.test', 'login', 0)?.id).toBe('two');
    expect(codes.recall('a@x.test', 'reset', 0)?.id).toBe('three');
    expect(codes.recall('b@x.test', 'login', 0)).toBeUndefined();
    expect(codes.size).toBe(2);
  });

  it('forgets a code at its expiry', () => {
    const codes = new RecentCodes(10);
    codes.remember('a@x.test', 'login', { id: 'one', expiresAt: at(1_000) });
    expect(codes.recall('a@x.test', 'login', 999)?.id).toBe('one');
    expect(codes.recall('a@x.test', 'login', 1_000)).toBeUndefined();
    expect(codes.size).toBe(0);
  });

  it('forgets a flow only while it still names that request', () => {
    const codes = new RecentCodes(10);
    codes.remember('a@x.test', 'login', { id: 'two', expiresAt: at(1_000) });
    codes.forget('a@x.test', 'login', 'one');
    expect(codes.recall('a@x.test', 'login', 0)?.id).toBe('two');
    codes.forget('a@x.test', 'login', 'two');
    expect(codes.recall('a@x.test', 'login', 0)).toBeUndefined();
  });

  it('holds at most its capacity, dropping the flow remembered longest ago', () => {
    const codes = new RecentCodes(2);
    codes.remember('a@x.test', 'login', { id: 'a', expiresAt: at(1_000) });
    codes.remember('b@x.test', 'login', { id: 'b', expiresAt: at(1_000) });
    // A resend makes its flow the youngest again.
    codes.remember('a@x.test', 'login', { id: 'a2', expiresAt: at(1_000) });
    codes.remember('c@x.test', 'login', { id: 'c', expiresAt: at(1_000) });
    expect(codes.size).toBe(2);
    expect(codes.recall('b@x.test', 'login', 0)).toBeUndefined();
    expect(codes.recall('a@x.test', 'login', 0)?.id).toBe('a2');
    expect(codes.recall('c@x.test', 'login', 0)?.id).toBe('c');
  });

  it('remembers nothing with capacity 0', () => {
    const codes = new RecentCodes(0);
    codes.remember('a@x.test', 'login', { id: 'a', expiresAt: at(1_000) });
    expect(codes.recall('a@x.test', 'login', 0)).toBeUndefined();
    expect(codes.size).toBe(0);
  });
});
