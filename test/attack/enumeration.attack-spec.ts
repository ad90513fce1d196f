import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  compareSends,
  compareVerifiesActiveVersusUnknown,
  compareVerifiesWithoutCode,
  describeMedians,
  expectSameHeaderNames,
  expectSameLatency,
  expectSameShape,
} from '../support/attack-enumeration.js';
import { report } from '../support/attack-kit.js';
import { expectError } from '../support/contract.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

/**
 * Issue 4, attack 3, with the module's default hasher (bcrypt, cost 10) and more samples than the
 * quick run in test/attacks.e2e-spec.ts: whether a destination has history must not show in the
 * answer or in its latency.
 */

const SAMPLES = 60;
const TOLERANCE_MS = 5;

describe('enumeration with the default hasher (attack suite)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ hasher: 'bcrypt' });
  });
  afterAll(async () => {
    await t.close();
  });

  it('POST /otp/send answers alike, as fast, for addresses with history and never seen', async () => {
    const c = await compareSends(t, SAMPLES);
    expect(c.known[0]?.status).toBe(202);
    expectSameShape(c, { sameBodies: false });
    report(`enumeration, POST /otp/send (bcrypt 10), history vs never seen: ${describeMedians(c)}`);
    expectSameLatency(c, TOLERANCE_MS);
  });

  it('POST /otp/verify answers alike, as fast, for addresses with history and never seen', async () => {
    const c = await compareVerifiesWithoutCode(t, SAMPLES);
    expect(c.known[0]?.status).toBe(410);
    expectSameShape(c, { sameBodies: true });
    report(
      `enumeration, POST /otp/verify (bcrypt 10), history without an active code vs never ` +
        `seen: ${describeMedians(c)}`,
    );
    expectSameLatency(c, TOLERANCE_MS);
  });

  it('POST /otp/verify takes as long for a wrong guess at an active code as for an address never seen', async () => {
    const c = await compareVerifiesActiveVersusUnknown(t, SAMPLES);
    for (const res of c.known) expectError(res, 401, 'OTP_INVALID', ['attemptsRemaining']);
    for (const res of c.unknown) expectError(res, 410, 'OTP_EXPIRED');
    expectSameHeaderNames(c);
    report(
      `enumeration, POST /otp/verify (bcrypt 10), wrong guess at an active code (401) vs never ` +
        `seen (410): ${describeMedians(c)}`,
    );
    expectSameLatency(c, TOLERANCE_MS);
  });
});
