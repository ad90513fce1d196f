import { expect } from '@jest/globals';
import fc from 'fast-check';
import type { Response } from 'supertest';
import { report, type PrivateApp, type TableFingerprint } from './attack-kit.js';
import { outcome, showCounts } from './races.js';

/**
 * Property-based fuzzing of every route, shared by the quick run in
 * test/attacks.e2e-spec.ts and the long one in test/attack/fuzz.attack-spec.ts. Each run sends one
 * random request and checks: never a 500, every error in the contract's shape, and the tables
 * unchanged by every refused request. The one refusal that may write is a guess the server
 * evaluated (401, or the 429 of the last attempt): it may use exactly one attempt and change nothing
 * else.
 */

export type FuzzRoute =
  'POST /otp/send' | 'POST /otp/verify' | 'GET /otp/requests/:id' | 'POST /example/protected';

export const FUZZ_ROUTES: readonly FuzzRoute[] = [
  'POST /otp/send',
  'POST /otp/verify',
  'GET /otp/requests/:id',
  'POST /example/protected',
];

/** Destinations, requests and tokens that exist, so random requests also reach the deep paths. */
export interface FuzzPool {
  /** Spellings of destinations with an active code when the run starts. */
  spellings: string[];
  requestIds: string[];
  /** Tokens already used once: every later use must be refused. */
  usedTokens: string[];
  /** A pool destination with its newest code (read when the run is generated): a right guess. */
  rightGuess: fc.Arbitrary<{ destination: string; code: string }>;
}

/** Sends codes to a few destinations, verifies and uses one token, and returns what it made. */
export async function seedFuzzPool(t: PrivateApp, tag: string): Promise<FuzzPool> {
  const emails = [1, 2, 3, 4].map((i) => `fuzz-${tag}-${i}@example.com`);
  const phones = ['+14155550142', '+14155550143'];
  const pool: FuzzPool = {
    spellings: [],
    requestIds: [],
    usedTokens: [],
    rightGuess: fc
      .constantFrom(...emails, ...phones)
      .map((destination) => ({ destination, code: t.provider.lastCode(destination) })),
  };
  for (const destination of [...emails, ...phones]) {
    const res = await t.http.post('/otp/send').send({ destination });
    expect(res.status).toBe(202);
    pool.requestIds.push(res.body.requestId as string);
  }
  pool.spellings.push(
    ...emails,
    ...emails.map((e) => `  ${e.toUpperCase()} `),
    ...phones,
    '(415) 555-0142',
    '+1 415 555 0143',
  );
  const used = emails[0] as string;
  const verified = await t.http
    .post('/otp/verify')
    .send({ destination: used, code: t.provider.lastCode(used) });
  expect(verified.status).toBe(200);
  const token = verified.body.verificationToken as string;
  expect((await t.http.post('/example/protected').set('X-OTP-Token', token)).status).toBe(200);
  pool.usedTokens.push(token);
  return pool;
}

const JSON_VALUE = fc.jsonValue({ maxDepth: 3 });

/** Strings chosen to trip a careless parser, a query builder or a normalizer. */
const NASTY = fc.constantFrom(
  '',
  ' ',
  '%',
  '_',
  '%%',
  '\\',
  "' OR '1'='1",
  "'; DROP TABLE otp_requests; --",
  '{"$ne":""}',
  '\u0000',
  '\u202e',
  '\u200f',
  '\ufeff',
  // Half of a surrogate pair, alone and in an address (validator.js's isEmail threw on it: a 500).
  '\ud800',
  'us\udc00er@example.com',
  '١٢٣٤٥٦',
  '１２３４５６',
  'null',
  'undefined',
  'NaN',
  '__proto__',
  'constructor',
  '0x1E240',
  '1e5',
  '-12345',
  ' 123456',
  '123456 ',
  '12 3456',
);

const ANY_STRING = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary-ascii', maxLength: 40 }),
  NASTY,
);

/** Keys an attacker may add to claim a result, and random ones. */
const EXTRA_KEYS = fc.dictionary(
  fc.oneof(
    fc.constantFrom(
      'verified',
      'status',
      'attemptsUsed',
      'attemptsRemaining',
      'verificationToken',
      'tokenHash',
      'requestId',
      'expiresAt',
      '__proto__',
      'constructor',
      'prototype',
    ),
    fc.string(),
  ),
  JSON_VALUE,
  { minKeys: 1, maxKeys: 2 },
);

/** Mostly absent, sometimes a claim or a random key: extra keys must always be refused. */
const MAYBE_EXTRA_KEYS = fc.oneof(
  { weight: 4, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: EXTRA_KEYS },
);

/** A JSON body as the wire carries it: near-valid objects, random documents, broken text. */
function rawBody(nearValid: fc.Arbitrary<Record<string, unknown>>): fc.Arbitrary<string> {
  const withExtras = fc
    .tuple(nearValid, MAYBE_EXTRA_KEYS)
    .map(([body, extra]) => (extra ? { ...body, ...extra } : body));
  return fc.oneof(
    { weight: 12, arbitrary: withExtras.map((body) => JSON.stringify(body)) },
    { weight: 1, arbitrary: fc.anything().map((value) => JSON.stringify(value) ?? '') },
    { weight: 1, arbitrary: fc.object().map((value) => JSON.stringify(value)) },
    { weight: 1, arbitrary: fc.json() },
    { weight: 1, arbitrary: fc.string() },
  );
}

/** An optional field: absent half the time, else mostly valid, sometimes anything. */
const optional = (valid: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.constant(undefined) },
    { weight: 4, arbitrary: valid },
    { weight: 1, arbitrary: fc.oneof(ANY_STRING, JSON_VALUE) },
  );

const PURPOSE = optional(
  fc.oneof(
    fc.constantFrom('login', 'reset', 'log_n', 'Login', 'log%', 'login '),
    fc.stringMatching(/^[a-z][a-z0-9_.-]{0,70}$/),
  ),
);

/** Drops the keys whose value is undefined (JSON would drop them anyway). */
const defined = (body: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(body).filter(([, value]) => value !== undefined));

function sendBodies(pool: FuzzPool): fc.Arbitrary<string> {
  const destination = fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(...pool.spellings) },
    { weight: 2, arbitrary: fc.emailAddress() },
    { weight: 1, arbitrary: fc.stringMatching(/^\+?[0-9 ().-]{4,20}$/) },
    { weight: 2, arbitrary: ANY_STRING },
    { weight: 1, arbitrary: JSON_VALUE },
  );
  const channel = optional(fc.constantFrom('sms', 'voice', 'email', 'fax', 'SMS'));
  return rawBody(fc.record({ destination, channel, purpose: PURPOSE }).map(defined));
}

function verifyBodies(pool: FuzzPool): fc.Arbitrary<string> {
  const destination = fc.oneof(
    { weight: 10, arbitrary: fc.constantFrom(...pool.spellings) },
    { weight: 2, arbitrary: ANY_STRING },
    { weight: 1, arbitrary: JSON_VALUE },
  );
  const code = fc.oneof(
    { weight: 10, arbitrary: fc.stringMatching(/^[0-9]{6}$/) },
    { weight: 1, arbitrary: fc.stringMatching(/^[0-9]{1,12}$/) },
    { weight: 1, arbitrary: fc.integer() },
    { weight: 2, arbitrary: ANY_STRING },
    { weight: 1, arbitrary: JSON_VALUE },
  );
  const guesses = fc.oneof(
    { weight: 6, arbitrary: fc.record({ destination, code, purpose: PURPOSE }).map(defined) },
    { weight: 1, arbitrary: pool.rightGuess },
  );
  return rawBody(guesses);
}

function requestIds(pool: FuzzPool): fc.Arbitrary<string> {
  return fc.oneof(
    fc.uuid(),
    fc.uuid().map((id) => id.toUpperCase()),
    fc.constantFrom(...pool.requestIds),
    fc.constantFrom(...pool.requestIds).map((id) => id.toUpperCase()),
    fc.constantFrom(...pool.requestIds).map((id) => `${id}'--`),
    fc.stringMatching(/^[0-9a-fA-F-]{30,40}$/),
    fc.string(),
    fc.string({ unit: 'grapheme', maxLength: 40 }),
    fc.string({ unit: 'binary-ascii', maxLength: 40 }),
    NASTY,
  );
}

function tokens(pool: FuzzPool): fc.Arbitrary<string | undefined> {
  const used = fc.constantFrom(...pool.usedTokens);
  return fc.oneof(
    fc.constant(undefined),
    fc.string(),
    fc.stringMatching(/^[A-Za-z0-9_-]{43}$/),
    fc.base64String({ maxLength: 64 }),
    used,
    used.map((token) => token.toUpperCase()),
    used.map((token) => `${token.slice(0, 42)}%`),
    used.map((token) => `${token}=`),
  );
}

/** The contract's error shape: `{ statusCode, code, message, ... }`, statusCode = HTTP status. */
function expectContractError(res: Response): void {
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(res.body.statusCode).toBe(res.status);
  expect(typeof res.body.code).toBe('string');
  const message: unknown = res.body.message;
  expect(typeof message === 'string' || Array.isArray(message)).toBe(true);
}

/**
 * Checks what a request may have changed. `before`/`after` are fingerprints of a table no one else
 * writes.
 */
function expectTableEffect(
  route: FuzzRoute,
  res: Response,
  before: TableFingerprint,
  after: TableFingerprint,
): void {
  const key = outcome(res);
  const wrote =
    (route === 'POST /otp/send' && res.status === 202) ||
    (route === 'POST /otp/verify' && res.status === 200) ||
    (route === 'POST /example/protected' && res.status === 200);
  if (wrote) return;
  if (
    route === 'POST /otp/verify' &&
    (key === '401 OTP_INVALID' || key === '429 OTP_ATTEMPTS_EXCEEDED')
  ) {
    // A guess the server evaluated: one attempt used (none for a code already exhausted).
    expect(after.rows).toBe(before.rows);
    expect(after.digestBesidesAttempts).toBe(before.digestBesidesAttempts);
    expect(after.destinations).toBe(before.destinations);
    const used = after.attemptsUsed - before.attemptsUsed;
    expect(key === '401 OTP_INVALID' ? [1] : [0, 1]).toContain(used);
    return;
  }
  expect({ outcome: key, table: after }).toEqual({ outcome: key, table: before });
}

/** Which outcomes each route may ever answer to a random request. */
const ALLOWED: Record<FuzzRoute, RegExp> = {
  'POST /otp/send':
    /^(202|400 VALIDATION_FAILED|400 OTP_DESTINATION_NOT_ALLOWED|413 PAYLOAD_TOO_LARGE|422 IDEMPOTENCY_KEY_REUSED|429 OTP_(RESEND_COOLDOWN|LOCKED|SEND_LIMIT))$/,
  'POST /otp/verify':
    /^(200|400 VALIDATION_FAILED|401 OTP_INVALID|410 OTP_EXPIRED|413 PAYLOAD_TOO_LARGE|429 OTP_ATTEMPTS_EXCEEDED)$/,
  'GET /otp/requests/:id': /^(200|404 OTP_REQUEST_NOT_FOUND|404 NOT_FOUND)$/,
  'POST /example/protected':
    /^(400 VALIDATION_FAILED|401 OTP_TOKEN_INVALID|413 PAYLOAD_TOO_LARGE)$/,
};

/** The 200 of GET /otp/requests/:requestId, as docs/http-contract.md lists it. */
const STATUS_KEYS = [
  'attemptsAllowed',
  'attemptsRemaining',
  'channel',
  'codeLength',
  'deliveries',
  'destination',
  'expiresAt',
  'purpose',
  'requestId',
  'resendAvailableAt',
  'status',
  'ttlSeconds',
];

/** One random request to `route`, as fast-check generates it. */
type FuzzInput = { body: string; header?: string; id?: string };

function inputs(route: FuzzRoute, pool: FuzzPool): fc.Arbitrary<FuzzInput> {
  switch (route) {
    case 'POST /otp/send':
      return fc
        .tuple(
          sendBodies(pool),
          fc.oneof(
            { weight: 4, arbitrary: fc.constant(undefined) },
            { weight: 2, arbitrary: fc.string({ minLength: 1, maxLength: 20 }) },
            { weight: 1, arbitrary: fc.string({ maxLength: 260 }) },
          ),
        )
        .map(([body, header]) => ({ body, header }));
    case 'POST /otp/verify':
      return verifyBodies(pool).map((body) => ({ body }));
    case 'GET /otp/requests/:id':
      return requestIds(pool).map((id) => ({ body: '', id }));
    case 'POST /example/protected':
      return fc
        .tuple(rawBody(fc.dictionary(fc.string(), JSON_VALUE)), tokens(pool))
        .map(([body, header]) => ({ body, header }));
  }
}

/**
 * `value` percent-encoded for a path as fetch and browsers encode it: the WHATWG URL encoder writes
 * half of a surrogate pair as U+FFFD, where encodeURIComponent would throw.
 */
function pathSegment(value: string): string {
  return encodeURIComponent(value.replace(/\p{Cs}/gu, '\ufffd'));
}

function request(t: PrivateApp, route: FuzzRoute, input: FuzzInput): PromiseLike<Response> {
  switch (route) {
    case 'GET /otp/requests/:id':
      return t.http.get(`/otp/requests/${pathSegment(input.id ?? '')}`);
    case 'POST /example/protected': {
      const req = t.http.post('/example/protected').set('Content-Type', 'application/json');
      if (input.header !== undefined) req.set('X-OTP-Token', input.header);
      return req.send(input.body);
    }
    default: {
      const path = route === 'POST /otp/send' ? '/otp/send' : '/otp/verify';
      const req = t.http.post(path).set('Content-Type', 'application/json');
      if (input.header !== undefined) req.set('Idempotency-Key', input.header);
      return req.send(input.body);
    }
  }
}

/**
 * Whether the host's own JSON parser takes a body, for the host's route: on Express body-parser's
 * strict JSON (empty, or an object or array that parses); on Fastify any JSON document but an empty
 * one, and none with a `__proto__` key or a `constructor` holding a `prototype` key
 * (secure-json-parse's defaults).
 */
function hostParserAccepts(platform: PrivateApp['platform'], body: string): boolean {
  if (platform === 'fastify') {
    if (body === '') return false;
    try {
      return !poisoned(JSON.parse(body));
    } catch {
      return false;
    }
  }
  const first = /^[\x20\x09\x0a\x0d]*([^\x20\x09\x0a\x0d])/.exec(body)?.[1];
  if (first === undefined) return true;
  if (first !== '{' && first !== '[') return false;
  try {
    JSON.parse(body);
    return true;
  } catch {
    return false;
  }
}

/** A parsed document with a key secure-json-parse refuses, at any depth. */
function poisoned(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (Object.prototype.hasOwnProperty.call(value, '__proto__')) return true;
  const ctor: unknown = (value as Record<string, unknown>).constructor;
  if (
    Object.prototype.hasOwnProperty.call(value, 'constructor') &&
    typeof ctor === 'object' &&
    ctor !== null &&
    Object.prototype.hasOwnProperty.call(ctor, 'prototype')
  ) {
    return true;
  }
  return Object.values(value).some(poisoned);
}

function answeredByHost(t: PrivateApp, route: FuzzRoute, input: FuzzInput): boolean {
  if (route === 'GET /otp/requests/:id') return input.id === '';
  if (route === 'POST /example/protected') return !hostParserAccepts(t.platform, input.body);
  return false;
}

export interface FuzzResult {
  numRuns: number;
  outcomes: Record<string, number>;
}

/**
 * Fuzzes one route with `numRuns` random requests from a fixed `seed`, and returns how often each
 * outcome came back. The seed fixes every request's shape; the codes themselves come from a CSPRNG,
 * so which guesses are right, and the outcomes that follow, may differ slightly between runs.
 */
export async function fuzzRoute(
  t: PrivateApp,
  pool: FuzzPool,
  route: FuzzRoute,
  options: { seed: number; numRuns: number },
): Promise<FuzzResult> {
  const outcomes: Record<string, number> = {};
  await fc.assert(
    fc.asyncProperty(inputs(route, pool), async (input) => {
      const before = await t.db.fingerprint();
      const res = await request(t, route, input);
      const key = outcome(res);
      outcomes[key] = (outcomes[key] ?? 0) + 1;
      expect({ outcome: key, status: res.status }).not.toMatchObject({ status: 500 });
      if (answeredByHost(t, route, input)) {
        // Not an OTP route (no id), or the host's own route refusing a body its parser could not
        // read: the host's error, which the module leaves alone.
        // (Nest's own body: `error` with it on Express, not for Fastify's parser errors.)
        expect(res.body).toMatchObject({ statusCode: res.status, message: expect.any(String) });
        expect(res.body.code).toBeUndefined();
      } else {
        expect(key).toMatch(ALLOWED[route]);
        if (res.status >= 400) expectContractError(res);
      }
      if (route === 'GET /otp/requests/:id' && res.status === 200) {
        // Never the code, its hash, or a token.
        expect(Object.keys(res.body as object).sort()).toEqual(STATUS_KEYS);
      }
      expectTableEffect(route, res, before, await t.db.fingerprint());
    }),
    { seed: options.seed, numRuns: options.numRuns, endOnFailure: true },
  );
  return { numRuns: options.numRuns, outcomes };
}

/**
 * The whole fuzz test of one route, shared by the quick and the long run: fuzzes it, prints the
 * answers it saw as an `[attack]` line, and checks that every run was answered.
 */
export async function fuzzAndReport(
  t: PrivateApp,
  pool: FuzzPool,
  route: FuzzRoute,
  options: { seed: number; numRuns: number },
): Promise<void> {
  const result = await fuzzRoute(t, pool, route, options);
  report(
    `fuzz, ${route}: numRuns ${result.numRuns}, seed ${options.seed}; ` +
      `answers: ${showCounts(result.outcomes)}`,
  );
  expect(Object.values(result.outcomes).reduce((a, b) => a + b, 0)).toBe(options.numRuns);
}
