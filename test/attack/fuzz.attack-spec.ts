import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { FUZZ_ROUTES, fuzzAndReport, seedFuzzPool, type FuzzPool } from '../support/attack-fuzz.js';
import { startPrivateApp, type PrivateApp } from '../support/attack-kit.js';

/**
 * Fuzzing, the long run: the properties of the quick run in test/attacks.e2e-spec.ts
 * (no 500; every refusal leaves the table unchanged, but for the one attempt an evaluated guess
 * uses) with more runs and another seed.
 */

const SEED = 4_040_404;
const NUM_RUNS = 2_000;

describe('fuzzing every route (attack suite)', () => {
  let p: PrivateApp;
  let pool: FuzzPool;
  beforeAll(async () => {
    p = await startPrivateApp();
    pool = await seedFuzzPool(p, 'long');
  });
  afterAll(async () => {
    await p.close();
  });

  it.each(FUZZ_ROUTES)(
    `%s: ${NUM_RUNS} random requests, no 500, refusals change nothing`,
    async (route) => {
      await fuzzAndReport(p, pool, route, { seed: SEED, numRuns: NUM_RUNS });
    },
  );

  it('leaves no token without a server-side verification', async () => {
    const [counts] = await p.db.query<Record<string, number>>(
      `SELECT count(*) FILTER (WHERE token_hash IS NOT NULL AND verified_at IS NULL)::int AS orphans,
         count(*) FILTER (WHERE token_hash IS NOT NULL)::int AS tokens
       FROM otp_requests`,
    );
    expect(counts?.tokens).toBeGreaterThan(0);
    expect(counts?.orphans).toBe(0);
  });
});
