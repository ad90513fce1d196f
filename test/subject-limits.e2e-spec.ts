import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { OtpService } from '../src/otp/otp.service.js';
import { expectError, wrongCode } from './support/contract.js';
import { recordRace, tally } from './support/races.js';
import { answer, expectWait, sendOtp, verifyOtp, type Headers } from './support/rules.js';
import {
  query,
  rowsFor,
  startTestApp,
  travel,
  uniqueEmail,
  type TestApp,
} from './support/test-app.js';

/**
 * Per-account limits (issue 10): a `subject` (the host's user id, set server-side; here the test's
 * `subjectFrom` reads header `X-Test-User`, standing in for a host's session) adds send caps and a
 * guess budget across every destination of the account, so rotating destinations does not reset
 * them. Sends and verifies of one account are serialized by a Postgres advisory lock, so the limits
 * hold under parallel requests, on one instance or several.
 */

const LIMITS = { maxSendsPerHour: 6, maxSendsPerDay: 8, maxFailedVerifiesPerDay: 5 };

const options = {
  subjectLimits: LIMITS,
  // The races queue many requests of one account behind its lock: on a busy machine the wait may
  // outlast the default 3 s (a 503), which is not what these tests are about.
  lockTimeoutMs: 15_000,
  acquireTimeoutMs: 15_000,
  subjectFrom: (request: unknown): string | undefined => {
    const value = (request as { headers: Record<string, unknown> }).headers['x-test-user'];
    return typeof value === 'string' ? value : undefined;
  },
};

const uniqueUser = (): string => `user-${randomUUID()}`;
const as = (user: string): Headers => ({ 'x-test-user': user });

interface SubjectTotals {
  rows: number;
  attempts: number;
}
const totalsOf = async (subject: string): Promise<SubjectTotals | undefined> =>
  (
    await query<SubjectTotals>(
      `SELECT count(*)::int AS rows, COALESCE(sum(attempts_used), 0)::int AS attempts
         FROM otp_requests WHERE subject = $1`,
      [subject],
    )
  )[0];

describe('per-account limits', () => {
  let t: TestApp;
  let second: TestApp;
  beforeAll(async () => {
    t = await startTestApp(options);
    second = await startTestApp(options);
  });
  afterAll(async () => {
    await t.close();
    await second.close();
  });

  /** Sends a code to each of `count` new addresses for `user` (202 each); the addresses. */
  async function sendToMany(user: string, count: number): Promise<string[]> {
    const emails = Array.from({ length: count }, () => uniqueEmail());
    for (const email of emails) {
      const res = await sendOtp(t, { destination: email }, as(user));
      expect(answer(res)).toEqual({ status: 202, code: undefined });
    }
    return emails;
  }

  describe('POST /otp/send', () => {
    it('caps the sends of an account an hour, across its destinations and OtpService', async () => {
      const user = uniqueUser();
      await sendToMany(user, 3);
      const otp = t.app.get(OtpService);
      for (let i = 0; i < 3; i++) await otp.send({ destination: uniqueEmail(), subject: user });

      const seventh = uniqueEmail();
      expectWait(await sendOtp(t, { destination: seventh }, as(user)), 429, 'OTP_SEND_LIMIT', 3600);
      await expect(otp.send({ destination: uniqueEmail(), subject: user })).rejects.toMatchObject({
        code: 'OTP_SEND_LIMIT',
      });
      expect(await rowsFor(seventh)).toEqual([]);
      expect(await totalsOf(user)).toEqual({ rows: 6, attempts: 0 });

      // Another account, and a send without one, are not held back by this account's cap.
      expect((await sendOtp(t, { destination: seventh }, as(uniqueUser()))).status).toBe(202);
      expect((await sendOtp(t, { destination: uniqueEmail() })).status).toBe(202);
    });

    it('caps the sends of an account a day', async () => {
      const user = uniqueUser();
      const first = await sendToMany(user, 6);
      for (const email of first) await travel(email, 3600);
      await sendToMany(user, 2);
      // The oldest send leaves the 24 h window 86400 - 3600 s from now.
      expectWait(
        await sendOtp(t, { destination: uniqueEmail() }, as(user)),
        429,
        'OTP_SEND_LIMIT',
        82_800,
      );
      expect(await totalsOf(user)).toEqual({ rows: 8, attempts: 0 });
    });

    it('never takes the account from the body', async () => {
      const email = uniqueEmail();
      const res = await sendOtp(t, { destination: email, subject: uniqueUser() });
      expectError(res, 400, 'VALIDATION_FAILED');
      expect(await rowsFor(email)).toEqual([]);
      const verify = await verifyOtp(t, { destination: email, code: '123456', subject: 'x' });
      expectError(verify, 400, 'VALIDATION_FAILED');
    });

    it('parallel sends of one account to many destinations never exceed its hourly cap', async () => {
      const parallel = 15;
      for (let round = 0; round < 3; round++) {
        const user = uniqueUser();
        // The last round splits the requests between two app instances.
        const apps = round === 2 ? [t, second] : [t];
        const emails = Array.from({ length: parallel }, () => uniqueEmail());
        const responses = await Promise.all(
          emails.map((destination, i) =>
            sendOtp(apps[i % apps.length] as TestApp, { destination }, as(user)),
          ),
        );
        const counts = tally(responses);
        recordRace('parallel sends of one account, many destinations', {
          round,
          instances: apps.length,
          parallel,
          counts,
        });
        expect(counts).toEqual({
          '202': LIMITS.maxSendsPerHour,
          '429 OTP_SEND_LIMIT': parallel - LIMITS.maxSendsPerHour,
        });
        expect(await totalsOf(user)).toEqual({ rows: LIMITS.maxSendsPerHour, attempts: 0 });
        const sentTo = await query<{ destination: string }>(
          'SELECT destination FROM otp_requests WHERE destination = ANY($1)',
          [emails],
        );
        expect(sentTo).toHaveLength(LIMITS.maxSendsPerHour);
      }
    });

    it.each([
      ['different accounts', () => uniqueUser()],
      ['one account', (user: string) => user],
    ])(
      'parallel sends with one Idempotency-Key for %s, different destinations: exactly one 202',
      async (_name, accountOf) => {
        const parallel = 8;
        const key = `race-${randomUUID()}`;
        const user = uniqueUser();
        const emails = Array.from({ length: parallel }, () => uniqueEmail());
        const responses = await Promise.all(
          emails.map((destination) =>
            sendOtp(t, { destination }, as(accountOf(user))).set('Idempotency-Key', key),
          ),
        );
        const counts = tally(responses);
        recordRace('parallel sends, one Idempotency-Key, per-account locks', {
          accounts: _name,
          counts,
        });
        // Never a 500: a send that lost the key inside an account's lock decides again.
        expect(counts).toEqual({ '202': 1, '422 IDEMPOTENCY_KEY_REUSED': parallel - 1 });
        const rows = await query('SELECT id FROM otp_requests WHERE idempotency_key = $1', [key]);
        expect(rows).toHaveLength(1);
      },
    );
  });

  describe('POST /otp/verify', () => {
    it('reserves only a code sent for the same account, never one of another or of none', async () => {
      const user = uniqueUser();
      const [email] = await sendToMany(user, 1);
      const code = t.provider.lastCode(email as string);
      // Another account, or none at all (a caller without the session): nothing to verify, no
      // attempt used, so the account's budget cannot be sidestepped by leaving the session out.
      expectError(
        await verifyOtp(t, { destination: email, code }, as(uniqueUser())),
        410,
        'OTP_EXPIRED',
      );
      expectError(await verifyOtp(t, { destination: email, code }), 410, 'OTP_EXPIRED');
      expect((await rowsFor(email as string))[0]?.attempts_used).toBe(0);
      await verifyOtp(t, { destination: email, code }, as(user)).expect(200);

      // A code sent without an account verifies without one only.
      const anonymous = uniqueEmail();
      await sendOtp(t, { destination: anonymous }).expect(202);
      const theirs = t.provider.lastCode(anonymous);
      expectError(
        await verifyOtp(t, { destination: anonymous, code: theirs }, as(user)),
        410,
        'OTP_EXPIRED',
      );
      await verifyOtp(t, { destination: anonymous, code: theirs }).expect(200);
    });

    it('stops every guess of an account once its budget of wrong guesses is spent', async () => {
      const user = uniqueUser();
      const emails = await sendToMany(user, 3);
      const guess = (email: string, right = false) => {
        const code = t.provider.lastCode(email);
        return verifyOtp(t, { destination: email, code: right ? code : wrongCode(code) }, as(user));
      };
      for (const email of [emails[0], emails[0], emails[1], emails[1], emails[2]]) {
        expect(answer(await guess(email as string))).toEqual({ status: 401, code: 'OTP_INVALID' });
      }
      expect(await totalsOf(user)).toEqual({ rows: 3, attempts: 5 });

      // Five wrong guesses in 24 h: even the right code of a fresh destination is refused now,
      // until the oldest of them leaves the window.
      expectWait(await guess(emails[2] as string, true), 429, 'OTP_ATTEMPTS_EXCEEDED', 86_400);
      const [fresh] = await sendToMany(user, 1);
      expectWait(await guess(fresh as string, true), 429, 'OTP_ATTEMPTS_EXCEEDED', 86_400);
      expect(await totalsOf(user)).toEqual({ rows: 4, attempts: 5 });

      // Another account keeps its own budget.
      const other = uniqueUser();
      const [theirs] = await sendToMany(other, 1);
      await verifyOtp(
        t,
        { destination: theirs, code: t.provider.lastCode(theirs as string) },
        as(other),
      ).expect(200);
    });

    it('parallel wrong guesses of one account across destinations never exceed its budget', async () => {
      const destinations = LIMITS.maxSendsPerHour;
      const perDestination = 3;
      for (let round = 0; round < 3; round++) {
        const user = uniqueUser();
        const apps = round === 2 ? [t, second] : [t];
        const emails = await sendToMany(user, destinations);
        const guesses = emails.flatMap((email) =>
          Array.from({ length: perDestination }, () => ({
            destination: email,
            code: wrongCode(t.provider.lastCode(email)),
          })),
        );
        // Every other guess leaves the account out, as a caller without the session would.
        const responses = await Promise.all(
          guesses.map((body, i) =>
            verifyOtp(apps[i % apps.length] as TestApp, body, i % 2 === 0 ? as(user) : {}),
          ),
        );
        const counts = tally(responses);
        const totals = await totalsOf(user);
        recordRace('parallel wrong guesses of one account, many destinations', {
          round,
          instances: apps.length,
          parallel: guesses.length,
          counts,
          attemptsUsed: totals?.attempts,
        });
        for (const key of Object.keys(counts)) {
          expect(['401 OTP_INVALID', '429 OTP_ATTEMPTS_EXCEEDED', '410 OTP_EXPIRED']).toContain(
            key,
          );
        }
        // The guesses without the account found no code of theirs to try.
        expect(responses.filter((_, i) => i % 2 === 1).map((r) => r.status)).toEqual(
          Array(guesses.length / 2).fill(410),
        );
        expect(counts['401 OTP_INVALID'] ?? 0).toBeLessThanOrEqual(LIMITS.maxFailedVerifiesPerDay);
        // Exactly the budget was evaluated: every guess had an attempt to take until it ran out.
        expect(totals).toEqual({ rows: destinations, attempts: LIMITS.maxFailedVerifiesPerDay });
      }
    });
  });
});
