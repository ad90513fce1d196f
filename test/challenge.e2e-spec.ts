import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import type { Response } from 'supertest';
import type {
  ChallengeContext,
  ChallengeVerifier,
} from '../src/otp/challenge/challenge-verifier.js';
import { expectError, sendCode, wrongCode } from './support/contract.js';
import { tally } from './support/races.js';
import { answer, sendOtp, verifyOtp } from './support/rules.js';
import { rowsFor, startTestApp, travel, uniqueEmail, type TestApp } from './support/test-app.js';

/**
 * Challenge escalation (issue 10, off by default): once a destination drew `afterFailedVerifies`
 * failed verifies within the window, sends and verifies need a `challenge` the host's verifier
 * accepts, else 428 `OTP_CHALLENGE_REQUIRED`; the answers say when the next call will need one.
 * The verifier here is a fake: it accepts `'pass'`, refuses anything else, throws on `'boom'`.
 */

const PASS = 'pass';

class FakeVerifier implements ChallengeVerifier {
  readonly calls: Array<{ token: string; context: ChallengeContext }> = [];

  verify(token: string, context: ChallengeContext): Promise<boolean> {
    this.calls.push({ token, context });
    if (token === 'boom') return Promise.reject(new Error('siteverify unreachable'));
    return Promise.resolve(token === PASS);
  }
}

/** A 428 in the contract's shape, with `challengeRequired: true`. */
function expectChallenge(res: Response): void {
  expectError(res, 428, 'OTP_CHALLENGE_REQUIRED', ['challengeRequired']);
  expect(res.body.challengeRequired).toBe(true);
}

describe('challenge escalation', () => {
  const verifier = new FakeVerifier();
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ challenge: { afterFailedVerifies: 2, windowSeconds: 600, verifier } });
  });
  afterAll(async () => {
    await t.close();
  });
  beforeEach(() => {
    verifier.calls.length = 0;
  });

  const verify = (destination: string, code: string, challenge?: string) =>
    verifyOtp(t, { destination, code, ...(challenge === undefined ? {} : { challenge }) });
  const send = (destination: string, challenge?: string) =>
    sendOtp(t, { destination, ...(challenge === undefined ? {} : { challenge }) });

  /** Sends a code and answers it wrong twice: the second 401 reaches the threshold. */
  async function reachThreshold(email: string): Promise<string> {
    const { body, code } = await sendCode(t, email);
    expect(body.challengeRequired).toBeUndefined();
    const first = await verify(email, wrongCode(code));
    expect(first.body).toEqual({
      statusCode: 401,
      code: 'OTP_INVALID',
      message: expect.any(String),
      attemptsRemaining: 2,
    });
    const second = await verify(email, wrongCode(code));
    expect(second.body).toEqual({
      statusCode: 401,
      code: 'OTP_INVALID',
      message: expect.any(String),
      attemptsRemaining: 1,
      challengeRequired: true,
    });
    return code;
  }

  it('asks nothing below the threshold, and never calls the verifier', async () => {
    const email = uniqueEmail();
    const { body, code } = await sendCode(t, email);
    expect(body).not.toHaveProperty('challengeRequired');
    const wrong = await verify(email, wrongCode(code));
    expect(wrong.status).toBe(401);
    expect(wrong.body).not.toHaveProperty('challengeRequired');
    await verify(email, code).expect(200);
    expect(verifier.calls).toEqual([]);
  });

  it('POST /otp/verify: 428 without a challenge or with a refused one, using no attempt', async () => {
    const email = uniqueEmail();
    const code = await reachThreshold(email);

    expectChallenge(await verify(email, code));
    expectChallenge(await verify(email, code, 'wrong-token'));
    expectChallenge(await verify(email, code, 'boom'));
    expectChallenge(await verify(email, code, ''));
    const [row] = await rowsFor(email);
    expect(row?.attempts_used).toBe(2);
    expect(row?.verified_at).toBeNull();
    expect(verifier.calls.map((c) => c.token)).toEqual(['wrong-token', 'boom']);
    for (const call of verifier.calls) {
      expect(call.context.action).toBe('verify');
      expect(call.context.ip).toMatch(/127\.0\.0\.1|::1/);
    }
  });

  it('POST /otp/verify: an accepted challenge lets the code through', async () => {
    const email = uniqueEmail();
    const code = await reachThreshold(email);
    const res = await verify(email, code, PASS).expect(200);
    expect(res.body).toMatchObject({ verified: true });
    expect(res.body).not.toHaveProperty('challengeRequired');
    expect(verifier.calls).toEqual([
      { token: PASS, context: { action: 'verify', ip: expect.any(String) } },
    ]);
  });

  it('POST /otp/verify: a wrong code with an accepted challenge uses an attempt; the next send still needs one', async () => {
    const email = uniqueEmail();
    const code = await reachThreshold(email);
    const res = await verify(email, wrongCode(code), PASS);
    // The third wrong guess used the last attempt.
    expect(answer(res)).toEqual({ status: 429, code: 'OTP_ATTEMPTS_EXCEEDED' });
    expectChallenge(await send(email));
  });

  it('POST /otp/send: 428 until a challenge is accepted, then 202 with challengeRequired', async () => {
    const email = uniqueEmail();
    await reachThreshold(email);
    await travel(email, 30);

    expectChallenge(await send(email));
    expectChallenge(await send(email, 'wrong-token'));
    expect(await rowsFor(email)).toHaveLength(1);

    const sent = await send(email, PASS);
    expect(sent.status).toBe(202);
    expect(sent.body.challengeRequired).toBe(true);
    expect(verifier.calls.map((c) => c.context.action)).toEqual(['send', 'send']);

    // The new code too: a verify needs the challenge, and a wrong guess says so.
    const code = t.provider.lastCode(email);
    expectChallenge(await verify(email, code));
    const wrong = await verify(email, wrongCode(code), PASS);
    expect(wrong.body).toMatchObject({ code: 'OTP_INVALID', challengeRequired: true });
    await verify(email, code, PASS).expect(200);

    // A successful verify starts the count again: the next flow needs no challenge.
    const next = await send(email);
    expect(next.status).toBe(202);
    expect(next.body).not.toHaveProperty('challengeRequired');
  });

  it('counts failed verifies of the window only', async () => {
    const email = uniqueEmail();
    await reachThreshold(email);
    await travel(email, 601);
    const sent = await send(email);
    expect(sent.status).toBe(202);
    expect(sent.body).not.toHaveProperty('challengeRequired');
  });

  it('counts per destination', async () => {
    const email = uniqueEmail();
    await reachThreshold(email);
    const other = uniqueEmail();
    const { code } = await sendCode(t, other);
    await verify(other, code).expect(200);
  });

  it('parallel calls past the threshold without a challenge: all 428, no attempt used', async () => {
    const email = uniqueEmail();
    const code = await reachThreshold(email);
    const responses = await Promise.all([
      ...Array.from({ length: 10 }, () => verify(email, code)),
      ...Array.from({ length: 5 }, () => send(email)),
    ]);
    expect(tally(responses)).toEqual({ '428 OTP_CHALLENGE_REQUIRED': 15 });
    const rows = await rowsFor(email);
    expect(rows).toHaveLength(1);
    expect(rows[0]?.attempts_used).toBe(2);
    expect(rows[0]?.verified_at).toBeNull();
  });
});

describe('challenge escalation with auto-resend', () => {
  /** Turnstile-like: every token passes once, and never again. */
  class SingleUseVerifier implements ChallengeVerifier {
    private readonly used = new Set<string>();
    verify(token: string): Promise<boolean> {
      const fresh = token.startsWith('once-') && !this.used.has(token);
      this.used.add(token);
      return Promise.resolve(fresh);
    }
  }

  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({
      maxAttempts: 5,
      resendCooldownSeconds: [0],
      purposes: { login: { autoResend: true } },
      challenge: { afterFailedVerifies: 2, verifier: new SingleUseVerifier() },
    });
  });
  afterAll(async () => {
    await t.close();
  });

  it("resends on expiry with the verify's one token: the resend does not spend it twice", async () => {
    const email = uniqueEmail();
    const { code } = await sendCode(t, email);
    for (let i = 0; i < 2; i += 1) {
      expect((await verifyOtp(t, { destination: email, code: wrongCode(code) })).status).toBe(401);
    }
    await travel(email, 301);
    const res = await verifyOtp(t, { destination: email, code, challenge: 'once-1' });
    expect(res.status).toBe(410);
    expect(res.body).toMatchObject({ code: 'OTP_EXPIRED', resent: true });
    expect(await rowsFor(email)).toHaveLength(2);
  });
});
