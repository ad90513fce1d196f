import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { sendCode } from './support/contract.js';
import { PLATFORMS, startTestApp, uniqueEmail, type TestApp } from './support/test-app.js';

const COOKIE = '__Host-otp-token';

/** The Set-Cookie values of a response, whatever the platform's header shape. */
const setCookies = (headers: Record<string, unknown>): string[] => {
  const value = headers['set-cookie'];
  if (value === undefined) return [];
  return Array.isArray(value) ? (value as string[]) : [value as string];
};

describe.each(PLATFORMS)('tokenTransport on %s', (platform) => {
  describe("'cookie'", () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await startTestApp({ tokenTransport: 'cookie', tokenTtlSeconds: 300 }, { platform });
    });
    afterAll(() => t.close());

    it('sets the token in a __Host- cookie with exactly the safe attributes, and the body omits it', async () => {
      const email = uniqueEmail();
      const { code } = await sendCode(t, email);
      const res = await t.http.post('/otp/verify').send({ destination: email, code }).expect(200);

      expect(Object.keys(res.body).sort()).toEqual(['tokenExpiresAt', 'verified']);
      const [cookie, ...more] = setCookies(res.headers);
      expect(more).toEqual([]);
      const [pair, ...attributes] = (cookie ?? '').split('; ');
      expect(pair).toMatch(new RegExp(`^${COOKIE}=[A-Za-z0-9_-]{43}$`));
      const maxAge = attributes.find((a) => a.startsWith('Max-Age='));
      expect(attributes.filter((a) => a !== maxAge).sort()).toEqual(
        ['HttpOnly', 'Path=/', 'SameSite=Strict', 'Secure'].sort(),
      );
      // The token's lifetime, give or take the request's own duration.
      const seconds = Number(maxAge?.slice('Max-Age='.length));
      expect(seconds).toBeGreaterThanOrEqual(290);
      expect(seconds).toBeLessThanOrEqual(300);
    });

    it('lets the cookie through the guard once, and ignores the header', async () => {
      const email = uniqueEmail();
      const { code } = await sendCode(t, email);
      const res = await t.http.post('/otp/verify').send({ destination: email, code }).expect(200);
      const cookie = (setCookies(res.headers)[0] ?? '').split('; ')[0] ?? '';
      const token = cookie.slice(COOKIE.length + 1);

      const byHeader = await t.http.post('/example/protected').set('X-OTP-Token', token);
      expect(byHeader.status).toBe(401);
      expect(byHeader.body).toMatchObject({ code: 'OTP_TOKEN_INVALID' });

      const passed = await t.http
        .post('/example/protected')
        .set('Cookie', `theme=dark; ${cookie}`)
        .expect(200);
      expect(passed.body).toEqual({ ok: true, destination: email });
      const again = await t.http.post('/example/protected').set('Cookie', cookie);
      expect(again.status).toBe(401);
    });
  });

  describe("'both'", () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await startTestApp({ tokenTransport: 'both' }, { platform });
    });
    afterAll(() => t.close());

    it('answers the token in the body and the cookie; the guard takes either', async () => {
      const first = uniqueEmail();
      const a = await sendCode(t, first);
      const res = await t.http
        .post('/otp/verify')
        .send({ destination: first, code: a.code })
        .expect(200);
      const token = res.body.verificationToken as string;
      expect(setCookies(res.headers)[0]).toContain(`${COOKIE}=${token};`);
      await t.http.post('/example/protected').set('X-OTP-Token', token).expect(200);

      const second = uniqueEmail();
      const b = await sendCode(t, second);
      const res2 = await t.http
        .post('/otp/verify')
        .send({ destination: second, code: b.code })
        .expect(200);
      await t.http
        .post('/example/protected')
        .set('Cookie', `${COOKIE}=${res2.body.verificationToken as string}`)
        .expect(200);
    });
  });

  describe("'header' (the default)", () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await startTestApp({}, { platform });
    });
    afterAll(() => t.close());

    it('sets no cookie, and the guard ignores one', async () => {
      const email = uniqueEmail();
      const { code } = await sendCode(t, email);
      const res = await t.http.post('/otp/verify').send({ destination: email, code }).expect(200);
      expect(setCookies(res.headers)).toEqual([]);
      const token = res.body.verificationToken as string;
      const byCookie = await t.http.post('/example/protected').set('Cookie', `${COOKIE}=${token}`);
      expect(byCookie.status).toBe(401);
      await t.http.post('/example/protected').set('X-OTP-Token', token).expect(200);
    });
  });
});
