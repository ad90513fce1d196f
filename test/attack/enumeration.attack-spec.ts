import { afterAll, beforeAll, describe, it } from '@jest/globals';
import {
  expectSendsAlike,
  expectVerifiesWithoutCodeAlike,
  expectWrongGuessAsSlowAsUnknown,
  type EnumerationRun,
} from '../support/attack-enumeration.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

/**
 * Enumeration, the long run, with the module's default hasher (bcrypt, cost 10) and more samples than the
 * quick run in test/attacks.e2e-spec.ts: whether a destination has history must not show in the
 * answer or in its latency.
 */

const RUN: EnumerationRun = {
  samples: 60,
  tolerance: { minMs: 5, fraction: 0.4 },
  run: 'bcrypt 10',
};

describe('enumeration with the default hasher (attack suite)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ hasher: 'bcrypt' });
  });
  afterAll(async () => {
    await t.close();
  });

  it('POST /otp/send answers alike, as fast, for addresses with history and never seen', async () => {
    await expectSendsAlike(t, RUN);
  });

  it('POST /otp/verify answers alike, as fast, for addresses with history and never seen', async () => {
    await expectVerifiesWithoutCodeAlike(t, RUN);
  });

  it('POST /otp/verify takes as long for a wrong guess at an active code as for an address never seen', async () => {
    await expectWrongGuessAsSlowAsUnknown(t, RUN);
  });
});
