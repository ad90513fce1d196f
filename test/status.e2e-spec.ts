import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import {
  dbMillis,
  expectError,
  expectUndecodableIdAnswer,
  isoMillis,
  sendCode,
  uniqueUsPhone,
  withFailing,
  wrongCode,
} from './support/contract.js';
import {
  PLATFORMS,
  rowsFor,
  startTestApp,
  travel,
  uniqueEmail,
  type TestApp,
} from './support/test-app.js';

const VIEW_KEYS = [
  'requestId',
  'destination',
  'channel',
  'purpose',
  'status',
  'expiresAt',
  'attemptsRemaining',
  'resendAvailableAt',
  'ttlSeconds',
  'codeLength',
  'attemptsAllowed',
  'deliveries',
].sort();

describe.each(PLATFORMS)('GET /otp/requests/:requestId on %s', (platform) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({}, { platform });
  });
  afterAll(async () => {
    await t.close();
  });

  const status = (id: unknown) => t.http.get(`/otp/requests/${encodeURIComponent(String(id))}`);

  it('shows exactly the contract fields of a pending request, never the code or its hash', async () => {
    const email = uniqueEmail();
    const { body: sent, code } = await sendCode(t, email, { purpose: 'reset' });
    const res = await status(sent.requestId).expect(200);

    expect(Object.keys(res.body).sort()).toEqual(VIEW_KEYS);
    expect(res.body).toMatchObject({
      requestId: sent.requestId,
      destination: 'u•••@example.com',
      channel: 'email',
      purpose: 'reset',
      status: 'pending',
      attemptsRemaining: 3,
      expiresAt: sent.expiresAt,
      resendAvailableAt: sent.resendAvailableAt,
      ttlSeconds: 300,
      codeLength: 6,
      attemptsAllowed: 3,
    });

    const [row] = await rowsFor(email);
    expect(isoMillis(res.body.expiresAt)).toBe(dbMillis(row?.expires_at));
    const text = JSON.stringify(res.body) + JSON.stringify(res.headers);
    expect(text).not.toContain(code);
    expect(text).not.toContain(String(row?.code_hash));
    expect(text).not.toMatch(/code_?hash|"code"/i);
  });

  it('shows a masked phone and its channel', async () => {
    const phone = uniqueUsPhone().e164;
    const { body: sent } = await sendCode(t, phone, { channel: 'voice' });
    const res = await status(sent.requestId).expect(200);
    expect(res.body).toMatchObject({
      destination: `+1${'•'.repeat(8)}${phone.slice(-2)}`,
      channel: 'voice',
      purpose: 'login',
    });
  });

  it('goes from pending to verified', async () => {
    const email = uniqueEmail();
    const { body: sent, code } = await sendCode(t, email);
    expect((await status(sent.requestId).expect(200)).body.status).toBe('pending');

    await t.http.post('/otp/verify').send({ destination: email, code }).expect(200);
    const res = await status(sent.requestId).expect(200);
    expect(res.body).toMatchObject({ status: 'verified', attemptsRemaining: 0 });
  });

  it('counts down attemptsRemaining with wrong guesses, then shows exhausted', async () => {
    const email = uniqueEmail();
    const { body: sent, code } = await sendCode(t, email);
    const remaining: unknown[] = [];
    for (let i = 0; i < 3; i++) {
      await t.http.post('/otp/verify').send({ destination: email, code: wrongCode(code) });
      const res = await status(sent.requestId).expect(200);
      remaining.push(res.body.attemptsRemaining);
      if (i < 2) expect(res.body.status).toBe('pending');
      else expect(res.body.status).toBe('exhausted');
    }
    expect(remaining).toEqual([2, 1, 0]);
    // The lockout (30 s after exhaustion) is when the next send is possible.
    const res = await status(sent.requestId).expect(200);
    const [row] = await rowsFor(email);
    expect(isoMillis(res.body.resendAvailableAt)).toBeGreaterThanOrEqual(
      dbMillis(row?.exhausted_at) + 30_000 - 1,
    );
  });

  it('shows expired once the code has passed its lifetime', async () => {
    const email = uniqueEmail();
    const { body: sent } = await sendCode(t, email);
    await travel(email, 301);
    const res = await status(sent.requestId).expect(200);
    expect(res.body).toMatchObject({ status: 'expired', attemptsRemaining: 0 });
  });

  it('shows superseded after a second send, and the second as pending', async () => {
    const email = uniqueEmail();
    const { body: first } = await sendCode(t, email);
    await travel(email, 31);
    const { body: second } = await sendCode(t, email);

    const old = await status(first.requestId).expect(200);
    expect(old.body).toMatchObject({ status: 'superseded', attemptsRemaining: 0 });
    const fresh = await status(second.requestId).expect(200);
    expect(fresh.body).toMatchObject({ status: 'pending', attemptsRemaining: 3 });
  });

  it('shows failed after a failed delivery', async () => {
    const email = uniqueEmail();
    const failed = await withFailing(t, ['email'], () =>
      t.http.post('/otp/send').send({ destination: email }),
    );
    expectError(failed, 503, 'OTP_DELIVERY_FAILED');
    const [row] = await rowsFor(email);
    const res = await status(row?.id).expect(200);
    expect(Object.keys(res.body).sort()).toEqual(VIEW_KEYS);
    expect(res.body).toMatchObject({ status: 'failed', attemptsRemaining: 0 });
  });

  it('finds a request by its id in upper case', async () => {
    const { body: sent } = await sendCode(t, uniqueEmail());
    const res = await status(String(sent.requestId).toUpperCase()).expect(200);
    expect(res.body.requestId).toBe(sent.requestId);
  });

  it.each([
    ['an unknown uuid', randomUUID()],
    ['a malformed id', 'not-a-uuid'],
    ['an SQL injection attempt', "' OR 1=1 --"],
    ['a uuid with trailing text', `${randomUUID()}x`],
    // Over Fastify's router limit for a path parameter (maxParamLength, 100 by default).
    ['an id of 101 characters', 'a'.repeat(101)],
    ['an id of 300 characters', randomUUID().repeat(9).slice(0, 300)],
  ])('answers 404 for %s', async (_name, id) => {
    const res = await status(id);
    expectError(res, 404, 'OTP_REQUEST_NOT_FOUND');
  });

  // Percent-encoded bytes that are not UTF-8 (half of a surrogate pair, as a sloppy client encodes
  // it): no text, so no id.
  it.each(['/otp/requests/%ED%A0%80', '/otp/requests/%FF'])(
    'answers %s, whose id is not UTF-8, without a 500',
    async (path) => {
      expectUndecodableIdAnswer(await t.http.get(path), platform);
    },
  );
});
