import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { type AddressInfo } from 'node:net';
import { request as httpRequest, type Server } from 'node:http';
import type { Response } from 'supertest';
import { expectError } from './support/contract.js';
import { type PlatformApp, PLATFORMS, startPlatformApp } from './support/platform-app.js';
import { rowsFor, uniqueEmail } from './support/test-app.js';

const KIB = 1024;
const MALFORMED = '{"destination": "a@example.com",';

/** POSTs JSON with `Transfer-Encoding: chunked` (no Content-Length), which supertest never does. */
async function postChunked(
  server: Server,
  path: string,
  json: string,
): Promise<{ status: number; headers: Record<string, unknown>; body: unknown }> {
  if (!server.listening) await new Promise<void>((resolve) => server.listen(0, resolve));
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { port, path, method: 'POST', headers: { 'Content-Type': 'application/json' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown,
          }),
        );
      },
    );
    req.on('error', reject);
    for (let i = 0; i < json.length; i += 4 * KIB) req.write(json.slice(i, i + 4 * KIB));
    req.end();
  });
}

describe.each(PLATFORMS)('the OTP routes on %s', (platform) => {
  let host: PlatformApp;
  beforeAll(async () => {
    host = await startPlatformApp(platform);
  });
  afterAll(async () => {
    await host?.close();
  });

  const send = (destination: string): Promise<Response> =>
    host.http.post('/otp/send').send({ destination });
  const sendCode = async (destination: string): Promise<{ requestId: string; code: string }> => {
    const res = await send(destination);
    expect({ status: res.status, body: res.body as unknown }).toMatchObject({ status: 202 });
    return { requestId: res.body.requestId as string, code: host.provider.lastCode(destination) };
  };
  const attemptsUsed = async (destination: string): Promise<unknown[]> =>
    (await rowsFor(destination)).map((r) => r.attempts_used);
  const verifyOk = async (destination: string, code: string): Promise<string> => {
    const res = await host.http.post('/otp/verify').send({ destination, code });
    expect({ status: res.status, body: res.body as unknown }).toMatchObject({
      status: 200,
      body: { verified: true },
    });
    return res.body.verificationToken as string;
  };

  it('POST /otp/send → /otp/verify → POST /host/protected (@RequireOtp): 202, 200, 200 once, then 401 OTP_TOKEN_INVALID', async () => {
    const email = uniqueEmail();
    const { code } = await sendCode(email);
    const token = await verifyOk(email, code);

    const ok = await host.http.post('/host/protected').set('X-OTP-Token', token);
    expect({ status: ok.status, body: ok.body as unknown }).toEqual({
      status: 200,
      body: { ok: true, destination: email },
    });
    expectError(
      await host.http.post('/host/protected').set('X-OTP-Token', token),
      401,
      'OTP_TOKEN_INVALID',
    );
    expectError(await host.http.post('/host/protected'), 401, 'OTP_TOKEN_INVALID');
  });

  it('POST /otp/verify: a numeric code is a 400 VALIDATION_FAILED that uses no attempt', async () => {
    const email = uniqueEmail();
    const { code } = await sendCode(email);
    const res = await host.http
      .post('/otp/verify')
      .send({ destination: email, code: Number(code) });
    expectError(res, 400, 'VALIDATION_FAILED');
    expect(await attemptsUsed(email)).toEqual([0]);
    await verifyOk(email, code);
  });

  it('POST /otp/send: an unknown field is a 400 naming it, and nothing is stored', async () => {
    const email = uniqueEmail();
    const res = await host.http.post('/otp/send').send({ destination: email, foo: 'bar' });
    expectError(res, 400, 'VALIDATION_FAILED');
    expect(([] as unknown[]).concat(res.body.message)).toContain('property foo should not exist');
    expect(await rowsFor(email)).toHaveLength(0);
  });

  it.each([
    ['malformed JSON', {}, MALFORMED],
    ['an empty JSON body', {}, ''],
    ['a corrupt gzip body', { 'Content-Encoding': 'gzip' }, MALFORMED],
  ])('POST /otp/send: %s is a 400 VALIDATION_FAILED', async (_name, headers, body) => {
    const res = await host.http
      .post('/otp/send')
      .set({ 'Content-Type': 'application/json', ...headers })
      .send(body);
    expectError(res, 400, 'VALIDATION_FAILED');
  });

  it.each([
    ['20 KiB (over the module’s 16 KiB)', 20 * KIB],
    ['120 KiB (over the host parser’s 100 KiB on Express)', 120 * KIB],
  ])('POST /otp/send: a body of %s is a 413 PAYLOAD_TOO_LARGE', async (_name, size) => {
    const email = uniqueEmail();
    const res = await host.http
      .post('/otp/send')
      .send({ destination: email, padding: 'x'.repeat(size) });
    expectError(res, 413, 'PAYLOAD_TOO_LARGE');
    expect(await rowsFor(email)).toHaveLength(0);
  });

  it('POST /otp/send: a chunked body over 16 KiB (no Content-Length) is a 413 PAYLOAD_TOO_LARGE', async () => {
    const email = uniqueEmail();
    const json = JSON.stringify({ destination: email, padding: 'x'.repeat(20 * KIB) });
    const res = await postChunked(host.app.getHttpServer() as Server, '/otp/send', json);
    expect({ status: res.status, body: res.body }).toMatchObject({
      status: 413,
      body: { statusCode: 413, code: 'PAYLOAD_TOO_LARGE' },
    });
    expect(await rowsFor(email)).toHaveLength(0);
  });

  it.each([
    ['form-encoded', 'application/x-www-form-urlencoded'],
    ['text/plain', 'text/plain'],
    ['multipart', 'multipart/form-data; boundary=x'],
  ])(
    'POST /otp/verify: a %s body with the right code is a 400 VALIDATION_FAILED that uses no attempt',
    async (_name, type) => {
      const email = uniqueEmail();
      const { code } = await sendCode(email);
      const body =
        type === 'text/plain'
          ? JSON.stringify({ destination: email, code })
          : new URLSearchParams({ destination: email, code }).toString();
      const res = await host.http.post('/otp/verify').set('Content-Type', type).send(body);
      expectError(res, 400, 'VALIDATION_FAILED');
      expect(([] as unknown[]).concat(res.body.message).join('; ')).toMatch(/JSON/);
      expect(await attemptsUsed(email)).toEqual([0]);
      await verifyOk(email, code);
    },
  );

  it('POST /otp/send, /otp/verify: a body typed application/vnd.api+json is JSON too', async () => {
    const email = uniqueEmail();
    const type = 'application/vnd.api+json; charset=utf-8';
    const sent = await host.http
      .post('/otp/send')
      .set('Content-Type', type)
      .send(JSON.stringify({ destination: email }));
    expect({ status: sent.status, body: sent.body as unknown }).toMatchObject({
      status: 202,
      body: { channel: 'email' },
    });
    const code = host.provider.lastCode(email);
    const verified = await host.http
      .post('/otp/verify')
      .set('Content-Type', type)
      .send(JSON.stringify({ destination: email, code }));
    expect({ status: verified.status, body: verified.body as unknown }).toMatchObject({
      status: 200,
      body: { verified: true },
    });
  });

  it('POST /otp/send: a second send within the cooldown is a 429 OTP_RESEND_COOLDOWN with Retry-After', async () => {
    const email = uniqueEmail();
    await sendCode(email);
    const res = await send(email);
    expectError(res, 429, 'OTP_RESEND_COOLDOWN', ['retryAfter']);
    expect(res.headers['retry-after']).toBe(String(res.body.retryAfter));
  });

  it('GET /otp/requests/:requestId: 200 with the request, 404 OTP_REQUEST_NOT_FOUND for another id', async () => {
    const email = uniqueEmail();
    const { requestId } = await sendCode(email);
    const found = await host.http.get(`/otp/requests/${requestId}`);
    expect({ status: found.status, body: found.body as unknown }).toMatchObject({
      status: 200,
      body: { requestId, status: 'pending', purpose: 'login' },
    });
    expectError(await host.http.get(`/otp/requests/${randomUUID()}`), 404, 'OTP_REQUEST_NOT_FOUND');
  });

  it('GET and POST …/cancel on /otp/requests/:requestId: an id over the router’s maxParamLength is a 404 OTP_REQUEST_NOT_FOUND, a longer path the host’s 404', async () => {
    const long = 'a'.repeat(150);
    expectError(await host.http.get(`/otp/requests/${long}`), 404, 'OTP_REQUEST_NOT_FOUND');
    expectError(await host.http.post(`/otp/requests/${long}/cancel`), 404, 'OTP_REQUEST_NOT_FOUND');
    for (const res of [
      await host.http.get(`/otp/requests/${long}/more`),
      await host.http.post(`/otp/requests/${long}`),
      await host.http.post(`/otp/requests/${long}/more`),
      await host.http.get('/otp/requests/a/b'),
    ]) {
      expect({ status: res.status, body: res.body as unknown }).toMatchObject({
        status: 404,
        body: { statusCode: 404, error: 'Not Found' },
      });
      expect(res.body.code).toBeUndefined();
    }
  });

  it('GET /otp/requests/:requestId: the module’s throttleLimit tripping is a 429 RATE_LIMITED with Retry-After', async () => {
    const limited = await startPlatformApp(platform, { throttleLimit: 3 });
    try {
      for (let i = 0; i < 3; i += 1) {
        expectError(
          await limited.http.get(`/otp/requests/${randomUUID()}`),
          404,
          'OTP_REQUEST_NOT_FOUND',
        );
      }
      const res = await limited.http.get(`/otp/requests/${randomUUID()}`);
      expectError(res, 429, 'RATE_LIMITED');
      expect(res.body.retryAfter).toBeGreaterThanOrEqual(1);
      expect(res.headers['retry-after']).toBe(String(res.body.retryAfter));
      // An id over the router's maxParamLength is throttled like any other.
      expectError(await limited.http.get(`/otp/requests/${'a'.repeat(150)}`), 429, 'RATE_LIMITED');
    } finally {
      await limited.close();
    }
  });
});

describe.each(PLATFORMS)(
  'the OTP routes on %s under a global prefix and a routePrefix',
  (platform) => {
    let host: PlatformApp;
    beforeAll(async () => {
      host = await startPlatformApp(platform, {}, { globalPrefix: 'api', routePrefix: 'auth/otp' });
    });
    afterAll(async () => {
      await host?.close();
    });

    it('GET /api/auth/otp/requests/:requestId: an id over the router’s maxParamLength is a 404 OTP_REQUEST_NOT_FOUND', async () => {
      const long = 'a'.repeat(150);
      const res = await host.http.get(`/api/auth/otp/requests/${long}`);
      expectError(res, 404, 'OTP_REQUEST_NOT_FOUND');
      const cancel = await host.http.post(`/api/auth/otp/requests/${long}/cancel`);
      expectError(cancel, 404, 'OTP_REQUEST_NOT_FOUND');
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
        'a body over 16 KiB',
        413,
        'PAYLOAD_TOO_LARGE',
        JSON.stringify({ destination: 'a@example.com', padding: 'x'.repeat(20 * KIB) }),
      ],
    ])('POST /api/auth/otp/send: %s is the contract’s %i %s', async (_name, status, code, body) => {
      const res = await host.http
        .post('/api/auth/otp/send')
        .set('Content-Type', 'application/json')
        .send(body);
      expectError(res, status, code);
    });
  },
);
