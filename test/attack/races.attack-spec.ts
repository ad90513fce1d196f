import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomInt } from 'node:crypto';
import type { Response } from 'supertest';
import { hashVerificationToken } from '../../src/otp/crypto/verification-token.js';
import { AttackDb, report, spyOnGuesses, type GuessSpy } from '../support/attack-kit.js';
import { outcome, showCounts, tally, withOutcome, wrongCodes } from '../support/races.js';
import { startTestApp, uniqueEmail, type TestApp } from '../support/test-app.js';

/**
 * Races, the long run: the races of test/races.e2e-spec.ts, repeated for many rounds, with the
 * figures printed for the issue note. Every round checks the answers, the rows, and (through a
 * spy on the hasher) which guesses the server really compared against the code.
 */

const ROUNDS = 50;
const MAX_ATTEMPTS = 3;

/** Adds one round's outcome counts to a running total. */
function addTo(total: Record<string, number>, counts: Record<string, number>): void {
  for (const [key, n] of Object.entries(counts)) total[key] = (total[key] ?? 0) + n;
}

describe('races, repeated (attack suite)', () => {
  let t: TestApp;
  let db: AttackDb;
  let spy: GuessSpy;
  beforeAll(async () => {
    t = await startTestApp();
    db = new AttackDb();
    spy = spyOnGuesses(t.app);
  });
  afterAll(async () => {
    await db.end();
    await t.close();
  });

  const send = (destination: string): Promise<Response> =>
    t.http.post('/otp/send').send({ destination }).then();
  const verify = (destination: string, code: string): Promise<Response> =>
    t.http.post('/otp/verify').send({ destination, code }).then();

  /** Sends a code to a fresh address and returns the address, its code and its request id. */
  async function freshCode(): Promise<{ email: string; code: string; id: string }> {
    const email = uniqueEmail();
    const res = await send(email);
    expect(res.status).toBe(202);
    return { email, code: t.provider.lastCode(email), id: res.body.requestId as string };
  }

  it(`POST /otp/verify: 25 parallel right codes verify exactly once, ${ROUNDS} rounds`, async () => {
    const parallel = 25;
    let exactlyOne = 0;
    const total: Record<string, number> = {};
    let maxEvaluated = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const { email, code, id } = await freshCode();
      spy.reset();
      const responses = await Promise.all(
        Array.from({ length: parallel }, () => verify(email, code)),
      );
      const counts = tally(responses);
      addTo(total, counts);

      expect(counts['200']).toBe(1);
      for (const key of Object.keys(counts)) {
        expect(['200', '410 OTP_EXPIRED', '429 OTP_ATTEMPTS_EXCEEDED']).toContain(key);
      }
      const token = withOutcome(responses, '200')[0]?.body.verificationToken as string;
      const rows = await db.rowsFor(email);
      expect(rows).toHaveLength(1);
      // One token issued: the one row holds the hash of the one token answered.
      expect(rows.filter((r) => r.token_hash !== null)).toHaveLength(1);
      expect(rows[0]?.token_hash).toBe(hashVerificationToken(token));
      expect(rows[0]?.verified_at).toBeInstanceOf(Date);
      const evaluated = spy.evaluated.get(id) ?? [];
      expect(evaluated.length).toBeGreaterThanOrEqual(1);
      expect(evaluated.length).toBeLessThanOrEqual(MAX_ATTEMPTS);
      expect(rows[0]?.attempts_used).toBe(evaluated.length);
      maxEvaluated = Math.max(maxEvaluated, evaluated.length);
      exactlyOne += 1;
    }
    report(
      `races: ${ROUNDS} rounds, verify-right (${parallel} parallel): ${exactlyOne}/${ROUNDS} ` +
        `exactly one 200 and one token; at most ${maxEvaluated} guesses evaluated per code; ` +
        `answers: ${showCounts(total)}`,
    );
  });

  it(`POST /otp/verify: 30 parallel wrong codes plus the right one never evaluate more than 3, ${ROUNDS} rounds`, async () => {
    const wrong = 30;
    const endings = { verified: 0, exhausted: 0 };
    const evaluatedHistogram: Record<string, number> = {};
    const total: Record<string, number> = {};
    for (let round = 0; round < ROUNDS; round++) {
      const { email, code, id } = await freshCode();
      const guesses = wrongCodes(code, wrong);
      // The right code first, last, in the middle, or anywhere: both endings must occur.
      const rightAt = [0, wrong, wrong / 2, randomInt(wrong + 1)][round % 4] as number;
      guesses.splice(rightAt, 0, code);
      spy.reset();
      const responses = await Promise.all(guesses.map((guess) => verify(email, guess)));
      const counts = tally(responses);
      addTo(total, counts);

      // What the server compared against this code's hash: at most maxAttempts distinct guesses.
      const evaluated = spy.evaluated.get(id) ?? [];
      expect(evaluated.length).toBeLessThanOrEqual(MAX_ATTEMPTS);
      expect(new Set(evaluated).size).toBe(evaluated.length);
      evaluatedHistogram[evaluated.length] = (evaluatedHistogram[evaluated.length] ?? 0) + 1;

      // Each guess is distinct, so each response is known to have been evaluated or not.
      const answered = responses.map((res, i) => ({ guess: guesses[i] as string, res }));
      const wasEvaluated = answered.filter((a) => evaluated.includes(a.guess));
      const notEvaluated = answered.filter((a) => !evaluated.includes(a.guess));
      expect(wasEvaluated).toHaveLength(evaluated.length);
      for (const { guess, res } of wasEvaluated) {
        if (guess === code) expect(outcome(res)).toBe('200');
        else expect(['401 OTP_INVALID', '429 OTP_ATTEMPTS_EXCEEDED']).toContain(outcome(res));
      }
      for (const { res } of notEvaluated) {
        expect(['410 OTP_EXPIRED', '429 OTP_ATTEMPTS_EXCEEDED']).toContain(outcome(res));
      }

      // The stored counter equals the number of answers that evaluated a guess.
      const [row] = await db.rowsFor(email);
      expect(row?.attempts_used).toBe(wasEvaluated.length);
      expect(row?.code_hash).toBeNull();

      const rightEvaluated = evaluated.includes(code);
      expect(counts['200'] ?? 0).toBe(rightEvaluated ? 1 : 0);
      if (rightEvaluated) {
        endings.verified += 1;
        expect(row?.verified_at).toBeInstanceOf(Date);
        expect(row?.token_hash).toBe(
          hashVerificationToken(responses[rightAt]?.body.verificationToken as string),
        );
      } else {
        endings.exhausted += 1;
        expect(row?.attempts_used).toBe(MAX_ATTEMPTS);
        expect(row?.verified_at).toBeNull();
        expect(row?.exhausted_at).toBeInstanceOf(Date);
        expect(row?.token_hash).toBeNull();
      }

      // The right code is refused afterwards either way (used, or the code is exhausted), and
      // that refusal evaluates nothing.
      spy.reset();
      const after = await verify(email, code);
      expect(outcome(after)).toBe(rightEvaluated ? '410 OTP_EXPIRED' : '429 OTP_ATTEMPTS_EXCEEDED');
      expect(spy.evaluated.size).toBe(0);
      expect((await db.rowsFor(email))[0]?.attempts_used).toBe(row?.attempts_used);
    }
    expect(endings.verified + endings.exhausted).toBe(ROUNDS);
    report(
      `races: ${ROUNDS} rounds, wrong+right (${wrong} wrong + 1 right in parallel): never more ` +
        `than ${MAX_ATTEMPTS} evaluated (rounds by guesses evaluated: ` +
        `${showCounts(evaluatedHistogram)}); attempts_used = answers that evaluated a guess in ` +
        `${ROUNDS}/${ROUNDS}; right code verified in ${endings.verified}, code exhausted ` +
        `in ${endings.exhausted}, right code refused afterwards in ${ROUNDS}/${ROUNDS}; ` +
        `answers: ${showCounts(total)}`,
    );
  });

  it(`POST /otp/send: 30 parallel sends deliver once, ${ROUNDS} rounds`, async () => {
    const parallel = 30;
    let exactlyOne = 0;
    const total: Record<string, number> = {};
    for (let round = 0; round < ROUNDS; round++) {
      const email = uniqueEmail();
      // Spelled three ways: normalization must put all of them on one destination (one lock).
      const spellings = [email, `  ${email.toUpperCase()}`, `${email.replace('user', 'USER')} `];
      const responses = await Promise.all(
        Array.from({ length: parallel }, (_, i) => send(spellings[i % 3] as string)),
      );
      const counts = tally(responses);
      addTo(total, counts);
      expect(counts).toEqual({ '202': 1, '429 OTP_RESEND_COOLDOWN': parallel - 1 });

      const rows = await db.rowsFor(email);
      expect(rows).toHaveLength(1);
      const active = rows.filter(
        (r) =>
          r.verified_at === null &&
          r.exhausted_at === null &&
          r.superseded_at === null &&
          r.delivery_status === 'sent',
      );
      expect(active).toHaveLength(1);
      const deliveries = t.provider.messages.filter((m) => m.destination === email);
      expect(deliveries).toHaveLength(1);
      expect(deliveries[0]?.requestId).toBe(rows[0]?.id);
      exactlyOne += 1;
    }
    report(
      `races: ${ROUNDS} rounds, sends (${parallel} parallel, 3 spellings): ${exactlyOne}/${ROUNDS} ` +
        `one delivery and one active row; answers: ${showCounts(total)}`,
    );
  });

  it(`POST /example/protected: 15 parallel uses of one token pass once, ${ROUNDS} rounds`, async () => {
    const parallel = 15;
    let exactlyOne = 0;
    const total: Record<string, number> = {};
    for (let round = 0; round < ROUNDS; round++) {
      const { email, code } = await freshCode();
      const verified = await verify(email, code);
      expect(verified.status).toBe(200);
      const token = verified.body.verificationToken as string;

      const responses = await Promise.all(
        Array.from({ length: parallel }, () =>
          t.http.post('/example/protected').set('X-OTP-Token', token).then(),
        ),
      );
      const counts = tally(responses);
      addTo(total, counts);
      expect(counts).toEqual({ '200': 1, '401 OTP_TOKEN_INVALID': parallel - 1 });
      expect(withOutcome(responses, '200')[0]?.body).toEqual({ ok: true, destination: email });
      const [row] = await db.rowsFor(email);
      expect(row?.token_used_at).toBeInstanceOf(Date);
      exactlyOne += 1;
    }
    report(
      `races: ${ROUNDS} rounds, token uses (${parallel} parallel): ${exactlyOne}/${ROUNDS} ` +
        `exactly one passes; answers: ${showCounts(total)}`,
    );
  });
});
