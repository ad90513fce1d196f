import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { PLATFORMS, rowsFor, startTestApp, uniqueEmail, type TestApp } from './support/test-app.js';

describe.each(PLATFORMS)('send → verify → guarded route on %s', (platform) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({}, { platform });
  });
  afterAll(async () => {
    await t.close();
  });

  it('lets a client through the guard with a code it received', async () => {
    const email = uniqueEmail();
    const sent = await t.http.post('/otp/send').send({ destination: email }).expect(202);
    expect(sent.body).toMatchObject({
      channel: 'email',
      purpose: 'login',
      codeLength: 6,
      attemptsAllowed: 3,
    });

    const code = t.provider.lastCode(email);
    const verified = await t.http
      .post('/otp/verify')
      .send({ destination: email, code })
      .expect(200);
    expect(verified.body.verified).toBe(true);

    const guarded = await t.http
      .post('/example/protected')
      .set('X-OTP-Token', verified.body.verificationToken)
      .expect(200);
    expect(guarded.body).toEqual({ ok: true, destination: email });

    const rows = await rowsFor(email);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ code_hash: null, attempts_used: 1, delivery_status: 'sent' });
    expect(rows[0]?.token_used_at).not.toBeNull();
  });
});
