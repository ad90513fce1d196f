import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { expectError, sendCode, uniqueUsPhone } from './support/contract.js';
import {
  PLATFORMS,
  query,
  rowsFor,
  startTestApp,
  uniqueEmail,
  type TestApp,
} from './support/test-app.js';

describe.each(PLATFORMS)('POST /example/protected on %s', (platform) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({}, { platform });
  });
  afterAll(async () => {
    await t.close();
  });

  /** Sends and verifies a code for `destination` (normalized) and returns the token. */
  async function tokenFor(destination: string, purpose?: string): Promise<string> {
    const { code } = await sendCode(t, destination, purpose ? { purpose } : {});
    const res = await t.http
      .post('/otp/verify')
      .send({ destination, code, ...(purpose ? { purpose } : {}) })
      .expect(200);
    return res.body.verificationToken as string;
  }

  const protectedRoute = (token?: string) => {
    const req = t.http.post('/example/protected');
    return token === undefined ? req : req.set('X-OTP-Token', token);
  };

  it('lets a fresh token through once, with the normalized destination', async () => {
    const email = uniqueEmail();
    const token = await tokenFor(email);
    const res = await protectedRoute(token).expect(200);
    expect(res.body).toEqual({ ok: true, destination: email });

    const [row] = await rowsFor(email);
    expect(row?.token_used_at).toBeInstanceOf(Date);
    expect(typeof row?.token_hash).toBe('string');
    expect(row?.token_hash).not.toBe(token);
    expect(String(row?.token_hash)).not.toContain(token);
  });

  it('answers the E.164 form for a phone verified in national form', async () => {
    const phone = uniqueUsPhone();
    await t.http.post('/otp/send').send({ destination: phone.national }).expect(202);
    const code = t.provider.lastCode(phone.e164);
    const verified = await t.http
      .post('/otp/verify')
      .send({ destination: phone.national, code })
      .expect(200);
    const res = await protectedRoute(verified.body.verificationToken).expect(200);
    expect(res.body).toEqual({ ok: true, destination: phone.e164 });
  });

  it('rejects a second use of the same token', async () => {
    const email = uniqueEmail();
    const token = await tokenFor(email);
    await protectedRoute(token).expect(200);
    const [afterFirst] = await rowsFor(email);

    expectError(await protectedRoute(token), 401, 'OTP_TOKEN_INVALID');
    const [afterSecond] = await rowsFor(email);
    expect(afterSecond?.token_used_at).toEqual(afterFirst?.token_used_at);
  });

  it('lets a token through once however many requests present it at once', async () => {
    const email = uniqueEmail();
    const token = await tokenFor(email);
    const responses = await Promise.all(Array.from({ length: 10 }, () => protectedRoute(token)));
    expect(responses.filter((r) => r.status === 200)).toHaveLength(1);
    for (const r of responses.filter((x) => x.status !== 200)) {
      expectError(r, 401, 'OTP_TOKEN_INVALID');
    }
  });

  it('rejects a request without the header', async () => {
    expectError(await protectedRoute(), 401, 'OTP_TOKEN_INVALID');
  });

  it('rejects an empty header', async () => {
    expectError(await protectedRoute(''), 401, 'OTP_TOKEN_INVALID');
  });

  it('rejects an unknown token', async () => {
    expectError(
      await protectedRoute(randomBytes(32).toString('base64url')),
      401,
      'OTP_TOKEN_INVALID',
    );
  });

  it.each([
    ['too short', 'abc'],
    ['with characters outside base64url', `${'a'.repeat(42)}!`],
    ['too long', 'a'.repeat(44)],
    ['an SQL injection attempt', "' OR 1=1 --"],
  ])('rejects a malformed token (%s)', async (_name, token) => {
    expectError(await protectedRoute(token), 401, 'OTP_TOKEN_INVALID');
  });

  it('rejects a valid token with trailing text, and still accepts the token itself', async () => {
    const email = uniqueEmail();
    const token = await tokenFor(email);
    expectError(await protectedRoute(`${token}x`), 401, 'OTP_TOKEN_INVALID');
    expectError(await protectedRoute(token.toUpperCase()), 401, 'OTP_TOKEN_INVALID');
    await protectedRoute(token).expect(200);
  });

  it('rejects an expired token', async () => {
    const email = uniqueEmail();
    const token = await tokenFor(email);
    await query(
      `UPDATE otp_requests SET token_expires_at = now() - interval '1 second'
        WHERE destination = $1`,
      [email],
    );
    expectError(await protectedRoute(token), 401, 'OTP_TOKEN_INVALID');
    expect((await rowsFor(email))[0]?.token_used_at).toBeNull();
  });

  it('rejects a token from a verify for another purpose, without consuming it', async () => {
    const email = uniqueEmail();
    const token = await tokenFor(email, 'reset');
    expectError(await protectedRoute(token), 401, 'OTP_TOKEN_INVALID');
    const [row] = await rowsFor(email);
    expect(row).toMatchObject({ purpose: 'reset', token_used_at: null });
  });
});
