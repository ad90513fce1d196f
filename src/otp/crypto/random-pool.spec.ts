import { describe, expect, it } from '@jest/globals';
import { RandomPool } from './random-pool.js';

describe('RandomPool', () => {
  it('hands out base64url strings of the asked number of bytes', () => {
    const pool = new RandomPool(64);
    for (const size of [1, 16, 32]) {
      const text = pool.base64url(size);
      expect(text).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(Buffer.from(text, 'base64url')).toHaveLength(size);
    }
  });

  it('never hands the same bytes out twice, across many refills of its block', () => {
    // 64-byte blocks: two 32-byte draws a block, so 1000 draws refill it 500 times.
    const pool = new RandomPool(64);
    const drawn = Array.from({ length: 1000 }, () => pool.base64url(32));
    expect(new Set(drawn).size).toBe(1000);
  });

  it('draws from the whole block: the first draws of a block differ from each other', () => {
    const pool = new RandomPool(4096);
    const block = Array.from({ length: 128 }, () => pool.base64url(32));
    expect(new Set(block).size).toBe(128);
    // No draw of zeros: a handed-out range is zeroed only after it is read.
    expect(block).not.toContain(Buffer.alloc(32).toString('base64url'));
  });

  it('refuses a draw larger than its block', () => {
    expect(() => new RandomPool(16).base64url(17)).toThrow(RangeError);
  });
});
