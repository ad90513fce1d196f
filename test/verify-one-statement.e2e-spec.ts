import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectError, sendCode, wrongCode } from './support/contract.js';
import { itRunsOnTheLayoutUnderTest } from './support/layouts.js';
import { statementsDuring } from './support/statement-count.js';
import { rowsFor, startTestApp, type TestApp, travel, uniqueEmail } from './support/test-app.js';

/**
 * A right code sent by the same instance verifies in one statement (the reservation compares the
 * guess bound to the remembered request and marks it verified); anything else takes the usual
 * path, and the database decides either way.
 */

const verifyOn = (t: TestApp, body: Record<string, unknown>) =>
  t.http.post('/otp/verify').send(body);

describe('verify of a code the instance sent (verifyCacheSize)', () => {
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    // Two instances on one database; resends allowed at once, so the second can replace a code.
    [a, b] = await Promise.all([
      startTestApp({ resendCooldownSeconds: [0] }),
      startTestApp({ resendCooldownSeconds: [0] }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([a.close(), b.close()]);
  });

  it('a right code verifies in one statement, and its token works once', async () => {
    const email = uniqueEmail();
    const { code } = await sendCode(a, email);
    let token = '';
    const statements = await statementsDuring(a.app, async () => {
      const res = await verifyOn(a, { destination: email, code }).expect(200);
      token = res.body.verificationToken as string;
    });
    expect(statements).toBe(1);

    const [row] = await rowsFor(email);
    expect(row).toMatchObject({ attempts_used: 1, code_hash: null, exhausted_at: null });
    expect(row?.verified_at).not.toBeNull();
    expect(row?.token_hash).not.toBeNull();
    await a.http.post('/example/protected').set('X-OTP-Token', token).expect(200);
    await a.http.post('/example/protected').set('X-OTP-Token', token).expect(401);
    // Used: the same code again finds no active code.
    const again = await verifyOn(a, { destination: email, code });
    expect(again.status).not.toBe(200);
  });

  it('a wrong guess is one statement and one attempt, and the code still verifies after it', async () => {
    const email = uniqueEmail();
    const { code } = await sendCode(a, email);
    const statements = await statementsDuring(a.app, async () => {
      const res = await verifyOn(a, { destination: email, code: wrongCode(code) });
      expectError(res, 401, 'OTP_INVALID', ['attemptsRemaining']);
      expect(res.body.attemptsRemaining).toBe(2);
    });
    expect(statements).toBe(1);
    expect((await rowsFor(email))[0]).toMatchObject({ attempts_used: 1, verified_at: null });

    await verifyOn(a, { destination: email, code }).expect(200);
    expect((await rowsFor(email))[0]).toMatchObject({ attempts_used: 2, code_hash: null });
  });

  it('a code sent by another instance verifies the usual way (two statements)', async () => {
    const email = uniqueEmail();
    const { code } = await sendCode(a, email);
    const statements = await statementsDuring(b.app, async () => {
      await verifyOn(b, { destination: email, code }).expect(200);
    });
    expect(statements).toBe(2);
    expect((await rowsFor(email))[0]).toMatchObject({ attempts_used: 1, code_hash: null });
  });

  it('after a resend on another instance, the remembered code is refused and the new one verifies', async () => {
    const email = uniqueEmail();
    const { code: first } = await sendCode(a, email);
    const { code: second } = await sendCode(b, email);
    // Instance a still remembers the first request; the database says it was superseded.
    const res = await verifyOn(a, { destination: email, code: first });
    if (first === second) {
      expect(res.status).toBe(200);
      return;
    }
    expectError(res, 401, 'OTP_INVALID', ['attemptsRemaining']);
    const [old, current] = await rowsFor(email);
    // The guess took an attempt of the active code, none of the superseded one.
    expect(old).toMatchObject({ attempts_used: 0, verified_at: null, code_hash: null });
    expect(old?.superseded_at).not.toBeNull();
    expect(current).toMatchObject({ attempts_used: 1, verified_at: null });

    await verifyOn(a, { destination: email, code: second }).expect(200);
    const rows = await rowsFor(email);
    expect(rows[0]?.verified_at).toBeNull();
    expect(rows[1]).toMatchObject({ attempts_used: 2, code_hash: null });
    expect(rows[1]?.verified_at).not.toBeNull();
  });

  it('once the attempts are used up, the right code is refused like any guess', async () => {
    const email = uniqueEmail();
    const { code } = await sendCode(a, email);
    const wrong = wrongCode(code);
    expectError(await verifyOn(a, { destination: email, code: wrong }), 401, 'OTP_INVALID', [
      'attemptsRemaining',
    ]);
    expectError(await verifyOn(a, { destination: email, code: wrong }), 401, 'OTP_INVALID', [
      'attemptsRemaining',
    ]);
    expectError(
      await verifyOn(a, { destination: email, code: wrong }),
      429,
      'OTP_ATTEMPTS_EXCEEDED',
    );
    const right = await verifyOn(a, { destination: email, code });
    const another = await verifyOn(a, { destination: email, code: wrong });
    expectError(right, 429, 'OTP_ATTEMPTS_EXCEEDED');
    expectError(another, 429, 'OTP_ATTEMPTS_EXCEEDED');
    const [row] = await rowsFor(email);
    expect(row).toMatchObject({ attempts_used: 3, verified_at: null, token_hash: null });
  });

  it('a remembered code past its expiry in the database is refused (410), its hash dropped', async () => {
    const email = uniqueEmail();
    const { code } = await sendCode(a, email);
    // The rows move into the past; the instance's memory of the code does not.
    await travel(email, 3600);
    expectError(await verifyOn(a, { destination: email, code }), 410, 'OTP_EXPIRED');
    expect((await rowsFor(email))[0]).toMatchObject({
      attempts_used: 0,
      verified_at: null,
      code_hash: null,
    });
  });

  it('many guesses at once, the right one among them: at most one 200, one answer per attempt', async () => {
    const email = uniqueEmail();
    const { code } = await sendCode(a, email);
    const guesses = [
      code,
      ...Array.from({ length: 19 }, (_, i) =>
        String((Number(code) + 1 + i) % 1_000_000).padStart(6, '0'),
      ),
    ];
    const responses = await Promise.all(
      guesses.map((guess) => verifyOn(a, { destination: email, code: guess })),
    );
    const statuses = responses.map((r) => r.status);
    const ok = statuses.filter((s) => s === 200).length;
    const invalid = statuses.filter((s) => s === 401).length;
    expect(ok).toBeLessThanOrEqual(1);
    // 401 wrong, 429 attempts used up, 410 the code was used (only after the one 200).
    expect(statuses.filter((s) => ![200, 401, 410, 429].includes(s))).toEqual([]);
    if (ok === 0) expect(statuses).not.toContain(410);

    const [row] = await rowsFor(email);
    // Every answer that judged a guess took an attempt, and no more than three were taken.
    expect(row?.attempts_used).toBe(ok + invalid);
    expect(ok + invalid).toBeLessThanOrEqual(3);
    if (ok === 1) {
      expect(row?.verified_at).not.toBeNull();
      expect(row?.token_hash).not.toBeNull();
    } else {
      expect(row).toMatchObject({ verified_at: null, token_hash: null });
    }
  });
});

describe('verify without the one-statement path', () => {
  it.each([
    ['verifyCacheSize: 0', { verifyCacheSize: 0 }],
    ['the bcrypt hasher', { hasher: 'bcrypt' as const, bcryptCost: 4 }],
  ])('%s: a right code takes two statements', async (_label, options) => {
    const t = await startTestApp(options);
    try {
      const email = uniqueEmail();
      const { code } = await sendCode(t, email);
      const statements = await statementsDuring(t.app, async () => {
        await verifyOn(t, { destination: email, code }).expect(200);
      });
      expect(statements).toBe(2);
      expect((await rowsFor(email))[0]).toMatchObject({ attempts_used: 1, code_hash: null });
    } finally {
      await t.close();
    }
  });
});

describe('the database under test', () => itRunsOnTheLayoutUnderTest());
