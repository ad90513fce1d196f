import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Response } from 'supertest';
import {
  EXPIRED_MESSAGE,
  dbMillis,
  expectError,
  isoMillis,
  sendCode,
  supersedeByFailedSend,
  wrongCode,
} from './support/contract.js';
import {
  PLATFORMS,
  rowsFor,
  startTestApp,
  type TestApp,
  travel,
  uniqueEmail,
} from './support/test-app.js';

describe.each(PLATFORMS)('POST /otp/verify on %s', (platform) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({}, { platform });
  });
  afterAll(async () => {
    await t.close();
  });

  const verify = (body: Record<string, unknown>) => t.http.post('/otp/verify').send(body);

  describe('200: correct, active code', () => {
    it('answers a verification token that expires in 600 s', async () => {
      const email = uniqueEmail();
      const { code } = await sendCode(t, email);
      const res = await verify({ destination: email, code }).expect(200);

      expect(Object.keys(res.body).sort()).toEqual(
        ['tokenExpiresAt', 'verificationToken', 'verified'].sort(),
      );
      expect(res.body.verified).toBe(true);
      expect(typeof res.body.verificationToken).toBe('string');
      expect(res.body.verificationToken.length).toBeGreaterThanOrEqual(43);
      const tokenExpiresAt = isoMillis(res.body.tokenExpiresAt);
      expect(Math.abs(tokenExpiresAt - (Date.now() + 600_000))).toBeLessThan(60_000);

      const [row] = await rowsFor(email);
      expect(row).toMatchObject({ attempts_used: 1, code_hash: null, token_used_at: null });
      expect(dbMillis(row?.token_expires_at)).toBe(tokenExpiresAt);
      expect(dbMillis(row?.token_expires_at) - dbMillis(row?.verified_at)).toBe(600_000);
      expect(row?.token_hash).not.toBe(res.body.verificationToken);
      expect(String(row?.token_hash)).not.toContain(res.body.verificationToken);
    });

    it('verifies a code once under many concurrent correct guesses', async () => {
      const email = uniqueEmail();
      const { code } = await sendCode(t, email);
      const responses = await Promise.all(
        Array.from({ length: 10 }, () => verify({ destination: email, code })),
      );
      const ok = responses.filter((r) => r.status === 200);
      expect(ok).toHaveLength(1);
      for (const r of responses.filter((x) => x.status !== 200)) {
        if (r.status === 429) expectError(r, 429, 'OTP_ATTEMPTS_EXCEEDED');
        else expectError(r, 410, 'OTP_EXPIRED');
      }
      const [row] = await rowsFor(email);
      expect(row?.verified_at).toBeInstanceOf(Date);
      expect(row?.exhausted_at).toBeNull();
      expect(row?.attempts_used as number).toBeLessThanOrEqual(3);
    });
  });

  describe('401 / 429: wrong codes', () => {
    it('counts down the attempts, then exhausts the code', async () => {
      const email = uniqueEmail();
      const { code } = await sendCode(t, email);
      const wrong = wrongCode(code);

      const first = await verify({ destination: email, code: wrong });
      expectError(first, 401, 'OTP_INVALID', ['attemptsRemaining']);
      expect(first.body.attemptsRemaining).toBe(2);
      expect((await rowsFor(email))[0]?.attempts_used).toBe(1);

      const second = await verify({ destination: email, code: wrong });
      expectError(second, 401, 'OTP_INVALID', ['attemptsRemaining']);
      expect(second.body.attemptsRemaining).toBe(1);

      const third = await verify({ destination: email, code: wrong });
      expectError(third, 429, 'OTP_ATTEMPTS_EXCEEDED');
      // Progressive lockout: the first exhausted code waits 30 s.
      expect(third.body.retryAfter).toBeLessThanOrEqual(30);

      const [row] = await rowsFor(email);
      expect(row).toMatchObject({ attempts_used: 3, code_hash: null, verified_at: null });
      expect(row?.exhausted_at).toBeInstanceOf(Date);
    });

    it('answers 429 even to the right code once the code is exhausted', async () => {
      const email = uniqueEmail();
      const { code } = await sendCode(t, email);
      for (let i = 0; i < 3; i++) await verify({ destination: email, code: wrongCode(code) });

      const right = await verify({ destination: email, code });
      expectError(right, 429, 'OTP_ATTEMPTS_EXCEEDED');
      expect((await rowsFor(email))[0]).toMatchObject({ attempts_used: 3, verified_at: null });

      // Once the exhausted code has expired too, there is simply no active code.
      await travel(email, 301);
      const late = await verify({ destination: email, code });
      expectError(late, 410, 'OTP_EXPIRED');
    });

    it('evaluates at most 3 guesses however many arrive at once', async () => {
      const email = uniqueEmail();
      const { code } = await sendCode(t, email);
      const responses = await Promise.all(
        Array.from({ length: 12 }, () => verify({ destination: email, code: wrongCode(code) })),
      );
      const statuses = responses.map((r) => r.status).sort();
      expect(statuses.filter((s) => s === 401)).toHaveLength(2);
      expect(statuses.filter((s) => s === 429)).toHaveLength(10);
      for (const r of responses) {
        if (r.status === 401) expectError(r, 401, 'OTP_INVALID', ['attemptsRemaining']);
        else expectError(r, 429, 'OTP_ATTEMPTS_EXCEEDED');
      }
      const [row] = await rowsFor(email);
      expect(row?.attempts_used).toBe(3);
      expect(row?.exhausted_at).toBeInstanceOf(Date);
    });
  });

  describe('410: no active code', () => {
    const expect410 = (res: Response): void => {
      expectError(res, 410, 'OTP_EXPIRED');
      expect(res.body.message).toBe(EXPIRED_MESSAGE);
    };

    it('answers 410 for a destination never sent a code', async () => {
      expect410(await verify({ destination: uniqueEmail(), code: '123456' }));
    });

    it('answers 410 for an expired code, and uses no attempt', async () => {
      const email = uniqueEmail();
      const { code } = await sendCode(t, email);
      await travel(email, 301);
      expect410(await verify({ destination: email, code }));
      expect((await rowsFor(email))[0]).toMatchObject({ attempts_used: 0, verified_at: null });
    });

    it('drops the hash of an expired code as soon as a verify sees it', async () => {
      const email = uniqueEmail();
      await sendCode(t, email);
      await travel(email, 301);
      expect((await rowsFor(email))[0]?.code_hash).toEqual(expect.any(String));
      expect410(await verify({ destination: email, code: '000000' }));
      expect((await rowsFor(email))[0]?.code_hash).toBeNull();
    });

    it('answers 410 for a superseded code when the superseding send left no active code', async () => {
      const email = uniqueEmail();
      const { first, failed } = await supersedeByFailedSend(t, email);
      expectError(failed, 503, 'OTP_DELIVERY_FAILED');
      expect410(await verify({ destination: email, code: first.code }));
      const rows = await rowsFor(email);
      expect(rows[0]?.superseded_at).toBeInstanceOf(Date);
      expect(rows[0]?.attempts_used).toBe(0);
    });

    it('rejects a second verify of a used code', async () => {
      const email = uniqueEmail();
      const { code } = await sendCode(t, email);
      await verify({ destination: email, code }).expect(200);
      expect410(await verify({ destination: email, code }));
      expect((await rowsFor(email))[0]?.attempts_used).toBe(1);
    });

    it('gives the same message whatever the reason', async () => {
      const never = await verify({ destination: uniqueEmail(), code: '123456' });

      const expiredEmail = uniqueEmail();
      const expiredCode = (await sendCode(t, expiredEmail)).code;
      await travel(expiredEmail, 301);
      const expired = await verify({ destination: expiredEmail, code: expiredCode });

      const supersededEmail = uniqueEmail();
      const supersededCode = (await supersedeByFailedSend(t, supersededEmail)).first.code;
      const superseded = await verify({ destination: supersededEmail, code: supersededCode });

      const usedEmail = uniqueEmail();
      const usedCode = (await sendCode(t, usedEmail)).code;
      await verify({ destination: usedEmail, code: usedCode }).expect(200);
      const used = await verify({ destination: usedEmail, code: usedCode });

      const bodies = [never, expired, superseded, used].map((r): unknown => {
        expectError(r, 410, 'OTP_EXPIRED');
        return r.body;
      });
      expect(new Set(bodies.map((b) => JSON.stringify(b))).size).toBe(1);
      expect(bodies[0]).toEqual({ statusCode: 410, code: 'OTP_EXPIRED', message: EXPIRED_MESSAGE });
    });
  });

  describe('purpose', () => {
    it('verifies a code only for the purpose it was sent for', async () => {
      const email = uniqueEmail();
      const { code } = await sendCode(t, email, { purpose: 'reset' });

      expectError(await verify({ destination: email, code }), 410, 'OTP_EXPIRED');
      expectError(await verify({ destination: email, code, purpose: 'login' }), 410, 'OTP_EXPIRED');
      expect((await rowsFor(email))[0]?.attempts_used).toBe(0);

      await verify({ destination: email, code, purpose: 'reset' }).expect(200);
    });
  });

  describe('400: code format', () => {
    it.each<[string, (code: string) => Record<string, unknown>]>([
      ['5 digits', (c) => ({ code: c.slice(0, 5) })],
      ['7 digits', (c) => ({ code: `${c}0` })],
      ['a space inside', (c) => ({ code: `${c.slice(0, 2)} ${c.slice(2, 5)}` })],
      ['a letter', (c) => ({ code: `${c.slice(0, 5)}a` })],
      ['a JSON number', (c) => ({ code: Number(`1${c.slice(1)}`) })],
      ['Arabic-Indic digits', () => ({ code: '١٢٣٤٥٦' })],
      ['no code', () => ({})],
      ['an extra field', (c) => ({ code: c, extra: 'x' })],
    ])('refuses %s and uses no attempt', async (_name, make) => {
      const email = uniqueEmail();
      const { code } = await sendCode(t, email);

      const res = await verify({ destination: email, ...make(code) });
      expectError(res, 400, 'VALIDATION_FAILED');
      expect((await rowsFor(email))[0]?.attempts_used).toBe(0);

      // Every attempt is still there: a wrong guess now leaves 2.
      const wrong = await verify({ destination: email, code: wrongCode(code) });
      expect(wrong.body.attemptsRemaining).toBe(2);
    });
  });
});

describe.each(PLATFORMS)('POST /otp/verify with ttlSeconds 1 on %s', (platform) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ ttlSeconds: 1 }, { platform });
  });
  afterAll(async () => {
    await t.close();
  });

  it('answers 410 once the code has expired', async () => {
    const email = uniqueEmail();
    const { code } = await sendCode(t, email);
    await sleep(1_200);
    const res = await t.http.post('/otp/verify').send({ destination: email, code });
    expectError(res, 410, 'OTP_EXPIRED');
    expect(res.body.message).toBe(EXPIRED_MESSAGE);
    expect((await rowsFor(email))[0]?.attempts_used).toBe(0);
  });
});
