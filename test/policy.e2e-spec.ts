import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Response } from 'supertest';
import { withFailing, wrongCode } from './support/contract.js';
import {
  LAYOUT_PLATFORMS,
  rowsFor,
  startTestApp,
  type TestApp,
  travel,
  uniqueEmail,
} from './support/test-app.js';
import { itRunsOnTheLayoutUnderTest } from './support/layouts.js';

/**
 * The send policy (contract: "Policy defaults"), computed from the rows in Postgres and seen only
 * through the HTTP routes. `travel` moves a destination's history into the past instead of sleeping.
 */

/** A 429 of the given kind, whose wait is `seconds` (±1 s), in the body and the Retry-After header. */
function expectLimited(res: Response, code: string, seconds: number): void {
  expect({ status: res.status, code: res.body.code }).toEqual({ status: 429, code });
  expect(res.body.statusCode).toBe(429);
  const retryAfter = res.body.retryAfter as number;
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(seconds - 1);
  expect(retryAfter).toBeLessThanOrEqual(seconds + 1);
  expect(res.headers['retry-after']).toBe(String(retryAfter));
}

/** Seconds from the send to `resendAvailableAt`, the send moment being `expiresAt - ttl`. */
const resendDelay = (body: { expiresAt: string; resendAvailableAt: string }, ttl = 300): number =>
  (Date.parse(body.resendAvailableAt) - (Date.parse(body.expiresAt) - ttl * 1000)) / 1000;

describe.each(LAYOUT_PLATFORMS)('send policy (defaults) on %s', (platform) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({}, { platform });
  });
  afterAll(async () => {
    await t.close();
  });

  const send = (destination: string, purpose?: string): Promise<Response> =>
    t.http.post('/otp/send').send(purpose ? { destination, purpose } : { destination });
  const verify = (destination: string, code: string, purpose?: string): Promise<Response> =>
    t.http
      .post('/otp/verify')
      .send(purpose ? { destination, code, purpose } : { destination, code });

  /** Uses up every attempt of the flow's active code; the last guess answers 429. */
  async function exhaust(destination: string, purpose?: string): Promise<Response> {
    const code = wrongCode(t.provider.lastCode(destination));
    expect((await verify(destination, code, purpose)).body).toMatchObject({
      code: 'OTP_INVALID',
      attemptsRemaining: 2,
    });
    expect((await verify(destination, code, purpose)).body).toMatchObject({
      code: 'OTP_INVALID',
      attemptsRemaining: 1,
    });
    const last = await verify(destination, code, purpose);
    expect(last.body.code).toBe('OTP_ATTEMPTS_EXCEEDED');
    return last;
  }

  describe('POST /otp/send resend cooldown', () => {
    it('escalates the cooldown 30 → 60 → 120 → 300 → 300 within a flow', async () => {
      const email = uniqueEmail();
      const cooldowns = [30, 60, 120, 300, 300, 300];
      for (const [i, cooldown] of cooldowns.entries()) {
        const sent = await send(email);
        expect(sent.status).toBe(202);
        expect(resendDelay(sent.body)).toBe(cooldown);

        expectLimited(await send(email), 'OTP_RESEND_COOLDOWN', cooldown);
        await travel(email, cooldown - 5);
        expectLimited(await send(email), 'OTP_RESEND_COOLDOWN', 5);
        // After the 4th send, leave the hour behind so the hourly cap (5) stays out of the way:
        // the flow (and its escalation) lasts until a verify, not an hour.
        await travel(email, i === 3 ? 3600 : 5);
      }
      const rows = await rowsFor(email);
      expect(rows).toHaveLength(cooldowns.length);
      // Only the newest code is active; each send superseded the one before.
      expect(rows.filter((r) => r.superseded_at === null)).toHaveLength(1);
    });

    it('answers resendAvailableAt as the next send moment, and stores the same', async () => {
      const email = uniqueEmail();
      const first = (await send(email)).body;
      expect(resendDelay(first)).toBe(30);
      await travel(email, 30);
      const second = (await send(email)).body;
      expect(resendDelay(second)).toBe(60);

      const rows = await rowsFor(email);
      const stored = rows.find((r) => r.id === second.requestId);
      expect((stored?.resend_available_at as Date).toISOString()).toBe(second.resendAvailableAt);
      const status = await t.http.get(`/otp/requests/${second.requestId}`).expect(200);
      expect(status.body.resendAvailableAt).toBe(second.resendAvailableAt);
    });

    it('keeps a separate cooldown for each purpose', async () => {
      const email = uniqueEmail();
      expect((await send(email, 'login')).status).toBe(202);
      expect((await send(email, 'signup')).status).toBe(202);
      expectLimited(await send(email, 'login'), 'OTP_RESEND_COOLDOWN', 30);
      expectLimited(await send(email, 'signup'), 'OTP_RESEND_COOLDOWN', 30);
    });

    it('starts a new flow after a successful verify', async () => {
      const email = uniqueEmail();
      expect((await send(email)).status).toBe(202);
      await travel(email, 30);
      const second = await send(email);
      expect(resendDelay(second.body)).toBe(60);
      expect((await verify(email, t.provider.lastCode(email))).status).toBe(200);

      const next = await send(email);
      expect(next.status).toBe(202);
      expect(resendDelay(next.body)).toBe(30);
      expectLimited(await send(email), 'OTP_RESEND_COOLDOWN', 30);
    });

    it('starts no cooldown on a failed delivery', async () => {
      const email = uniqueEmail();
      const failed = await withFailing(t, ['email'], () => send(email));
      expect(failed.status).toBe(503);
      expect(failed.body.code).toBe('OTP_DELIVERY_FAILED');
      const sent = await send(email);
      expect(sent.status).toBe(202);
      // The first delivered send of the flow: its cooldown is the first step.
      expect(resendDelay(sent.body)).toBe(30);
      const rows = await rowsFor(email);
      expect(rows.map((r) => r.delivery_status)).toEqual(['failed', 'sent']);
    });
  });

  describe('POST /otp/send caps', () => {
    it('refuses a 6th send within an hour, across purposes', async () => {
      const email = uniqueEmail();
      for (const purpose of ['p1', 'p2', 'p3', 'p4']) {
        expect((await send(email, purpose)).status).toBe(202);
      }
      const fifth = await send(email, 'p5');
      expect(fifth.status).toBe(202);
      // resendAvailableAt tells when the next send is allowed: the cap binds, not the cooldown.
      expect(Math.abs(resendDelay(fifth.body) - 3600)).toBeLessThanOrEqual(1);
      expectLimited(await send(email, 'p6'), 'OTP_SEND_LIMIT', 3600);
      // Cooldown (30 s) and cap (an hour) both apply: the one that ends last is named.
      expectLimited(await send(email, 'p5'), 'OTP_SEND_LIMIT', 3600);

      await travel(email, 3590);
      expectLimited(await send(email, 'p6'), 'OTP_SEND_LIMIT', 10);
      await travel(email, 10);
      expect((await send(email, 'p6')).status).toBe(202);
      expect(await rowsFor(email)).toHaveLength(6);
    });

    it('counts failed deliveries toward the hourly cap', async () => {
      const email = uniqueEmail();
      await withFailing(t, ['email'], async () => {
        for (let i = 0; i < 5; i++) {
          // Same purpose each time: a failed delivery starts no cooldown.
          const res = await send(email);
          expect({ status: res.status, code: res.body.code }).toEqual({
            status: 503,
            code: 'OTP_DELIVERY_FAILED',
          });
        }
      });
      expectLimited(await send(email), 'OTP_SEND_LIMIT', 3600);
      const rows = await rowsFor(email);
      expect(rows.map((r) => r.delivery_status)).toEqual(Array(5).fill('failed'));
    });

    it('refuses an 11th send within a day', async () => {
      const email = uniqueEmail();
      const purposes = ['p1', 'p2', 'p3', 'p4', 'p5'];
      for (const purpose of purposes) expect((await send(email, purpose)).status).toBe(202);
      await travel(email, 3600);
      for (const purpose of purposes) expect((await send(email, purpose)).status).toBe(202);

      // The oldest send leaves the 24 h window 86400 - 3600 s from now.
      expectLimited(await send(email, 'p6'), 'OTP_SEND_LIMIT', 82_800);
      await travel(email, 3600);
      // The hourly cap no longer applies; the daily one alone still does.
      expectLimited(await send(email, 'p6'), 'OTP_SEND_LIMIT', 79_200);
      await travel(email, 79_200);
      expect((await send(email, 'p6')).status).toBe(202);
      expect(await rowsFor(email)).toHaveLength(11);
    });
  });

  describe('POST /otp/send progressive lockout', () => {
    it('locks for 30, 60, 300, 900 then 3600 s after each exhausted code', async () => {
      const email = uniqueEmail();
      for (const lockout of [30, 60, 300, 900, 3600]) {
        expect((await send(email)).status).toBe(202);
        // The verify that used the last attempt already tells the wait before the next send.
        expectLimited(await exhaust(email), 'OTP_ATTEMPTS_EXCEEDED', lockout);
        expectLimited(await send(email), 'OTP_LOCKED', lockout);
        await travel(email, lockout);
      }
      const rows = await rowsFor(email);
      expect(rows.filter((r) => r.exhausted_at !== null)).toHaveLength(5);
    });

    it('counts exhausted codes of every purpose', async () => {
      const email = uniqueEmail();
      expect((await send(email, 'login')).status).toBe(202);
      await exhaust(email, 'login');
      expectLimited(await send(email, 'signup'), 'OTP_LOCKED', 30);

      await travel(email, 30);
      expect((await send(email, 'signup')).status).toBe(202);
      await exhaust(email, 'signup');
      expectLimited(await send(email, 'login'), 'OTP_LOCKED', 60);
    });

    it('clears the lockout after a successful verify', async () => {
      const email = uniqueEmail();
      expect((await send(email)).status).toBe(202);
      await exhaust(email);
      await travel(email, 30);
      expect((await send(email)).status).toBe(202);
      expect((await verify(email, t.provider.lastCode(email))).status).toBe(200);

      // Nothing pending: no lockout, and the verify ended the flow's cooldown.
      expect((await send(email)).status).toBe(202);
      await exhaust(email);
      // The count restarted: the first step again, not the second.
      expectLimited(await send(email), 'OTP_LOCKED', 30);
    });

    it('names the cooldown when it ends after the lockout', async () => {
      const email = uniqueEmail();
      expect((await send(email)).status).toBe(202);
      await travel(email, 30);
      expect((await send(email)).status).toBe(202);
      await travel(email, 60);
      expect((await send(email)).status).toBe(202);
      // Cooldown 120 s from this send, lockout 30 s from the exhaustion.
      expectLimited(await exhaust(email), 'OTP_ATTEMPTS_EXCEEDED', 120);
      expectLimited(await send(email), 'OTP_RESEND_COOLDOWN', 120);
    });

    it('names the lockout when it ends after the cooldown', async () => {
      const email = uniqueEmail();
      expect((await send(email)).status).toBe(202);
      await exhaust(email);
      await travel(email, 30);
      expect((await send(email)).status).toBe(202);
      await travel(email, 50);
      // Cooldown: 10 s left of 60; lockout: 60 s from this second exhaustion.
      await exhaust(email);
      expectLimited(await send(email), 'OTP_LOCKED', 60);
      await travel(email, 55);
      expectLimited(await send(email), 'OTP_LOCKED', 5);
      await travel(email, 5);
      expect((await send(email)).status).toBe(202);
    });
  });
});

describe.each(LAYOUT_PLATFORMS)('send policy (configured numbers) on %s', (platform) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(
      {
        resendCooldownSeconds: [2, 4],
        lockoutStepSeconds: [7, 11],
        maxAttempts: 5,
        maxSendsPerHour: 3,
        maxSendsPerDay: 4,
        ttlSeconds: 120,
        codeLength: 8,
      },
      { platform },
    );
  });
  afterAll(async () => {
    await t.close();
  });

  const send = (destination: string, purpose?: string): Promise<Response> =>
    t.http.post('/otp/send').send(purpose ? { destination, purpose } : { destination });

  it('uses the configured code length, lifetime, attempts and lockout', async () => {
    const email = uniqueEmail();
    const sent = await send(email);
    expect(sent.status).toBe(202);
    expect(sent.body).toMatchObject({ codeLength: 8, attemptsAllowed: 5 });
    const [row] = await rowsFor(email);
    expect(Date.parse(sent.body.expiresAt) - (row?.created_at as Date).getTime()).toBe(120_000);
    expect(row).toMatchObject({ max_attempts: 5, code_length: 8 });

    const code = t.provider.lastCode(email);
    expect(code).toMatch(/^[0-9]{8}$/);
    for (const remaining of [4, 3, 2, 1]) {
      const res = await t.http
        .post('/otp/verify')
        .send({ destination: email, code: wrongCode(code) });
      expect(res.body).toMatchObject({ code: 'OTP_INVALID', attemptsRemaining: remaining });
    }
    const last = await t.http
      .post('/otp/verify')
      .send({ destination: email, code: wrongCode(code) });
    expectLimited(last, 'OTP_ATTEMPTS_EXCEEDED', 7);
    expectLimited(await send(email), 'OTP_LOCKED', 7);
  });

  it('uses the configured cooldowns, the last one repeating', async () => {
    const email = uniqueEmail();
    const first = await send(email);
    expect(resendDelay(first.body, 120)).toBe(2);
    expectLimited(await send(email), 'OTP_RESEND_COOLDOWN', 2);
    await travel(email, 2);
    const second = await send(email);
    expect(second.status).toBe(202);
    expect(resendDelay(second.body, 120)).toBe(4);
    expectLimited(await send(email), 'OTP_RESEND_COOLDOWN', 4);
    // Past the hour, so the hourly cap (3) cannot be what binds.
    await travel(email, 3600);
    const third = await send(email);
    expect(third.status).toBe(202);
    expect(resendDelay(third.body, 120)).toBe(4);
    expectLimited(await send(email), 'OTP_RESEND_COOLDOWN', 4);
  });

  it('uses the configured hourly and daily caps', async () => {
    const email = uniqueEmail();
    expect((await send(email, 'p1')).status).toBe(202);
    expect((await send(email, 'p2')).status).toBe(202);
    const third = await send(email, 'p3');
    expect(third.status).toBe(202);
    // resendAvailableAt is when the next send is allowed: here the hourly cap (3) opens.
    expect(Math.abs(resendDelay(third.body, 120) - 3600)).toBeLessThanOrEqual(1);
    expectLimited(await send(email, 'p4'), 'OTP_SEND_LIMIT', 3600);

    await travel(email, 3600);
    const fourth = await send(email, 'p4');
    expect(fourth.status).toBe(202);
    // The daily cap (4) is now full: it opens when the first send leaves the 24 h window.
    expect(Math.abs(resendDelay(fourth.body, 120) - 82_800)).toBeLessThanOrEqual(1);
    expectLimited(await send(email, 'p5'), 'OTP_SEND_LIMIT', 82_800);
  });
});

describe.each(LAYOUT_PLATFORMS)('send caps turned off (Infinity) on %s', (platform) => {
  let hourlyOff: TestApp;
  let bothOff: TestApp;
  beforeAll(async () => {
    const options = { resendCooldownSeconds: [0], ttlSeconds: 120 };
    hourlyOff = await startTestApp(
      { ...options, maxSendsPerHour: Infinity, maxSendsPerDay: 7 },
      { platform },
    );
    bothOff = await startTestApp(
      { ...options, maxSendsPerHour: Infinity, maxSendsPerDay: Infinity },
      { platform },
    );
  });
  afterAll(async () => {
    await hourlyOff?.close();
    await bothOff?.close();
  });

  it('leaves the other cap binding', async () => {
    const email = uniqueEmail();
    for (let i = 0; i < 7; i++) {
      expect((await hourlyOff.http.post('/otp/send').send({ destination: email })).status).toBe(
        202,
      );
    }
    const refused = await hourlyOff.http.post('/otp/send').send({ destination: email });
    expectLimited(refused, 'OTP_SEND_LIMIT', 86_400);
    expect(await rowsFor(email)).toHaveLength(7);
  });

  it('sends as often as the cooldown allows, each send a new active code', async () => {
    const email = uniqueEmail();
    // Twice the default daily cap, all within the hour.
    for (let i = 0; i < 20; i++) {
      const sent = await bothOff.http.post('/otp/send').send({ destination: email });
      expect(sent.status).toBe(202);
      // No cap is near: the next send is allowed at once (cooldown 0).
      expect(resendDelay(sent.body, 120)).toBe(0);
    }
    const rows = await rowsFor(email);
    expect(rows).toHaveLength(20);
    expect(rows.filter((r) => r.delivery_status === 'sent' && r.code_hash !== null)).toHaveLength(
      1,
    );
    const code = bothOff.provider.lastCode(email);
    const verified = await bothOff.http.post('/otp/verify').send({ destination: email, code });
    expect(verified.status).toBe(200);
  });
});

// This file also runs in the jest project "partitioned" (jest.config.mjs): on that layout there.
describe('the database under test', () => itRunsOnTheLayoutUnderTest());
