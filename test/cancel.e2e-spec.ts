import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { RequestNotFoundError } from '../src/otp/errors/otp.errors.js';
import { OtpService } from '../src/otp/otp.service.js';
import {
  EXPIRED_MESSAGE,
  expectError,
  expectUndecodableIdAnswer,
  sendCode,
  wrongCode,
} from './support/contract.js';
import { outcome, recordRace } from './support/races.js';
import {
  cancelOtp,
  exhaust,
  expectWait,
  resendDelay,
  sendOtp,
  statusOf,
  verifyOtp,
} from './support/rules.js';
import {
  PLATFORMS,
  rowsFor,
  startTestApp,
  travel,
  uniqueEmail,
  type TestApp,
} from './support/test-app.js';

/**
 * Cancel (issue 10): `POST /otp/requests/:requestId/cancel` stops an active request. 204; 404
 * `OTP_REQUEST_NOT_FOUND` for an unknown, malformed or finished one. A cancelled request starts no
 * cooldown but still counts toward the caps, and a cancel never succeeds together with the right
 * code.
 */
describe.each(PLATFORMS)('POST /otp/requests/:requestId/cancel on %s', (platform) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({}, { platform });
  });
  afterAll(async () => {
    await t.close();
  });

  it('cancels an active request: 204, then the right code is refused and the status says cancelled', async () => {
    const email = uniqueEmail();
    const { body: sent, code } = await sendCode(t, email);
    const requestId = sent.requestId as string;

    const res = await cancelOtp(t, requestId);
    expect(res.status).toBe(204);
    expect(res.text).toBe('');

    const verify = await verifyOtp(t, { destination: email, code });
    expectError(verify, 410, 'OTP_EXPIRED');
    expect(verify.body.message).toBe(EXPIRED_MESSAGE);

    const status = await statusOf(t, requestId).expect(200);
    expect(status.body).toMatchObject({ requestId, status: 'cancelled', attemptsRemaining: 0 });

    const [row] = await rowsFor(email);
    expect(row?.cancelled_at).toBeInstanceOf(Date);
    expect(row?.verified_at).toBeNull();
    expect(row?.code_hash).toBeNull();
    // The refused verify used no attempt.
    expect(row?.attempts_used).toBe(0);
  });

  it('finds the request by its id in upper case', async () => {
    const email = uniqueEmail();
    const { body: sent } = await sendCode(t, email);
    await cancelOtp(t, (sent.requestId as string).toUpperCase()).expect(204);
    expect((await rowsFor(email))[0]?.cancelled_at).toBeInstanceOf(Date);
  });

  it('cancels a request that already drew wrong guesses', async () => {
    const email = uniqueEmail();
    const { body: sent, code } = await sendCode(t, email);
    await verifyOtp(t, { destination: email, code: wrongCode(code) }).expect(401);
    await cancelOtp(t, sent.requestId as string).expect(204);
    expectError(await verifyOtp(t, { destination: email, code }), 410, 'OTP_EXPIRED');
  });

  it('starts no cooldown: the next send of the flow goes out at once', async () => {
    const email = uniqueEmail();
    const { body: first } = await sendCode(t, email);
    expectWait(await sendOtp(t, { destination: email }), 429, 'OTP_RESEND_COOLDOWN', 30);
    await cancelOtp(t, first.requestId as string).expect(204);

    const next = await sendOtp(t, { destination: email });
    expect(next.status).toBe(202);
    // Counted as the flow's first send again: its own cooldown is the first step.
    expect(resendDelay(next.body)).toBe(30);
    await verifyOtp(t, { destination: email, code: t.provider.lastCode(email) }).expect(200);
  });

  it('still counts a cancelled request toward the hourly cap', async () => {
    const email = uniqueEmail();
    for (let i = 0; i < 5; i++) {
      const { body } = await sendCode(t, email);
      await cancelOtp(t, body.requestId as string).expect(204);
    }
    expectWait(await sendOtp(t, { destination: email }), 429, 'OTP_SEND_LIMIT', 3600);
    const rows = await rowsFor(email);
    expect(rows).toHaveLength(5);
    expect(rows.every((r) => r.cancelled_at instanceof Date)).toBe(true);
  });

  describe('404 OTP_REQUEST_NOT_FOUND', () => {
    it.each([
      ['an unknown id', randomUUID()],
      ['a malformed id', 'not-a-uuid'],
      ['an id with trailing text', `${randomUUID()}x`],
      ['an SQL injection attempt', "' OR 1=1 --"],
    ])('for %s', async (_name, id) => {
      expectError(await cancelOtp(t, id), 404, 'OTP_REQUEST_NOT_FOUND');
    });

    it('for an id whose percent-encoding is not UTF-8 (on Fastify its router answers)', async () => {
      expectUndecodableIdAnswer(await t.http.post('/otp/requests/%ED%A0%80/cancel'), platform);
    });

    it('for a request already verified, which stays verified', async () => {
      const email = uniqueEmail();
      const { body: sent, code } = await sendCode(t, email);
      await verifyOtp(t, { destination: email, code }).expect(200);
      expectError(await cancelOtp(t, sent.requestId as string), 404, 'OTP_REQUEST_NOT_FOUND');
      const [row] = await rowsFor(email);
      expect(row?.cancelled_at).toBeNull();
      expect(row?.verified_at).toBeInstanceOf(Date);
      expect((await statusOf(t, sent.requestId as string)).body.status).toBe('verified');
    });

    it('for a request already cancelled', async () => {
      const email = uniqueEmail();
      const { body: sent } = await sendCode(t, email);
      await cancelOtp(t, sent.requestId as string).expect(204);
      const [before] = await rowsFor(email);
      expectError(await cancelOtp(t, sent.requestId as string), 404, 'OTP_REQUEST_NOT_FOUND');
      const [after] = await rowsFor(email);
      expect(after?.cancelled_at).toEqual(before?.cancelled_at);
    });

    it('for a superseded, an expired and an exhausted request', async () => {
      const email = uniqueEmail();
      const { body: superseded } = await sendCode(t, email);
      await travel(email, 30);
      const { body: expired } = await sendCode(t, email);
      await travel(email, 301);
      expectError(await cancelOtp(t, superseded.requestId as string), 404, 'OTP_REQUEST_NOT_FOUND');
      expectError(await cancelOtp(t, expired.requestId as string), 404, 'OTP_REQUEST_NOT_FOUND');

      const { body: exhausted } = await sendCode(t, email);
      await exhaust(t, email);
      expectError(await cancelOtp(t, exhausted.requestId as string), 404, 'OTP_REQUEST_NOT_FOUND');
      expect((await rowsFor(email)).every((r) => r.cancelled_at === null)).toBe(true);
    });
  });

  it('OtpService.cancel: cancels, then throws RequestNotFoundError', async () => {
    const email = uniqueEmail();
    const { body: sent } = await sendCode(t, email);
    const otp = t.app.get(OtpService);
    await otp.cancel(sent.requestId as string);
    await expect(otp.cancel(sent.requestId as string)).rejects.toBeInstanceOf(RequestNotFoundError);
    await expect(otp.cancel('nope')).rejects.toBeInstanceOf(RequestNotFoundError);
    expect((await statusOf(t, sent.requestId as string)).body.status).toBe('cancelled');
  });

  it('a cancel and the right code at once never both succeed', async () => {
    // bcrypt (at its lowest cost) makes the check of the code take a moment between the verify's
    // two writes (reserve an attempt, then mark verified), so a cancel can land in between.
    const slow = await startTestApp({ hasher: 'bcrypt', bcryptCost: 4 }, { platform });
    try {
      const rounds = 20;
      const endings: Record<string, number> = {};
      for (let round = 0; round < rounds; round++) {
        const email = uniqueEmail();
        const { body: sent, code } = await sendCode(slow, email);
        const requestId = sent.requestId as string;
        // Delaying the cancel by 0-4 ms makes it land before, between or after the verify's
        // writes across the rounds; whatever the order, one of them must lose.
        const delay = round % 5;
        const [verified, cancelled] = await Promise.all([
          verifyOtp(slow, { destination: email, code }),
          sleep(delay).then(() => cancelOtp(slow, requestId)),
        ]);

        const ending = `cancel ${outcome(cancelled)} / verify ${outcome(verified)}`;
        expect([
          'cancel 204 / verify 410 OTP_EXPIRED',
          'cancel 404 OTP_REQUEST_NOT_FOUND / verify 200',
        ]).toContain(ending);

        const [row] = await rowsFor(email);
        expect(row?.verified_at !== null && row?.cancelled_at !== null).toBe(false);
        if (verified.status === 200) {
          expect(row?.verified_at).toBeInstanceOf(Date);
          expect(row?.cancelled_at).toBeNull();
          expect(row?.token_hash).not.toBeNull();
        } else {
          expect(row?.cancelled_at).toBeInstanceOf(Date);
          expect(row?.verified_at).toBeNull();
          expect(row?.token_hash).toBeNull();
        }
        // A cancelled row with a reserved attempt: the cancel landed between the verify's writes.
        const key = `${ending}${row?.cancelled_at && row.attempts_used === 1 ? ' (mid-verify)' : ''}`;
        endings[key] = (endings[key] ?? 0) + 1;
      }
      recordRace('cancel against the right code', { platform, rounds, endings });
    } finally {
      await slow.close();
    }
  });
});
