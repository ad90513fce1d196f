import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import type { Response, Test } from 'supertest';
import type TestAgent from 'supertest/lib/agent.js';
import { hashVerificationToken } from '../src/otp/crypto/verification-token.js';
import { racePhone, recordRace, tally, withOutcome, wrongCodes } from './support/races.js';
import {
  type CapturingProvider,
  LAYOUT_PLATFORMS,
  query,
  rowsFor,
  startTestApp,
  type TestApp,
  uniqueEmail,
} from './support/test-app.js';
import { itRunsOnTheLayoutUnderTest } from './support/layouts.js';

/**
 * Race safety through the real routes: each test fires many requests at once (Promise.all), then
 * checks the answers and the rows. The limits hold in Postgres (advisory locks, conditional
 * UPDATEs), so none of these may ever answer 500.
 */

const MAX_ATTEMPTS = 3;
const ROUNDS = 5;

const send = (http: TestAgent, body: Record<string, string>, idempotencyKey?: string): Test => {
  const req = http.post('/otp/send').send(body);
  return idempotencyKey === undefined ? req : req.set('Idempotency-Key', idempotencyKey);
};

const verify = (http: TestAgent, destination: string, code: string): Test =>
  http.post('/otp/verify').send({ destination, code });

const messagesTo = (provider: CapturingProvider, destination: string) =>
  provider.messages.filter((m) => m.destination === destination);

/** Every 429 carries `retryAfter` (>= 1, at most `max`) and the same value in `Retry-After`. */
function expectRetryAfter(responses: readonly Response[], max: number): void {
  for (const response of responses.filter((r) => r.status === 429)) {
    const retryAfter: unknown = response.body.retryAfter;
    expect(typeof retryAfter).toBe('number');
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(max);
    expect(response.headers['retry-after']).toBe(String(retryAfter));
  }
}

describe.each(LAYOUT_PLATFORMS)('races on %s', (platform) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({}, { platform });
  });
  afterAll(async () => {
    await t.close();
  });

  describe('POST /otp/verify', () => {
    it('N parallel verifies of the right code: exactly one 200', async () => {
      const parallel = 25;
      for (let round = 0; round < ROUNDS; round++) {
        const email = uniqueEmail();
        await send(t.http, { destination: email }).expect(202);
        const code = t.provider.lastCode(email);

        const responses = await Promise.all(
          Array.from({ length: parallel }, () => verify(t.http, email, code)),
        );
        const counts = tally(responses);
        recordRace(`parallel right-code verifies (${platform})`, { parallel, round, counts });

        // Besides the one 200, the accepted answers are:
        // - 410 OTP_EXPIRED: the guess came after the winner marked the code verified (or it
        //   reserved an attempt but lost the second conditional UPDATE to the winner): no active
        //   code is left, and the contract's 410 covers "already used".
        // - 429 OTP_ATTEMPTS_EXCEEDED: the guess came while all maxAttempts attempts were reserved
        //   by guesses still being checked, before the winner wrote verified_at: at that moment the
        //   code had no attempt left, which is what this 429 says.
        // Never 401 (the code is right), never 500.
        expect(counts['200']).toBe(1);
        for (const key of Object.keys(counts)) {
          expect(['200', '410 OTP_EXPIRED', '429 OTP_ATTEMPTS_EXCEEDED']).toContain(key);
        }
        expectRetryAfter(responses, 30);

        const [winner] = withOutcome(responses, '200');
        expect(winner?.body).toMatchObject({ verified: true });
        const token: unknown = winner?.body.verificationToken;
        expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);

        const rows = await rowsFor(email);
        expect(rows).toHaveLength(1);
        const row = rows[0];
        expect(row?.verified_at).toBeInstanceOf(Date);
        expect(row?.exhausted_at).toBeNull();
        expect(row?.code_hash).toBeNull();
        expect(row?.token_hash).toBe(hashVerificationToken(token as string));
        expect(row?.token_used_at).toBeNull();
        expect(row?.attempts_used).toBeGreaterThanOrEqual(1);
        expect(row?.attempts_used).toBeLessThanOrEqual(MAX_ATTEMPTS);
      }
    });

    it('N parallel wrong guesses never evaluate more than maxAttempts', async () => {
      const wrong = 30;
      // Where the right code sits among the guesses: first (likely evaluated), last or in the
      // middle (likely not), so the rounds see both endings. The assertions hold for any order.
      const rightAt = [0, wrong, wrong / 2, 0, wrong];
      for (let round = 0; round < ROUNDS; round++) {
        const email = uniqueEmail();
        await send(t.http, { destination: email }).expect(202);
        const code = t.provider.lastCode(email);
        const guesses = wrongCodes(code, wrong);
        const right = rightAt[round] ?? 0;
        guesses.splice(right, 0, code);

        const responses = await Promise.all(guesses.map((guess) => verify(t.http, email, guess)));
        const counts = tally(responses);

        for (const key of Object.keys(counts)) {
          expect([
            '200',
            '401 OTP_INVALID',
            '410 OTP_EXPIRED',
            '429 OTP_ATTEMPTS_EXCEEDED',
          ]).toContain(key);
        }
        responses.forEach((response, i) => {
          if (i !== right) expect(response.status).not.toBe(200);
        });
        expectRetryAfter(responses, 30);

        // Each evaluated guess short of the last attempt answered 401 with its own count of
        // attempts left: distinct values, each 1..maxAttempts-1.
        const invalid = withOutcome(responses, '401 OTP_INVALID');
        const remaining = invalid.map((r) => r.body.attemptsRemaining as number);
        expect(new Set(remaining).size).toBe(remaining.length);
        for (const left of remaining) {
          expect(left).toBeGreaterThanOrEqual(1);
          expect(left).toBeLessThanOrEqual(MAX_ATTEMPTS - 1);
        }

        const rows = await rowsFor(email);
        expect(rows).toHaveLength(1);
        const row = rows[0];
        const used = row?.attempts_used as number;
        expect(used).toBeLessThanOrEqual(MAX_ATTEMPTS);
        expect(row?.code_hash).toBeNull();

        let ending: string;
        if (counts['200'] === 1) {
          // The right code was evaluated and won. The evaluated guesses are the 200, the 401s,
          // and (only when the last attempt went to a wrong guess) one 429 for that guess.
          ending = 'verified';
          const lastAttemptRefusals = used - 1 - invalid.length;
          expect([0, 1]).toContain(lastAttemptRefusals);
          if (lastAttemptRefusals === 1) {
            expect(used).toBe(MAX_ATTEMPTS);
            expect(counts['429 OTP_ATTEMPTS_EXCEEDED']).toBeGreaterThanOrEqual(1);
          }
          expect(row?.verified_at).toBeInstanceOf(Date);
          expect(row?.exhausted_at).toBeNull();
          expect(row?.token_hash).toBe(
            hashVerificationToken(responses[right]?.body.verificationToken as string),
          );
        } else {
          // No 200: every attempt was used and the code is exhausted. Two 401s mean the right
          // code was not among the evaluated guesses (attempts 1 and 2 answered 401, attempt 3
          // answered 429). One 401 means it was evaluated, but the wrong guess holding the last
          // attempt exhausted the code before it could be marked verified, and it answered 429:
          // the code fails closed, and still no more than maxAttempts guesses were evaluated.
          expect(counts['200']).toBeUndefined();
          expect(used).toBe(MAX_ATTEMPTS);
          expect([1, 2]).toContain(invalid.length);
          ending =
            invalid.length === 2
              ? 'exhausted, right code not evaluated'
              : 'exhausted, right code evaluated but refused';
          expect(counts['429 OTP_ATTEMPTS_EXCEEDED']).toBeGreaterThanOrEqual(
            MAX_ATTEMPTS - invalid.length,
          );
          expect(row?.verified_at).toBeNull();
          expect(row?.exhausted_at).toBeInstanceOf(Date);
          expect(row?.token_hash).toBeNull();

          // The right code is refused afterwards, and uses no attempt.
          const after = await verify(t.http, email, code);
          expect(after.status).toBe(429);
          expect(after.body.code).toBe('OTP_ATTEMPTS_EXCEEDED');
          expect(after.headers['retry-after']).toBe(String(after.body.retryAfter));
          const [again] = await rowsFor(email);
          expect(again?.attempts_used).toBe(MAX_ATTEMPTS);
          expect(again?.verified_at).toBeNull();
        }
        recordRace(`parallel wrong guesses (${platform})`, {
          parallel: guesses.length,
          round,
          rightAt: right,
          counts,
          attemptsUsed: used,
          ending,
        });
      }
    });
  });

  describe('POST /otp/send', () => {
    it('N parallel sends to one destination: exactly one delivered', async () => {
      const parallel = 20;
      // Half the requests spell the number nationally: normalization must put every one of them
      // on the same destination (and so the same lock) before anything is decided.
      const { e164: phone, national } = racePhone();
      const responses = await Promise.all(
        Array.from({ length: parallel }, (_, i) =>
          send(t.http, { destination: i % 2 === 0 ? phone : national }),
        ),
      );
      const counts = tally(responses);

      expect(counts).toEqual({ '202': 1, '429 OTP_RESEND_COOLDOWN': parallel - 1 });
      expectRetryAfter(responses, 30);

      const rows = await rowsFor(phone);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({
        id: withOutcome(responses, '202')[0]?.body.requestId,
        delivery_status: 'sent',
        superseded_at: null,
      });
      const messages = messagesTo(t.provider, phone);
      expect(messages).toHaveLength(1);
      expect(messages[0]?.requestId).toBe(rows[0]?.id);
      recordRace(`parallel sends, one destination (${platform})`, {
        parallel,
        counts,
        rows: rows.length,
        messages: messages.length,
      });
    });

    it('N parallel sends split between two app instances: exactly one delivered', async () => {
      const parallel = 20;
      const second = await startTestApp({}, { platform });
      try {
        const email = uniqueEmail();
        const apps = [t, second];
        const responses = await Promise.all(
          Array.from({ length: parallel }, (_, i) =>
            send((apps[i % 2] as TestApp).http, { destination: email }),
          ),
        );
        const counts = tally(responses);
        const perApp = apps.map((_, a) => tally(responses.filter((__, i) => i % 2 === a)));

        expect(counts).toEqual({ '202': 1, '429 OTP_RESEND_COOLDOWN': parallel - 1 });
        expectRetryAfter(responses, 30);

        const rows = await rowsFor(email);
        expect(rows).toHaveLength(1);
        expect(rows[0]).toMatchObject({ delivery_status: 'sent', superseded_at: null });
        const messages = apps.map((app) => messagesTo(app.provider, email).length);
        expect(messages[0]! + messages[1]!).toBe(1);
        recordRace(`parallel sends, two app instances (${platform})`, {
          parallel,
          counts,
          perApp,
          rows: rows.length,
          messagesPerApp: messages,
        });
      } finally {
        await second.close();
      }
    });

    it('parallel sends for one destination with different purposes: exactly one per purpose', async () => {
      const purposes = ['login', 'reset'];
      const perPurpose = 10;
      const email = uniqueEmail();
      // Interleaved, so both purposes contend for the destination's lock at the same moment.
      const bodies = Array.from({ length: perPurpose * purposes.length }, (_, i) => ({
        destination: email,
        purpose: purposes[i % purposes.length] as string,
      }));
      const responses = await Promise.all(bodies.map((body) => send(t.http, body)));

      const byPurpose: Record<string, Record<string, number>> = {};
      for (const purpose of purposes) {
        const mine = responses.filter((_, i) => bodies[i]?.purpose === purpose);
        byPurpose[purpose] = tally(mine);
        expect(byPurpose[purpose]).toEqual({
          '202': 1,
          '429 OTP_RESEND_COOLDOWN': perPurpose - 1,
        });
        expect(withOutcome(mine, '202')[0]?.body.purpose).toBe(purpose);
      }
      expectRetryAfter(responses, 30);

      const active = await query<{ purpose: string; n: string }>(
        `SELECT purpose, count(*) AS n FROM otp_requests
          WHERE destination = $1 AND verified_at IS NULL AND exhausted_at IS NULL
            AND superseded_at IS NULL AND delivery_status <> 'failed'
          GROUP BY purpose ORDER BY purpose`,
        [email],
      );
      expect(active).toEqual([
        { purpose: 'login', n: '1' },
        { purpose: 'reset', n: '1' },
      ]);
      const rows = await rowsFor(email);
      expect(rows).toHaveLength(purposes.length);
      expect(rows.every((r) => r.delivery_status === 'sent')).toBe(true);
      expect(
        messagesTo(t.provider, email)
          .map((m) => m.purpose)
          .sort(),
      ).toEqual(purposes);
      recordRace(`parallel sends, one destination, two purposes (${platform})`, {
        parallel: bodies.length,
        byPurpose,
        rows: rows.length,
        activeRows: active,
      });
    });

    it('parallel sends across purposes never exceed the hourly cap', async () => {
      // Six purposes, three sends each: cooldowns alone would let six through, the hourly cap
      // (5 per destination, all purposes together) must stop the sixth.
      const purposes = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6'];
      const email = uniqueEmail();
      const bodies = Array.from({ length: purposes.length * 3 }, (_, i) => ({
        destination: email,
        purpose: purposes[i % purposes.length] as string,
      }));
      const responses = await Promise.all(bodies.map((body) => send(t.http, body)));
      const counts = tally(responses);

      expect(counts['202']).toBe(5);
      for (const key of Object.keys(counts)) {
        expect(['202', '429 OTP_RESEND_COOLDOWN', '429 OTP_SEND_LIMIT']).toContain(key);
      }
      expect(counts['429 OTP_SEND_LIMIT']).toBeGreaterThanOrEqual(1);
      expectRetryAfter(responses, 3600);

      const rows = await rowsFor(email);
      expect(rows).toHaveLength(5);
      expect(new Set(rows.map((r) => r.purpose)).size).toBe(5);
      expect(messagesTo(t.provider, email)).toHaveLength(5);
      recordRace(`parallel sends, six purposes, hourly cap 5 (${platform})`, {
        parallel: bodies.length,
        counts,
        rows: rows.length,
      });
    });

    it('parallel sends with one Idempotency-Key and one body: every answer replays one request', async () => {
      const parallel = 10;
      const email = uniqueEmail();
      const key = `race-${randomUUID()}`;
      const responses = await Promise.all(
        Array.from({ length: parallel }, () => send(t.http, { destination: email }, key)),
      );
      const counts = tally(responses);

      expect(counts).toEqual({ '202': parallel });
      const ids = new Set(responses.map((r) => r.body.requestId as string));
      expect(ids.size).toBe(1);

      const rows = await rowsFor(email);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ id: [...ids][0], idempotency_key: key });
      expect(messagesTo(t.provider, email)).toHaveLength(1);
      recordRace(`parallel sends, one Idempotency-Key, one body (${platform})`, {
        parallel,
        counts,
        distinctRequestIds: ids.size,
        rows: rows.length,
        messages: 1,
      });
    });

    it('parallel sends with one Idempotency-Key and different destinations: exactly one 202', async () => {
      const parallel = 10;
      const key = `race-${randomUUID()}`;
      const emails = Array.from({ length: parallel }, () => uniqueEmail());
      const responses = await Promise.all(
        emails.map((email) => send(t.http, { destination: email }, key)),
      );
      const counts = tally(responses);

      expect(counts).toEqual({ '202': 1, '422 IDEMPOTENCY_KEY_REUSED': parallel - 1 });

      const rows = await query<{ destination: string; idempotency_key: string }>(
        'SELECT destination, idempotency_key FROM otp_requests WHERE destination = ANY($1)',
        [emails],
      );
      const winner = emails[responses.findIndex((r) => r.status === 202)];
      expect(rows).toEqual([{ destination: winner, idempotency_key: key }]);
      const messages = emails.flatMap((email) => messagesTo(t.provider, email));
      expect(messages).toHaveLength(1);
      expect(messages[0]?.destination).toBe(winner);
      recordRace(`parallel sends, one Idempotency-Key, different destinations (${platform})`, {
        parallel,
        counts,
        rows: rows.length,
        messages: messages.length,
      });
    });
  });

  describe('POST /example/protected', () => {
    it('15 parallel uses of one verification token: exactly one passes', async () => {
      const parallel = 15;
      const email = uniqueEmail();
      await send(t.http, { destination: email }).expect(202);
      const verified = await verify(t.http, email, t.provider.lastCode(email)).expect(200);
      const token = verified.body.verificationToken as string;

      const responses = await Promise.all(
        Array.from({ length: parallel }, () =>
          t.http.post('/example/protected').set('X-OTP-Token', token),
        ),
      );
      const counts = tally(responses);

      expect(counts).toEqual({ '200': 1, '401 OTP_TOKEN_INVALID': parallel - 1 });
      expect(withOutcome(responses, '200')[0]?.body).toEqual({ ok: true, destination: email });

      const rows = await rowsFor(email);
      expect(rows).toHaveLength(1);
      expect(rows[0]?.token_hash).toBe(hashVerificationToken(token));
      expect(rows[0]?.token_used_at).toBeInstanceOf(Date);
      recordRace(`parallel uses of one verification token (${platform})`, {
        parallel,
        counts,
        tokenUsedAt: rows[0]?.token_used_at,
      });
    });
  });
});

// This file also runs in the jest project "partitioned" (jest.config.mjs): on that layout there.
describe('the database under test', () => itRunsOnTheLayoutUnderTest());
