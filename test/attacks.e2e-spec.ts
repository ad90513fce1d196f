import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import type { Response, Test } from 'supertest';
import { hashVerificationToken } from '../src/otp/crypto/verification-token.js';
import {
  expectSendsAlike,
  expectVerifiesWithoutCodeAlike,
  expectWrongGuessAsSlowAsUnknown,
  type EnumerationRun,
} from './support/attack-enumeration.js';
import { FUZZ_ROUTES, fuzzAndReport, seedFuzzPool, type FuzzPool } from './support/attack-fuzz.js';
import {
  AttackDb,
  report,
  spyOnGuesses,
  startPrivateApp,
  type GuessSpy,
  type PrivateApp,
} from './support/attack-kit.js';
import { expectError, uniqueUkMobile, uniqueUsPhone } from './support/contract.js';
import { outcome, wrongCodes } from './support/races.js';
import { PLATFORMS, startTestApp, type TestApp, travel, uniqueEmail } from './support/test-app.js';

/**
 * The attacks that run quickly: guessing across resends, enumeration, type confusion and
 * injection, fuzzing, response manipulation. Races repeated for many rounds and longer fuzz runs
 * are in test/attack/ (`npm run test:attack`). Figures for the issue note are printed as
 * `[attack] ...` lines.
 */

const MAX_ATTEMPTS = 3;
/** With the default policy: 5 sends an hour × 3 attempts each. */
const HOURLY_GUESS_BUDGET = 5 * MAX_ATTEMPTS;
const HOUR = 3_600;
const PURPOSES = ['login', 'reset', 'signup', 'payment', 'email-change', 'delete.account'];

// Express only, as the enumeration tests (the reason is given there).
describe('guess budget across resends (POST /otp/send, POST /otp/verify)', () => {
  let us: TestApp;
  let gb: TestApp;
  let db: AttackDb;
  const spies = new Map<TestApp, GuessSpy>();
  beforeAll(async () => {
    us = await startTestApp();
    gb = await startTestApp({ defaultRegion: 'GB' });
    db = new AttackDb();
    spies.set(us, spyOnGuesses(us.app));
    spies.set(gb, spyOnGuesses(gb.app));
  });
  afterAll(async () => {
    await db.end();
    await us.close();
    await gb.close();
  });

  /** How an attacker writes each request: the spelling, purpose and proxy header may rotate. */
  interface Plan {
    region: 'US' | 'GB';
    /** The destination as the server stores it. */
    normalized: string;
    spell(step: number): string;
    purpose(sendAttempt: number): string;
    forwardedFor(step: number): string | undefined;
  }

  interface Figures {
    guesses: number;
    sends: number;
    refusedSends: Record<string, number>;
    lastSendAt: number;
  }

  /**
   * One virtual hour of an attacker who resends as soon as the server allows and spends every
   * attempt of every code. Time is the database's clock, so the clock advances by moving the
   * destination's history into the past by exactly the `retryAfter` the server answered.
   */
  async function attackForAnHour(t: TestApp, plan: Plan): Promise<Figures> {
    const figures: Figures = { guesses: 0, sends: 0, refusedSends: {}, lastSendAt: 0 };
    let clock = 0;
    let step = 0;
    let sendAttempts = 0;
    const post = (path: string, body: Record<string, unknown>): Test => {
      const forwardedFor = plan.forwardedFor(step);
      const req = t.http.post(path).send({ destination: plan.spell(step), ...body });
      step += 1;
      return forwardedFor === undefined ? req : req.set('X-Forwarded-For', forwardedFor);
    };

    for (;;) {
      const purpose = plan.purpose(sendAttempts);
      sendAttempts += 1;
      const sent = await post('/otp/send', { purpose });
      if (sent.status === 202) {
        figures.sends += 1;
        figures.lastSendAt = clock;
        const guesses = wrongCodes(t.provider.lastCode(plan.normalized), 10);
        // Wrong guesses until the server says the attempts are spent: every 401, and the 429 that
        // used the last attempt, evaluated a guess.
        for (const guess of guesses) {
          const res = await post('/otp/verify', { code: guess, purpose });
          figures.guesses += 1;
          if (outcome(res) === '401 OTP_INVALID') continue;
          expect(outcome(res)).toBe('429 OTP_ATTEMPTS_EXCEEDED');
          break;
        }
        // One more try after that is refused and evaluates nothing (checked below, by the spy).
        const extra = await post('/otp/verify', { code: guesses[9], purpose });
        expect(outcome(extra)).toBe('429 OTP_ATTEMPTS_EXCEEDED');
        continue; // and resend at once: the server names the wait
      }
      expect(outcome(sent)).toMatch(/^429 OTP_(RESEND_COOLDOWN|LOCKED|SEND_LIMIT)$/);
      const code = sent.body.code as string;
      figures.refusedSends[code] = (figures.refusedSends[code] ?? 0) + 1;
      const wait = sent.body.retryAfter as number;
      if (clock + wait >= HOUR) return figures;
      await travel(plan.normalized, wait);
      clock += wait;
    }
  }

  const fixed =
    <T>(value: T) =>
    (): T =>
      value;
  const rotate =
    <T>(values: readonly T[]) =>
    (i: number): T =>
      values[i % values.length] as T;
  const emailSpellings = (email: string): string[] => [
    email,
    email.toUpperCase(),
    `  ${email}  `,
    ` ${email[0]?.toUpperCase()}${email.slice(1, -12)}@Example.COM`,
  ];
  const forwardedFor = (i: number): string => `203.0.113.${(i % 250) + 1}, 10.0.0.${(i % 7) + 1}`;

  /** One fresh email address; `rotating` names what the attacker varies from request to request. */
  const emailPlan =
    (rotating: { spellings?: boolean; purposes?: boolean; forwardedFor?: boolean } = {}) =>
    (): Plan => {
      const email = uniqueEmail();
      return {
        region: 'US',
        normalized: email,
        spell: rotating.spellings ? rotate(emailSpellings(email)) : fixed(email),
        purpose: rotating.purposes ? rotate(PURPOSES) : fixed('login'),
        forwardedFor: rotating.forwardedFor ? forwardedFor : fixed(undefined),
      };
    };
  /** One phone number written in turn as each of `spellings`. */
  const phonePlan = (region: Plan['region'], e164: string, spellings: string[]): Plan => ({
    region,
    normalized: e164,
    spell: rotate(spellings),
    purpose: fixed('login'),
    forwardedFor: fixed(undefined),
  });

  const plans: [string, () => Plan][] = [
    ['one email address', emailPlan()],
    ['an email address in other cases and with spaces', emailPlan({ spellings: true })],
    [
      'a UK mobile as +44 7400 … and 07400 … (defaultRegion GB)',
      () => {
        const { spaced, e164 } = uniqueUkMobile();
        const national = `0${spaced.slice(4)}`;
        return phonePlan('GB', e164, [spaced, national, e164, national.replace(' ', '')]);
      },
    ],
    [
      'a US number as +1 415 … and (415) … (defaultRegion US)',
      () => {
        const { e164, national } = uniqueUsPhone();
        return phonePlan('US', e164, [
          `+1 415 ${e164.slice(5, 8)} ${e164.slice(8)}`,
          national,
          e164,
        ]);
      },
    ],
    ['one email address, a new purpose for every send', emailPlan({ purposes: true })],
    [
      'one email address, a new X-Forwarded-For on every request',
      emailPlan({ forwardedFor: true }),
    ],
    [
      'spellings, purposes and X-Forwarded-For all rotating',
      emailPlan({ spellings: true, purposes: true, forwardedFor: true }),
    ],
  ];

  it.each(plans)('holds an attacker to 15 guesses an hour: %s', async (label, makePlan) => {
    const plan = makePlan();
    const t = plan.region === 'GB' ? gb : us;
    const spy = spies.get(t) as GuessSpy;
    const figures = await attackForAnHour(t, plan);

    // What the server really compared, and what it stored, agree with what the answers said.
    const rows = await db.rowsFor(plan.normalized);
    const evaluated = rows.reduce(
      (sum, row) => sum + (spy.evaluated.get(row.id as string)?.length ?? 0),
      0,
    );
    const attemptsUsed = rows.reduce((sum, row) => sum + (row.attempts_used as number), 0);
    expect({ evaluated, attemptsUsed }).toEqual({
      evaluated: figures.guesses,
      attemptsUsed: figures.guesses,
    });
    expect(rows).toHaveLength(figures.sends);
    expect(t.provider.messages.filter((m) => m.destination === plan.normalized)).toHaveLength(
      figures.sends,
    );

    expect(figures.sends).toBeGreaterThanOrEqual(1);
    expect(figures.sends).toBeLessThanOrEqual(5);
    expect(figures.guesses).toBeGreaterThanOrEqual(MAX_ATTEMPTS);
    expect(figures.guesses).toBeLessThanOrEqual(HOURLY_GUESS_BUDGET);
    const refused = Object.entries(figures.refusedSends)
      .map(([code, n]) => `${code} x${n}`)
      .join(', ');
    report(
      `guess budget, ${label}: ${figures.guesses} wrong codes evaluated in one virtual hour ` +
        `= ${figures.guesses} guesses/hour (budget ${HOURLY_GUESS_BUDGET}; NIST SP 800-63B ` +
        `allows 100); ${figures.sends} codes sent, the last at ${figures.lastSendAt} s; ` +
        `refused sends: ${refused}`,
    );
  });
});

describe.each(PLATFORMS)('per-IP throttling (POST /otp/send) on %s', (platform) => {
  it('does not let a rotating X-Forwarded-For escape the per-IP throttle', async () => {
    const throttled = await startTestApp({ throttleLimit: 5 }, { platform });
    try {
      const outcomes: string[] = [];
      for (let i = 1; i <= 8; i++) {
        const res = await throttled.http
          .post('/otp/send')
          .set('X-Forwarded-For', `198.51.100.${i}`)
          .send({ destination: uniqueEmail() });
        outcomes.push(outcome(res));
      }
      expect(outcomes).toEqual([
        ...Array<string>(5).fill('202'),
        ...Array<string>(3).fill('429 RATE_LIMITED'),
      ]);
    } finally {
      await throttled.close();
    }
  });
});

// Express only: the guess budget (above) and these timings are the service's policy and its
// constant-time work, the same whatever serves the routes; what a platform changes (parsing,
// errors, throttling by IP) is attacked on both, around them.
describe('enumeration', () => {
  /** Fewer samples than test/attack/, the same tolerance; `run` names the hasher. */
  const quick = (run: string): EnumerationRun => ({
    samples: 40,
    tolerance: { minMs: 5, fraction: 0.4 },
    run,
  });

  describe('POST /otp/send', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await startTestApp();
    });
    afterAll(async () => {
      await t.close();
    });

    it('answers alike, as fast, for addresses with history and addresses never seen', async () => {
      await expectSendsAlike(t, quick('hmac'));
    });
  });

  describe('POST /otp/verify (bcrypt, cost 8)', () => {
    // bcrypt, so a missing decoy comparison would show: cost 8 takes about 15 ms a comparison
    // here, several times what a verify without it takes. test/attack/ repeats this with cost 10.
    let t: TestApp;
    beforeAll(async () => {
      t = await startTestApp({ hasher: 'bcrypt', bcryptCost: 8 });
    });
    afterAll(async () => {
      await t.close();
    });

    it('answers alike, as fast, for addresses with history and addresses never seen', async () => {
      await expectVerifiesWithoutCodeAlike(t, quick('bcrypt 8'));
    });

    it('takes as long for a wrong guess at an active code as for an address never seen', async () => {
      await expectWrongGuessAsSlowAsUnknown(t, quick('bcrypt 8'));
    });
  });
});

/** Digits 0-9 of `code` written in another Unicode digit block starting at `zero`. */
const inDigits = (code: string, zero: number): string =>
  [...code].map((d) => String.fromCodePoint(zero + Number(d))).join('');

describe.each(PLATFORMS)('type confusion, injection, response manipulation on %s', (platform) => {
  let p: PrivateApp;
  beforeAll(async () => {
    p = await startPrivateApp({}, platform);
  });
  afterAll(async () => {
    await p.close();
  });

  const post = (path: string, body: unknown): Test => p.http.post(path).send(body as object);

  /** Sends a fresh code to a fresh address (normalized form) and returns both. */
  async function freshCode(): Promise<{ email: string; code: string }> {
    const email = uniqueEmail();
    const res = await post('/otp/send', { destination: email });
    expect(res.status).toBe(202);
    return { email, code: p.provider.lastCode(email) };
  }

  /** Runs `act`, expects a 400 VALIDATION_FAILED, and the table and deliveries unchanged. */
  async function expectRefusedWithoutEffect(act: () => PromiseLike<Response>): Promise<void> {
    const before = await p.db.fingerprint();
    const messages = p.provider.messages.length;
    const res = await act();
    expectError(res, 400, 'VALIDATION_FAILED');
    expect(await p.db.fingerprint()).toEqual(before);
    expect(p.provider.messages).toHaveLength(messages);
  }

  describe('POST /otp/verify: the code', () => {
    // Not repeated here (test/verify.e2e-spec.ts): 5 or 7 digits, a space inside, a letter, a
    // JSON number, Arabic-Indic digits, no code, an extra field.
    it.each<[string, (code: string) => unknown]>([
      ['an array holding the right code', (c) => [c]],
      ['the object {"$ne": ""}', () => ({ $ne: '' })],
      ['the object {"$gt": ""}', () => ({ $gt: '' })],
      ['an empty string', () => ''],
      ['null', () => null],
      ['true', () => true],
      ['the right code after a space', (c) => ` ${c}`],
      ['the right code before a space', (c) => `${c} `],
      ['the right code before a newline', (c) => `${c}\n`],
      ['the right code in Extended Arabic-Indic (Persian) digits', (c) => inDigits(c, 0x06f0)],
      ['the right code in Devanagari digits', (c) => inDigits(c, 0x0966)],
      ['the right code in fullwidth digits', (c) => inDigits(c, 0xff10)],
      ['the right code in mathematical bold digits', (c) => inDigits(c, 0x1d7ce)],
      ["SQL: ' OR '1'='1", () => "' OR '1'='1"],
      ['SQL after the right code', (c) => `${c}' OR '1'='1`],
      ['SQL of six characters', () => "1'OR'1"],
      ['the LIKE wildcard %', () => '%'],
      ['six LIKE wildcards _', () => '______'],
      ['the right code with its last digit a _', (c) => `${c.slice(0, 5)}_`],
      ['the right code with its last digit a %', (c) => `${c.slice(0, 5)}%`],
      ['a hexadecimal number', () => '0x1E240'],
      ['an exponent', () => '1e5'],
      ['a signed number', (c) => `+${c.slice(1)}`],
      ['a decimal', (c) => `${c.slice(0, 3)}.${c.slice(3, 5)}`],
      ['10,000 digits', (c) => c.repeat(1_667).slice(0, 10_000)],
    ])('refuses %s with 400, using no attempt', async (_name, make) => {
      const { email, code } = await freshCode();
      await expectRefusedWithoutEffect(() =>
        post('/otp/verify', { destination: email, code: make(code) }),
      );
      // Nothing was used: the code still verifies, and with its first attempt.
      const ok = await post('/otp/verify', { destination: email, code });
      expect(ok.status).toBe(200);
      expect((await p.db.rowsFor(email))[0]?.attempts_used).toBe(1);
    });

    it('refuses a form-encoded body holding the right code', async () => {
      const { email, code } = await freshCode();
      await expectRefusedWithoutEffect(() =>
        p.http
          .post('/otp/verify')
          .type('form')
          .send(`destination=${encodeURIComponent(email)}&code=${code}`),
      );
      await expectRefusedWithoutEffect(() =>
        p.http
          .post('/otp/verify')
          .set('Content-Type', 'text/plain')
          .send(JSON.stringify({ destination: email, code })),
      );
    });

    it('ignores the code and destination in the query string', async () => {
      const { email, code } = await freshCode();
      await expectRefusedWithoutEffect(() =>
        p.http
          .post(`/otp/verify?destination=${encodeURIComponent(email)}&code=${code}`)
          .send({ destination: email }),
      );
    });
  });

  describe.each(['/otp/send', '/otp/verify'])('POST %s: destination and purpose', (route) => {
    const body = (fields: Record<string, unknown>): Record<string, unknown> =>
      route === '/otp/send' ? fields : { code: '123456', ...fields };

    // Not repeated here (test/errors.e2e-spec.ts): a number, an array, an object, null, a
    // boolean, NUL, a newline, a bell, RLM, RLO, a zero-width space, RLM in a phone, a
    // 10,000-character address, over 254 characters, no @, letters in a phone.
    it.each<[string, unknown]>([
      ['the object {"$ne": ""}', { $ne: '' }],
      ['the object {"$regex": ".*"}', { $regex: '.*' }],
      ["SQL: ' OR '1'='1", "' OR '1'='1"],
      ['SQL inside an address', "a' OR '1'='1@example.com"],
      ['a statement after an address', "x@example.com'; DROP TABLE otp_requests; --"],
      ['the LIKE wildcard %', '%'],
      ['the LIKE wildcard _', '_'],
      ['% on both sides of the @', '%@%'],
      ['a tab', 'user\t@example.com'],
      ['a DEL', 'user\u007f@example.com'],
      ['an ANSI escape', '\u001b[31muser@example.com'],
      ['a C1 control (NEL)', 'user\u0085@example.com'],
      ['a soft hyphen', 'us\u00ader@example.com'],
      ['a byte order mark', '\ufeffuser@example.com'],
      ['a left-to-right mark', 'user\u200e@example.com'],
      ['an Arabic letter mark', 'user\u061c@example.com'],
      ['right-to-left isolates', '\u2067user@example.com\u2069'],
      ['a right-to-left embedding in a phone', '+1 415\u202b 555 0123'],
      ['a tab in a phone', '+1\t415 555 0123'],
      ['a no-break space inside an address', 'user\u00a0name@example.com'],
      ['a line separator inside an address', 'user\u2028name@example.com'],
      [
        'Arabic-Indic digits in a phone',
        '+\u0661 \u0664\u0661\u0665 \u0665\u0665\u0665 \u0660\u0661\u0662\u0663',
      ],
      [
        'fullwidth digits in a phone',
        '\uff0b\uff11 \uff14\uff11\uff15 \uff15\uff15\uff15 \uff10\uff11\uff12\uff13',
      ],
      ['10,000 digits', `+1${'4'.repeat(9_998)}`],
      ['10,000 characters and no @', 'a'.repeat(10_000)],
      ['10,000 spaces', ' '.repeat(10_000)],
    ])('refuses a destination with %s', async (_name, destination) => {
      await expectRefusedWithoutEffect(() => post(route, body({ destination })));
    });

    // Not repeated here: uppercase, a leading digit, 65 characters, a space, empty, a number.
    it.each<[string, unknown]>([
      ['SQL', "login' OR '1'='1"],
      ['the LIKE wildcard %', '%'],
      ['a trailing %', 'login%'],
      ['the LIKE wildcard _', '_'],
      ['the object {"$ne": ""}', { $ne: '' }],
      ['an array', ['login']],
      ['a NUL', 'login\u0000'],
      ['a trailing newline', 'login\n'],
      ['a right-to-left override', 'login\u202e'],
      ['an Arabic-Indic digit', 'login\u0661'],
      ['10,000 characters', 'a'.repeat(10_000)],
    ])('refuses a purpose with %s', async (_name, purpose) => {
      await expectRefusedWithoutEffect(() =>
        post(route, body({ destination: uniqueEmail(), purpose })),
      );
    });
  });

  describe('LIKE wildcards that are valid input', () => {
    it('never lets a wildcard address or purpose reach another code', async () => {
      const { email, code } = await freshCode();
      const local = email.slice(0, email.indexOf('@'));
      const wildcards = [
        `${local.slice(0, -3)}___@example.com`,
        `${local.slice(0, 10)}%@example.com`,
        '%@example.com',
      ];
      for (const destination of wildcards) {
        // Valid addresses (RFC 5322 allows % and _), so the answer is "no code here".
        expectError(await post('/otp/verify', { destination, code }), 410, 'OTP_EXPIRED');
      }
      expectError(
        await post('/otp/verify', { destination: email, code, purpose: 'log_n' }),
        410,
        'OTP_EXPIRED',
      );
      // A send to a wildcard address is its own destination: it supersedes nothing of the real one.
      const other = await post('/otp/send', { destination: wildcards[0] });
      expect(other.status).toBe(202);
      const [row] = await p.db.rowsFor(email);
      expect(row).toMatchObject({ attempts_used: 0, superseded_at: null, verified_at: null });
      expect((await post('/otp/verify', { destination: email, code })).status).toBe(200);
    });
  });

  describe('prototype pollution', () => {
    it.each([
      ['__proto__', '{"__proto__": {"verified": true}}'],
      ['constructor.prototype', '{"constructor": {"prototype": {"verified": true}}}'],
    ])('refuses a body with %s and pollutes nothing', async (_name, extra) => {
      const { email, code } = await freshCode();
      const raw = `{"destination": ${JSON.stringify(email)}, "code": "${code}", ${extra.slice(1, -1)}}`;
      await expectRefusedWithoutEffect(() =>
        p.http.post('/otp/verify').set('Content-Type', 'application/json').send(raw),
      );
      expect(({} as Record<string, unknown>).verified).toBeUndefined();
      expect((await post('/otp/verify', { destination: email, code })).status).toBe(200);
    });
  });

  describe('response manipulation', () => {
    it.each<[string, Record<string, unknown>]>([
      ['"verified": true', { verified: true }],
      ['"attemptsUsed": 0', { attemptsUsed: 0 }],
      ['"attemptsRemaining": 99', { attemptsRemaining: 99 }],
      ['"status": "verified"', { status: 'verified' }],
      ['"verificationToken"', { verificationToken: 'A'.repeat(43) }],
      ['"tokenHash"', { tokenHash: hashVerificationToken('A'.repeat(43)) }],
      ['"verifiedAt"', { verifiedAt: new Date().toISOString() }],
      ['"requestId"', { requestId: randomUUID() }],
    ])('POST /otp/verify refuses %s next to a wrong code', async (_name, claim) => {
      const { email, code } = await freshCode();
      const wrong = wrongCodes(code, 1)[0] as string;
      await expectRefusedWithoutEffect(() =>
        post('/otp/verify', { destination: email, code: wrong, ...claim }),
      );
      // Even next to the right code the claim is refused, and no token is issued.
      await expectRefusedWithoutEffect(() =>
        post('/otp/verify', { destination: email, code, ...claim }),
      );
      expect((await p.db.rowsFor(email))[0]).toMatchObject({
        attempts_used: 0,
        verified_at: null,
        token_hash: null,
      });
    });

    it.each<[string, Record<string, unknown>]>([
      ['"code": "123456" (a code of its choosing)', { code: '123456' }],
      ['"verified": true', { verified: true }],
      ['"status": "verified"', { status: 'verified' }],
      ['"attemptsAllowed": 1000', { attemptsAllowed: 1000 }],
      ['"codeLength": 4', { codeLength: 4 }],
      ['"expiresAt" next year', { expiresAt: new Date(Date.now() + 31_536_000_000).toISOString() }],
      ['"resendAvailableAt" now', { resendAvailableAt: new Date().toISOString() }],
    ])('POST /otp/send refuses %s', async (_name, claim) => {
      await expectRefusedWithoutEffect(() =>
        post('/otp/send', { destination: uniqueEmail(), ...claim }),
      );
    });

    it('issues a token only for a code verified server-side, and only once', async () => {
      const { email, code } = await freshCode();
      const ok = await post('/otp/verify', { destination: email, code });
      expect(ok.status).toBe(200);
      const rows = await p.db.rowsFor(email);
      expect(rows).toHaveLength(1);
      expect(rows[0]?.token_hash).toBe(hashVerificationToken(ok.body.verificationToken as string));
      // A token the server never issued does not pass the guard.
      const forged = await p.http.post('/example/protected').set('X-OTP-Token', 'A'.repeat(43));
      expectError(forged, 401, 'OTP_TOKEN_INVALID');
    });
  });

  describe('fuzzing (fast-check)', () => {
    const SEED = 20_260_404;
    const NUM_RUNS = 250;
    let pool: FuzzPool;
    beforeAll(async () => {
      pool = await seedFuzzPool(p, randomUUID().slice(0, 8));
    });

    it.each(FUZZ_ROUTES)(
      `%s: ${NUM_RUNS} random requests, no 500, refusals change nothing`,
      async (route) => {
        await fuzzAndReport(p, pool, route, { seed: SEED, numRuns: NUM_RUNS });
      },
    );
  });

  it('leaves no token without a server-side verification, in this suite or the whole run', async () => {
    const orphans = `SELECT count(*) FILTER (WHERE token_hash IS NOT NULL AND verified_at IS NULL)::int
        AS "tokenWithoutVerify",
      count(*) FILTER (WHERE token_used_at IS NOT NULL AND token_hash IS NULL)::int AS "usedWithoutToken",
      count(*) FILTER (WHERE token_hash IS NOT NULL)::int AS tokens
      FROM otp_requests`;
    const shared = new AttackDb();
    try {
      for (const db of [p.db, shared]) {
        const [counts] = await db.query<Record<string, number>>(orphans);
        expect(counts?.tokens).toBeGreaterThan(0);
        expect(counts).toMatchObject({ tokenWithoutVerify: 0, usedWithoutToken: 0 });
      }
    } finally {
      await shared.end();
    }
  });
});
