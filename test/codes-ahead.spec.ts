import { describe, expect, it } from '@jest/globals';
import { codesAhead, FLOOR_RATE, RUN_HEADROOM, WARM_UP_HEADROOM } from '../bench/codes-ahead.js';

describe('codes minted ahead of a verify run (bench)', () => {
  it('covers the fastest rate seen, with headroom', () => {
    expect(codesAhead({ bestRate: 3000, warmUpRate: 500 }, 5)).toBe(
      Math.ceil(3000 * 5 * RUN_HEADROOM) + 100,
    );
  });

  it("before any measured run, covers more than the warm-up's rate", () => {
    // Round 13: a Fastify verify ran 2,359 a second and ran dry on 1,500 * 5 * 1.4 + 100 codes.
    const codes = codesAhead({ warmUpRate: 1400 }, 5);
    expect(codes).toBe(Math.ceil(1400 * WARM_UP_HEADROOM * 5 * RUN_HEADROOM) + 100);
    expect(codes).toBeGreaterThan(2359 * 5);
  });

  it('never assumes less than the floor rate', () => {
    expect(codesAhead({}, 5)).toBe(Math.ceil(FLOOR_RATE * 5 * RUN_HEADROOM) + 100);
    expect(codesAhead({ bestRate: 10 }, 2)).toBe(Math.ceil(FLOOR_RATE * 2 * RUN_HEADROOM) + 100);
  });
});
