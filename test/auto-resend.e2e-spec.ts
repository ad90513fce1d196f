import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Response } from 'supertest';
import {
  dbMillis,
  EXPIRED_MESSAGE,
  expectError,
  isoMillis,
  messagesTo,
  sendCode,
  UUID_PATTERN,
  uniqueUsPhone,
  withFailing,
} from './support/contract.js';
import { outcome, recordRace } from './support/races.js';
import { cancelOtp, exhaust, resendDelay, statusOf, verifyOtp } from './support/rules.js';
import { rowsFor, startTestApp, travel, uniqueEmail, type TestApp } from './support/test-app.js';

/**
 * Auto-resend on expiry (issue 10, off by default, per purpose): a verify of an expired, unused
 * code sends a fresh one when the send policy allows, and answers 410 `OTP_EXPIRED` with
 * `resent: true` and the new request's fields; otherwise the plain 410. Expiry is reached by
 * moving the destination's history into the past (`travel`), past the login preset's 120 s.
 */

const TTL = 120;
const RESENT_KEYS = [
  'statusCode',
  'code',
  'message',
  'resent',
  'requestId',
  'destination',
  'channel',
  'purpose',
  'expiresAt',
  'ttlSeconds',
  'codeLength',
  'attemptsAllowed',
  'resendAvailableAt',
].sort();

/** The plain 410: the contract's three fields and its one message, nothing resent. */
function expectPlainExpired(res: Response): void {
  expectError(res, 410, 'OTP_EXPIRED');
  expect(res.body.message).toBe(EXPIRED_MESSAGE);
}

describe('auto-resend on expiry', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({
      purposes: { login: { preset: 'login', autoResend: true }, plain: 'login' },
    });
  });
  afterAll(async () => {
    await t.close();
  });

  const verify = (destination: string, code: string, purpose?: string) =>
    verifyOtp(t, { destination, code, ...(purpose ? { purpose } : {}) });

  describe('POST /otp/verify', () => {
    it('answers 410 with resent: true and the new request, whose code then verifies', async () => {
      const email = uniqueEmail();
      const { body: first, code: old } = await sendCode(t, email);
      await travel(email, TTL + 1);

      const res = await verify(email, old);
      expect(res.status).toBe(410);
      expect(Object.keys(res.body).sort()).toEqual(RESENT_KEYS);
      expect(res.body).toMatchObject({
        statusCode: 410,
        code: 'OTP_EXPIRED',
        message: 'This code has expired. A new code was sent.',
        resent: true,
        destination: 'u•••@example.com',
        channel: 'email',
        purpose: 'login',
        ttlSeconds: TTL,
        codeLength: 6,
        attemptsAllowed: 3,
      });
      expect(res.body.requestId).toMatch(UUID_PATTERN);
      expect(res.body.requestId).not.toBe(first.requestId);
      // The flow's second send: the second cooldown step.
      expect(resendDelay(res.body)).toBe(60);

      const rows = await rowsFor(email);
      expect(rows.map((r) => r.id)).toEqual([first.requestId, res.body.requestId]);
      // The first code ended by expiring (the verify dropped its hash), before the new send, which
      // supersedes only a live code.
      expect(rows[0]).toMatchObject({ superseded_at: null, code_hash: null, attempts_used: 0 });
      expect((await statusOf(t, first.requestId as string).expect(200)).body).toMatchObject({
        status: 'expired',
      });
      expect(rows[1]).toMatchObject({ delivery_status: 'sent', superseded_at: null });
      expect(isoMillis(res.body.expiresAt)).toBe(dbMillis(rows[1]?.expires_at));
      expect(messagesTo(t, email)).toBe(2);

      const status = await statusOf(t, res.body.requestId as string).expect(200);
      expect(status.body).toMatchObject({
        status: 'pending',
        expiresAt: res.body.expiresAt,
        resendAvailableAt: res.body.resendAvailableAt,
        ttlSeconds: TTL,
      });
      const fresh = t.provider.lastCode(email);
      await verify(email, fresh).expect(200);
    });

    it('resends on the channel the expired code went out on', async () => {
      const phone = uniqueUsPhone().e164;
      const { code } = await sendCode(t, phone, { channel: 'voice' });
      await travel(phone, TTL + 1);
      const res = await verify(phone, code);
      expect(res.body).toMatchObject({ resent: true, channel: 'voice' });
      expect(t.provider.messages.at(-1)).toMatchObject({ destination: phone, channel: 'voice' });
    });

    it('answers the plain 410 for a purpose without auto-resend', async () => {
      for (const purpose of ['plain', 'unlisted']) {
        const email = uniqueEmail();
        const { code } = await sendCode(t, email, { purpose });
        await travel(email, 301);
        expectPlainExpired(await verify(email, code, purpose));
        expect(await rowsFor(email)).toHaveLength(1);
        expect(messagesTo(t, email)).toBe(1);
      }
    });

    it('answers the plain 410 when the send cap refuses the fresh code', async () => {
      const email = uniqueEmail();
      for (const purpose of ['p1', 'p2', 'p3', 'p4']) await sendCode(t, email, { purpose });
      const { code } = await sendCode(t, email);
      await travel(email, TTL + 1);
      expectPlainExpired(await verify(email, code));
      expect(await rowsFor(email)).toHaveLength(5);
    });

    it('answers the plain 410 during a lockout', async () => {
      const email = uniqueEmail();
      const { code } = await sendCode(t, email);
      await travel(email, TTL + 1);
      await sendCode(t, email, { purpose: 'other' });
      await exhaust(t, email, { purpose: 'other' });
      expectPlainExpired(await verify(email, code));
      expect(await rowsFor(email)).toHaveLength(2);
    });

    it('answers the plain 410 for a used, an exhausted, a cancelled or a never sent code', async () => {
      const used = uniqueEmail();
      const { code: usedCode } = await sendCode(t, used);
      await verify(used, usedCode).expect(200);
      await travel(used, TTL + 1);
      expectPlainExpired(await verify(used, usedCode));

      const exhausted = uniqueEmail();
      const { code: exhaustedCode } = await sendCode(t, exhausted);
      await exhaust(t, exhausted);
      await travel(exhausted, TTL + 1);
      expectPlainExpired(await verify(exhausted, exhaustedCode));

      const cancelled = uniqueEmail();
      const { body, code: cancelledCode } = await sendCode(t, cancelled);
      await cancelOtp(t, body.requestId as string).expect(204);
      await travel(cancelled, TTL + 1);
      expectPlainExpired(await verify(cancelled, cancelledCode));

      const never = uniqueEmail();
      expectPlainExpired(await verify(never, '123456'));

      for (const email of [used, exhausted, cancelled]) {
        expect(await rowsFor(email)).toHaveLength(1);
        expect(messagesTo(t, email)).toBe(1);
      }
      expect(await rowsFor(never)).toEqual([]);
    });

    it('answers the plain 410 when the fresh code cannot be delivered, leaving no active code', async () => {
      const email = uniqueEmail();
      const { code } = await sendCode(t, email);
      await travel(email, TTL + 1);
      expectPlainExpired(await withFailing(t, ['email'], () => verify(email, code)));
      const rows = await rowsFor(email);
      expect(rows.map((r) => r.delivery_status)).toEqual(['sent', 'failed']);
      expect(rows[1]?.code_hash).toBeNull();
    });

    it('parallel verifies of one expired code send exactly one fresh code', async () => {
      for (let round = 0; round < 3; round++) {
        const email = uniqueEmail();
        const { code } = await sendCode(t, email);
        await travel(email, TTL + 1);
        const responses = await Promise.all(Array.from({ length: 10 }, () => verify(email, code)));

        const resent = responses.filter((r) => r.body.resent === true);
        const others = responses.filter((r) => r.body.resent !== true).map(outcome);
        recordRace('parallel verifies of an expired code, auto-resend', {
          round,
          resent: resent.length,
          others,
        });
        expect(resent).toHaveLength(1);
        // The rest: the plain 410 (the fresh code was being sent or the cooldown refused
        // another), or a wrong guess at the fresh code once it was out (401, then 429).
        for (const key of others) {
          expect(['410 OTP_EXPIRED', '401 OTP_INVALID', '429 OTP_ATTEMPTS_EXCEEDED']).toContain(
            key,
          );
        }
        for (const res of responses.filter((r) => r.status === 410 && r.body.resent !== true)) {
          expectPlainExpired(res);
        }
        const rows = await rowsFor(email);
        expect(rows).toHaveLength(2);
        expect(rows[1]?.id).toBe(resent[0]?.body.requestId);
        expect(messagesTo(t, email)).toBe(2);
      }
    });
  });
});
