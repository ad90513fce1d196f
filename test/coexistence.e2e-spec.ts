import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import type { Response } from 'supertest';
import { expectError } from './support/contract.js';
import { type CoexistenceHost, startCoexistenceHost } from './support/coexistence-host.js';
import { PLATFORMS, rowsFor, uniqueEmail } from './support/test-app.js';

/** The host's envelope: `{ error: { status, message } }`, and nothing of the contract's shape. */
function expectHostError(res: Response, status: number, message?: RegExp): void {
  expect({ status: res.status, body: res.body as unknown }).toMatchObject({
    status,
    body: { error: { status } },
  });
  expect(Object.keys(res.body as object)).toEqual(['error']);
  if (message) {
    const text: unknown = res.body.error.message;
    expect(Array.isArray(text) ? text.join('; ') : String(text)).toMatch(message);
  }
}

const KIB = 1024;
const MALFORMED = '{"destination": "a@example.com",';

// Express only (so are the body-parser and prefix blocks below): these are the host's Express
// habits (body-parser's 100 KiB limit and urlencoded forms, case-insensitive routes); the OTP
// routes' side of them runs on both platforms in test/platforms.e2e-spec.ts.
describe('the OTP routes inside a host app', () => {
  let host: CoexistenceHost;
  beforeAll(async () => {
    host = await startCoexistenceHost();
  });
  afterAll(async () => {
    await host?.close();
  });

  const sendCode = async (destination: string): Promise<string> => {
    const res = await host.http.post('/otp/send').send({ destination });
    expect({ status: res.status, body: res.body as unknown }).toMatchObject({ status: 202 });
    return host.provider.lastCode(destination);
  };

  const attemptsUsed = async (destination: string): Promise<unknown[]> =>
    (await rowsFor(destination)).map((r) => r.attempts_used);

  it.each([
    ['111111', (_code: string): unknown => 111111],
    ['the right code as a number', (code: string): unknown => Number(code)],
    ['the right code in an array', (code: string): unknown => [code]],
  ])('POST /otp/verify: a code given as %s is a 400 that uses no attempt', async (_name, shape) => {
    const email = uniqueEmail();
    const code = await sendCode(email);
    const res = await host.http.post('/otp/verify').send({ destination: email, code: shape(code) });
    expectError(res, 400, 'VALIDATION_FAILED');
    expect(await attemptsUsed(email)).toEqual([0]);

    const ok = await host.http.post('/otp/verify').send({ destination: email, code });
    expect({ status: ok.status, body: ok.body as unknown }).toMatchObject({
      status: 200,
      body: { verified: true },
    });
  });

  it('POST /otp/send: an unknown field is a 400 naming it, and nothing is stored', async () => {
    const email = uniqueEmail();
    const res = await host.http.post('/otp/send').send({ destination: email, foo: 'bar' });
    expectError(res, 400, 'VALIDATION_FAILED');
    expect(([] as unknown[]).concat(res.body.message)).toContain('property foo should not exist');
    expect(await rowsFor(email)).toHaveLength(0);
    expect(host.provider.lastMessage(email)).toBeUndefined();
  });

  const contract400 = (res: Response): void => expectError(res, 400, 'VALIDATION_FAILED');
  it.each([
    ['POST /otp/send: malformed JSON', '/otp/send', {}, contract400],
    // Express matches routes case-insensitively: the OTP controller serves /OTP/send too.
    ['POST /OTP/send: malformed JSON', '/OTP/send', {}, contract400],
    [
      'POST /otp/send: a corrupt gzip body',
      '/otp/send',
      { 'Content-Encoding': 'gzip' },
      contract400,
    ],
    [
      'POST /host/items (the host’s route): malformed JSON',
      '/host/items',
      {},
      (res: Response) => expectHostError(res, 400),
    ],
  ])('%s answers a 400 in that route’s own shape', async (_name, path, headers, check) => {
    const res = await host.http
      .post(path)
      .set({ 'Content-Type': 'application/json', ...headers })
      .send(MALFORMED);
    check(res);
  });

  describe('body size', () => {
    it.each([
      ['20 KiB (over the module’s 16 KiB, under the host parser’s 100 KiB)', 20 * KIB],
      ['120 KiB (over the host parser’s 100 KiB)', 120 * KIB],
    ])('POST /otp/send: a body of %s is a 413 PAYLOAD_TOO_LARGE', async (_name, size) => {
      const email = uniqueEmail();
      const res = await host.http
        .post('/otp/send')
        .send({ destination: email, padding: 'x'.repeat(size) });
      expectError(res, 413, 'PAYLOAD_TOO_LARGE');
      expect(await rowsFor(email)).toHaveLength(0);
    });

    it('POST /host/items: 20 KiB is the host’s to accept, 120 KiB is a 413 in the host’s envelope', async () => {
      const accepted = await host.http
        .post('/host/items')
        .send({ name: 'x'.repeat(20 * KIB), quantity: 1 });
      expect(accepted.status).toBe(201);
      expect(accepted.body.name).toHaveLength(20 * KIB);

      const refused = await host.http
        .post('/host/items')
        .send({ name: 'x'.repeat(120 * KIB), quantity: 1 });
      expectHostError(refused, 413);
    });
  });

  it('POST /otp/verify: a form-encoded body with the right code is a 400 that uses no attempt', async () => {
    const email = uniqueEmail();
    const code = await sendCode(email);
    const res = await host.http.post('/otp/verify').type('form').send({ destination: email, code });
    expectError(res, 400, 'VALIDATION_FAILED');
    expect(await attemptsUsed(email)).toEqual([0]);

    const ok = await host.http.post('/otp/verify').send({ destination: email, code });
    expect({ status: ok.status, body: ok.body as unknown }).toMatchObject({
      status: 200,
      body: { verified: true },
    });
  });

  it('POST /host/form: the host’s own urlencoded route still works', async () => {
    const res = await host.http.post('/host/form').type('form').send({ title: 'hello' });
    expect({ status: res.status, body: res.body as unknown }).toEqual({
      status: 201,
      body: { title: 'hello' },
    });
  });

  it.each([
    [
      'implicit conversion on the host’s DTO ("3" → 3)',
      { name: 'a', quantity: '3' },
      (res: Response) =>
        expect({ status: res.status, body: res.body as unknown }).toEqual({
          status: 201,
          body: { name: 'a', quantity: 3, quantityType: 'number' },
        }),
    ],
    [
      'a wrong type',
      { name: 'a', quantity: 'many' },
      (res: Response) => expectHostError(res, 400, /quantity must be an integer number/),
    ],
    [
      'an unknown field',
      { name: 'a', quantity: 1, foo: 'bar' },
      (res: Response) => expectHostError(res, 400, /property foo should not exist/),
    ],
  ])('POST /host/items: %s keeps the host’s pipe and envelope', async (_name, body, check) => {
    check(await host.http.post('/host/items').send(body));
  });

  it.each([['/nope'], ['/otp/nope']])(
    'GET %s: an unknown route is the host’s 404 in the host’s envelope',
    async (path) => {
      expectHostError(await host.http.get(path), 404, /Cannot GET/);
    },
  );
});

describe.each(PLATFORMS)('@RequireOtp in a host app with its own filter, on %s', (platform) => {
  let host: CoexistenceHost;
  beforeAll(async () => {
    host = await startCoexistenceHost({ platform });
  });
  afterAll(async () => {
    await host?.close();
  });

  it('POST /host/protected (@RequireOtp): passes with a fresh token, once; 401 OTP_TOKEN_INVALID without', async () => {
    const email = uniqueEmail();
    const sent = await host.http.post('/otp/send').send({ destination: email });
    expect(sent.status).toBe(202);
    const code = host.provider.lastCode(email);
    const verified = await host.http.post('/otp/verify').send({ destination: email, code });
    expect(verified.status).toBe(200);
    const token = verified.body.verificationToken as string;

    expectError(await host.http.post('/host/protected'), 401, 'OTP_TOKEN_INVALID');
    const ok = await host.http.post('/host/protected').set('X-OTP-Token', token);
    expect({ status: ok.status, body: ok.body as unknown }).toEqual({
      status: 201,
      body: { ok: true, destination: email },
    });
    expectError(
      await host.http.post('/host/protected').set('X-OTP-Token', token),
      401,
      'OTP_TOKEN_INVALID',
    );
  });
});

describe.each(PLATFORMS)('the OTP routes in a host app on %s: per-IP throttling', (platform) => {
  it.each([
    {
      who: 'the host’s global ThrottlerGuard',
      hostThrottleLimit: 3,
      throttleLimit: 10_000,
      // The host's limit applies to its own routes too, in its own envelope.
      hostRouteAfter: (res: Response) => expectHostError(res, 429),
    },
    {
      who: 'the module’s own throttleLimit',
      hostThrottleLimit: 10_000,
      throttleLimit: 3,
      // The module's budget is the OTP routes' only.
      hostRouteAfter: (res: Response) => expect(res.status).toBe(200),
    },
  ])(
    'GET /otp/requests/:id: $who tripping is a 429 RATE_LIMITED with Retry-After',
    async ({ hostThrottleLimit, throttleLimit, hostRouteAfter }) => {
      const host = await startCoexistenceHost({
        hostThrottleLimit,
        otp: { throttleLimit },
        platform,
      });
      try {
        for (let i = 0; i < 3; i += 1) {
          const res = await host.http.get(`/otp/requests/${randomUUID()}`);
          expectError(res, 404, 'OTP_REQUEST_NOT_FOUND');
        }
        const limited = await host.http.get(`/otp/requests/${randomUUID()}`);
        expectError(limited, 429, 'RATE_LIMITED');
        expect(limited.body.retryAfter).toBeGreaterThanOrEqual(1);
        expect(limited.headers['retry-after']).toBe(String(limited.body.retryAfter));

        for (let i = 0; i < 3; i += 1) expect((await host.http.get('/host/ping')).status).toBe(200);
        hostRouteAfter(await host.http.get('/host/ping'));
      } finally {
        await host.close();
      }
    },
  );
});

describe('the OTP routes inside a host app without a body parser (bodyParser: false)', () => {
  let host: CoexistenceHost;
  beforeAll(async () => {
    host = await startCoexistenceHost({ bodyParser: false });
  });
  afterAll(async () => {
    await host?.close();
  });

  it('POST /otp/send and /otp/verify: the module reads the JSON itself', async () => {
    const email = uniqueEmail();
    const sent = await host.http.post('/otp/send').send({ destination: email });
    expect({ status: sent.status, body: sent.body as unknown }).toMatchObject({
      status: 202,
      body: { channel: 'email', purpose: 'login' },
    });
    const code = host.provider.lastCode(email);
    const ok = await host.http.post('/otp/verify').send({ destination: email, code });
    expect({ status: ok.status, body: ok.body as unknown }).toMatchObject({
      status: 200,
      body: { verified: true },
    });
  });

  it.each([
    ['malformed JSON', 400, 'VALIDATION_FAILED', MALFORMED],
    [
      'a body over 16 KiB',
      413,
      'PAYLOAD_TOO_LARGE',
      JSON.stringify({ destination: 'a@example.com', padding: 'x'.repeat(20 * KIB) }),
    ],
  ])('POST /otp/send: %s is a %i %s', async (_name, status, code, body) => {
    const res = await host.http
      .post('/otp/send')
      .set('Content-Type', 'application/json')
      .send(body);
    expectError(res, status, code);
  });
});

describe('the OTP routes inside a host app with a global prefix and a routePrefix', () => {
  let host: CoexistenceHost;
  beforeAll(async () => {
    host = await startCoexistenceHost({ globalPrefix: 'api', routePrefix: 'auth/otp' });
  });
  afterAll(async () => {
    await host?.close();
  });

  it('POST /api/auth/otp/send: 202', async () => {
    const email = uniqueEmail();
    const res = await host.http.post('/api/auth/otp/send').send({ destination: email });
    expect(res.status).toBe(202);
    expect(host.provider.lastCode(email)).toMatch(/^[0-9]{6}$/);
  });

  it.each([
    ['malformed JSON', 400, 'VALIDATION_FAILED', MALFORMED],
    [
      'a body over the host parser’s 100 KiB',
      413,
      'PAYLOAD_TOO_LARGE',
      JSON.stringify({ destination: 'a@example.com', padding: 'x'.repeat(120 * KIB) }),
    ],
  ])('POST /api/auth/otp/send: %s is the contract’s %i %s', async (_name, status, code, body) => {
    const res = await host.http
      .post('/api/auth/otp/send')
      .set('Content-Type', 'application/json')
      .send(body);
    expectError(res, status, code);
  });

  it('POST /api/host/items: malformed JSON on the host’s route is the host’s 400', async () => {
    const res = await host.http
      .post('/api/host/items')
      .set('Content-Type', 'application/json')
      .send(MALFORMED);
    expectHostError(res, 400);
  });
});
