import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Response } from 'supertest';
import type { OtpModuleOptionsInput } from '../src/otp/otp.options.js';
import {
  dbMillis,
  expectError,
  isoMillis,
  messagesTo,
  uniqueUsPhone,
  withFailing,
  wrongCode,
} from './support/contract.js';
import { recordRace, tally } from './support/races.js';
import {
  answer,
  exhaust,
  expectWait,
  resendDelay,
  sendOtp,
  statusOf,
  verifyOtp,
} from './support/rules.js';
import {
  query,
  rowsFor,
  startTestApp,
  travel,
  uniqueEmail,
  type TestApp,
} from './support/test-app.js';

/**
 * Policy per purpose (issue 10), through the routes on the real database: each purpose's TTL, code
 * length, attempts and cooldowns in the send answer, the status route and the row; the presets;
 * the channels a purpose allows; `strictPurposes`; and the limits every purpose of a destination
 * shares (send caps, lockout), which rotating purposes must not multiply.
 */

const PURPOSES: OtpModuleOptionsInput['purposes'] = {
  login: 'login',
  pay: 'transaction',
  recover: 'account-recovery',
  confirm: 'email-verification',
  short: { ttlSeconds: 60, codeLength: 8, maxAttempts: 5, resendCooldownSeconds: [10, 20] },
  'sms-only': { channels: ['sms'] },
  tight: { lockoutStepSeconds: [600] },
  loose: { lockoutStepSeconds: [0], resendCooldownSeconds: [0] },
  // No cooldown, so only the destination's caps hold their parallel sends back; each with its
  // own policy otherwise.
  'burst.a': { resendCooldownSeconds: [0] },
  'burst.b': { preset: 'login', resendCooldownSeconds: [0] },
  'burst.c': { codeLength: 8, maxAttempts: 5, resendCooldownSeconds: [0] },
  'burst.d': { preset: 'account-recovery', resendCooldownSeconds: [0] },
};

/** A send's 202 body. */
type Sent = Record<string, unknown> & {
  requestId: string;
  expiresAt: string;
  resendAvailableAt: string;
  ttlSeconds: number;
};

/** The send answered 202; its body. */
function accepted(res: Response): Sent {
  expect(answer(res)).toEqual({ status: 202, code: undefined });
  return res.body as Sent;
}

describe('per-purpose policy', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ purposes: PURPOSES });
  });
  afterAll(async () => {
    await t.close();
  });

  describe('POST /otp/send and GET /otp/requests/:requestId', () => {
    it("answer the purpose's TTL, code length and attempts, as the row stores them", async () => {
      const email = uniqueEmail();
      const sent = accepted(await sendOtp(t, { destination: email, purpose: 'short' }));
      expect(sent).toMatchObject({
        purpose: 'short',
        ttlSeconds: 60,
        codeLength: 8,
        attemptsAllowed: 5,
      });
      expect(resendDelay(sent)).toBe(10);
      const code = t.provider.lastCode(email);
      expect(code).toMatch(/^[0-9]{8}$/);

      const [row] = await rowsFor(email);
      expect(row).toMatchObject({ id: sent.requestId, code_length: 8, max_attempts: 5 });
      expect(dbMillis(row?.expires_at) - dbMillis(row?.created_at)).toBe(60_000);
      expect(isoMillis(sent.expiresAt)).toBe(dbMillis(row?.expires_at));
      expect(isoMillis(sent.resendAvailableAt)).toBe(dbMillis(row?.resend_available_at));

      const status = await statusOf(t, sent.requestId).expect(200);
      expect(status.body).toMatchObject({
        status: 'pending',
        purpose: 'short',
        ttlSeconds: 60,
        codeLength: 8,
        attemptsAllowed: 5,
        attemptsRemaining: 5,
        expiresAt: sent.expiresAt,
        resendAvailableAt: sent.resendAvailableAt,
      });

      // The code's length is the purpose's: six digits are malformed here and use no attempt.
      const six = await verifyOtp(t, { destination: email, purpose: 'short', code: '123456' });
      expectError(six, 400, 'VALIDATION_FAILED');
      const wrong = await verifyOtp(t, {
        destination: email,
        purpose: 'short',
        code: wrongCode(code),
      });
      expect({ ...answer(wrong), left: wrong.body.attemptsRemaining }).toEqual({
        status: 401,
        code: 'OTP_INVALID',
        left: 4,
      });
      const after = await statusOf(t, sent.requestId).expect(200);
      expect(after.body).toMatchObject({ attemptsRemaining: 4, attemptsAllowed: 5 });
      await verifyOtp(t, { destination: email, purpose: 'short', code }).expect(200);
    });

    it("escalates the purpose's own resend cooldowns", async () => {
      const email = uniqueEmail();
      const body = { destination: email, purpose: 'short' };
      expect(resendDelay(accepted(await sendOtp(t, body)))).toBe(10);
      expectWait(await sendOtp(t, body), 429, 'OTP_RESEND_COOLDOWN', 10);
      await travel(email, 10);
      expect(resendDelay(accepted(await sendOtp(t, body)))).toBe(20);
      expectWait(await sendOtp(t, body), 429, 'OTP_RESEND_COOLDOWN', 20);
      await travel(email, 20);
      // The last step repeats.
      const third = accepted(await sendOtp(t, body));
      expect(resendDelay(third)).toBe(20);
      const status = await statusOf(t, third.requestId).expect(200);
      expect(status.body.resendAvailableAt).toBe(third.resendAvailableAt);
    });

    it.each<[purpose: string, phone: boolean, ttl: number, channel: string]>([
      ['login', false, 120, 'email'],
      ['pay', true, 300, 'sms'],
      ['recover', false, 900, 'email'],
      ['confirm', false, 1800, 'email'],
      ['unlisted', false, 300, 'email'],
    ])('applies the %s policy (preset or module default)', async (purpose, phone, ttl, channel) => {
      const destination = phone ? uniqueUsPhone().e164 : uniqueEmail();
      const sent = accepted(await sendOtp(t, { destination, purpose }));
      expect(sent).toMatchObject({
        purpose,
        channel,
        ttlSeconds: ttl,
        codeLength: 6,
        attemptsAllowed: 3,
      });
      expect(resendDelay(sent)).toBe(30);
      const [row] = await rowsFor(destination);
      expect(dbMillis(row?.expires_at) - dbMillis(row?.created_at)).toBe(ttl * 1000);
      expect(row).toMatchObject({ purpose, code_length: 6, max_attempts: 3 });
      const status = await statusOf(t, sent.requestId).expect(200);
      expect(status.body).toMatchObject({
        ttlSeconds: ttl,
        codeLength: 6,
        attemptsAllowed: 3,
        attemptsRemaining: 3,
        expiresAt: sent.expiresAt,
        resendAvailableAt: sent.resendAvailableAt,
      });
      await verifyOtp(t, {
        destination,
        purpose,
        code: t.provider.lastCode(destination),
      }).expect(200);
    });
  });

  describe('allowed channels', () => {
    /** A 400 OTP_CHANNEL_NOT_ALLOWED that stored and sent nothing. */
    async function expectRefused(res: Response, destination: string): Promise<void> {
      expectError(res, 400, 'OTP_CHANNEL_NOT_ALLOWED');
      expect(await rowsFor(destination)).toEqual([]);
      expect(messagesTo(t, destination)).toBe(0);
    }

    it('refuses email for the phone-only transaction preset', async () => {
      const email = uniqueEmail();
      await expectRefused(await sendOtp(t, { destination: email, purpose: 'pay' }), email);
      // The same address for a purpose that allows email.
      accepted(await sendOtp(t, { destination: email, purpose: 'login' }));
    });

    it('refuses a phone, by either phone channel, for the email-only preset', async () => {
      const phone = uniqueUsPhone().e164;
      await expectRefused(await sendOtp(t, { destination: phone, purpose: 'confirm' }), phone);
      await expectRefused(
        await sendOtp(t, { destination: phone, purpose: 'confirm', channel: 'voice' }),
        phone,
      );
    });

    it('sends on each channel the purpose allows', async () => {
      const phone = uniqueUsPhone().e164;
      const sent = accepted(
        await sendOtp(t, { destination: phone, purpose: 'pay', channel: 'voice' }),
      );
      expect(sent.channel).toBe('voice');
      expect(t.provider.messages.at(-1)).toMatchObject({ destination: phone, channel: 'voice' });
    });

    it('never falls back to a channel the purpose refuses', async () => {
      const phone = uniqueUsPhone().e164;
      const failed = await withFailing(t, ['sms'], () =>
        sendOtp(t, { destination: phone, purpose: 'sms-only' }),
      );
      expectError(failed, 503, 'OTP_DELIVERY_FAILED');
      expect(messagesTo(t, phone)).toBe(0);
      expect((await rowsFor(phone)).map((r) => r.delivery_status)).toEqual(['failed']);

      // The module's sms → voice fallback still serves a purpose that allows voice.
      const other = uniqueUsPhone().e164;
      const fellBack = await withFailing(t, ['sms'], () =>
        sendOtp(t, { destination: other, purpose: 'pay' }),
      );
      expect(accepted(fellBack).channel).toBe('voice');
    });
  });

  describe('limits shared by every purpose of a destination', () => {
    it('keeps a lockout earned under one purpose for every purpose; a purpose only tightens it', async () => {
      const email = uniqueEmail();
      accepted(await sendOtp(t, { destination: email, purpose: 'login' }));
      expectWait(await exhaust(t, email, { purpose: 'login' }), 429, 'OTP_ATTEMPTS_EXCEEDED', 30);
      for (const purpose of ['login', 'recover', 'confirm', 'short', 'unlisted', 'loose']) {
        // `loose` asks for no lockout at all: the module's 30 s still holds.
        expectWait(await sendOtp(t, { destination: email, purpose }), 429, 'OTP_LOCKED', 30);
      }
      // `tight` makes its own sends wait 600 s after the same exhausted code.
      expectWait(
        await sendOtp(t, { destination: email, purpose: 'tight' }),
        429,
        'OTP_LOCKED',
        600,
      );
      expect(await rowsFor(email)).toHaveLength(1);

      await travel(email, 30);
      accepted(await sendOtp(t, { destination: email, purpose: 'recover' }));
      expectWait(
        await sendOtp(t, { destination: email, purpose: 'tight' }),
        429,
        'OTP_LOCKED',
        570,
      );
    });

    it('parallel sends across purposes with no cooldown never exceed the hourly cap', async () => {
      const purposes = ['burst.a', 'burst.b', 'burst.c', 'burst.d'];
      const perPurpose = 5;
      for (let round = 0; round < 3; round++) {
        const email = uniqueEmail();
        const bodies = Array.from({ length: purposes.length * perPurpose }, (_, i) => ({
          destination: email,
          purpose: purposes[i % purposes.length] as string,
        }));
        const responses = await Promise.all(bodies.map((body) => sendOtp(t, body)));
        const counts = tally(responses);
        recordRace('parallel sends, four purposes without cooldown, hourly cap 5', {
          round,
          parallel: bodies.length,
          counts,
        });
        expect(counts).toEqual({ '202': 5, '429 OTP_SEND_LIMIT': bodies.length - 5 });
        for (const res of responses.filter((r) => r.status === 429)) {
          expect(res.body.retryAfter).toBeGreaterThanOrEqual(3590);
          expect(res.headers['retry-after']).toBe(String(res.body.retryAfter));
        }
        const rows = await rowsFor(email);
        expect(rows).toHaveLength(5);
        expect(messagesTo(t, email)).toBe(5);
        // Each row carries its own purpose's policy.
        for (const row of rows) {
          const sent = responses.find((r) => r.body.requestId === row.id)?.body;
          expect(sent).toMatchObject({
            purpose: row.purpose,
            codeLength: row.code_length,
            attemptsAllowed: row.max_attempts,
          });
        }
      }
    });

    it('does not multiply the guesses an hour by rotating purposes', async () => {
      // Eight purposes, each a flow of its own: the cap (5 an hour, all purposes together) lets
      // five codes out, so at most 5 × 3 guesses are ever evaluated, not 8 × 3.
      const purposes = ['login', 'recover', 'confirm', 'tight', 'loose', 'x1', 'x2', 'x3'];
      const email = uniqueEmail();
      const sends = await Promise.all(
        purposes.map((purpose) => sendOtp(t, { destination: email, purpose })),
      );
      expect(tally(sends)).toEqual({ '202': 5, '429 OTP_SEND_LIMIT': 3 });
      const sentFor = purposes.filter((_, i) => sends[i]?.status === 202);

      const codes = new Map(
        t.provider.messages.filter((m) => m.destination === email).map((m) => [m.purpose, m.code]),
      );
      const guesses = purposes.flatMap((purpose) =>
        Array.from({ length: 4 }, () => ({
          destination: email,
          purpose,
          // Wrong for the purpose's code (any six digits for a purpose that got none).
          code: wrongCode(codes.get(purpose) ?? '000000'),
        })),
      );
      const responses = await Promise.all(guesses.map((body) => verifyOtp(t, body)));
      const counts = tally(responses);
      recordRace('parallel wrong guesses across eight purposes', { counts });
      // Two 401s a code (attempts 1 and 2), then 429s; 410 for the purposes that got no code.
      expect(counts).toEqual({
        '401 OTP_INVALID': 2 * sentFor.length,
        '429 OTP_ATTEMPTS_EXCEEDED': 4 * sentFor.length - 2 * sentFor.length,
        '410 OTP_EXPIRED': 4 * (purposes.length - sentFor.length),
      });

      const [used] = await query<{ attempts: number; exhausted: number }>(
        `SELECT sum(attempts_used)::int AS attempts, count(exhausted_at)::int AS exhausted
           FROM otp_requests WHERE destination = $1`,
        [email],
      );
      expect(used).toEqual({ attempts: 15, exhausted: 5 });
      // A purpose never used before gets no fresh budget either: the cap is full, and the lockout
      // after the fifth exhausted code (3600 s from now) ends last, so it is the one named.
      expectWait(await sendOtp(t, { destination: email, purpose: 'x9' }), 429, 'OTP_LOCKED', 3600);
    });
  });

  describe('with strictPurposes', () => {
    let strict: TestApp;
    beforeAll(async () => {
      strict = await startTestApp({
        strictPurposes: true,
        purposes: { login: 'login', pay: 'transaction' },
      });
    });
    afterAll(async () => {
      await strict.close();
    });

    it('refuses a purpose it does not list with 400 VALIDATION_FAILED, storing nothing', async () => {
      const email = uniqueEmail();
      const res = await sendOtp(strict, { destination: email, purpose: 'signup' });
      expectError(res, 400, 'VALIDATION_FAILED');
      expect(JSON.stringify(res.body.message)).toContain('signup');
      expect(await rowsFor(email)).toEqual([]);
      expect(messagesTo(strict, email)).toBe(0);

      const verify = await verifyOtp(strict, {
        destination: email,
        purpose: 'signup',
        code: '123456',
      });
      expectError(verify, 400, 'VALIDATION_FAILED');
    });

    it('serves the listed purposes, the default one included', async () => {
      const email = uniqueEmail();
      const sent = accepted(await sendOtp(strict, { destination: email }));
      expect(sent).toMatchObject({ purpose: 'login', ttlSeconds: 120 });
      await verifyOtp(strict, { destination: email, code: strict.provider.lastCode(email) }).expect(
        200,
      );
      const phone = uniqueUsPhone().e164;
      expect(accepted(await sendOtp(strict, { destination: phone, purpose: 'pay' }))).toMatchObject(
        { purpose: 'pay', ttlSeconds: 300 },
      );
    });
  });
});
