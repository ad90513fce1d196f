import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  EXPIRED_MESSAGE,
  UUID_PATTERN,
  dbMillis,
  expectError,
  isoMillis,
  messagesTo,
  sendCode,
  supersedeByFailedSend,
  uniqueKey,
  uniqueUkMobile,
  uniqueUsPhone,
  withFailing,
} from './support/contract.js';
import {
  PLATFORMS,
  query,
  rowsFor,
  startTestApp,
  type TestApp,
  travel,
  uniqueEmail,
} from './support/test-app.js';

describe.each(PLATFORMS)('POST /otp/send on %s', (platform) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({}, { platform });
  });
  afterAll(async () => {
    await t.close();
  });

  /** A send carrying an Idempotency-Key. */
  const sendWithKey = (key: string, body: Record<string, unknown>) =>
    t.http.post('/otp/send').set('Idempotency-Key', key).send(body);

  describe('202 response', () => {
    it('answers every field of the contract for an email address', async () => {
      const email = uniqueEmail();
      const res = await t.http.post('/otp/send').send({ destination: email }).expect(202);

      expect(Object.keys(res.body).sort()).toEqual(
        [
          'requestId',
          'destination',
          'channel',
          'purpose',
          'expiresAt',
          'ttlSeconds',
          'codeLength',
          'attemptsAllowed',
          'resendAvailableAt',
        ].sort(),
      );
      expect(res.body.requestId).toMatch(UUID_PATTERN);
      expect(res.body.destination).toBe(`u•••@example.com`);
      expect(res.body).toMatchObject({
        channel: 'email',
        purpose: 'login',
        ttlSeconds: 300,
        codeLength: 6,
        attemptsAllowed: 3,
      });

      const [row] = await rowsFor(email);
      expect(row).toMatchObject({ id: res.body.requestId, destination: email, channel: 'email' });
      const created = dbMillis(row?.created_at);
      expect(isoMillis(res.body.expiresAt)).toBe(created + 300_000);
      expect(isoMillis(res.body.resendAvailableAt)).toBe(created + 30_000);
      expect(isoMillis(res.body.expiresAt)).toBe(dbMillis(row?.expires_at));
    });

    it('carries no X-Powered-By and no ETag (the example app turns Express’s off)', async () => {
      const res = await t.http.post('/otp/send').send({ destination: uniqueEmail() }).expect(202);
      expect(res.headers['x-powered-by']).toBeUndefined();
      expect(res.headers.etag).toBeUndefined();
      expect(res.headers['content-type']).toMatch(/^application\/json/);
    });

    it('masks a phone number and defaults its channel to sms', async () => {
      const phone = uniqueUsPhone().e164;
      const res = await t.http.post('/otp/send').send({ destination: phone }).expect(202);
      expect(res.body.destination).toBe(`+1${'•'.repeat(8)}${phone.slice(-2)}`);
      expect(res.body.channel).toBe('sms');
      expect(t.provider.messages.at(-1)).toMatchObject({ destination: phone, channel: 'sms' });
    });

    it('uses voice for a phone when asked', async () => {
      const phone = uniqueUsPhone().e164;
      const res = await t.http
        .post('/otp/send')
        .send({ destination: phone, channel: 'voice' })
        .expect(202);
      expect(res.body.channel).toBe('voice');
      expect(t.provider.messages.at(-1)).toMatchObject({ destination: phone, channel: 'voice' });
      expect((await rowsFor(phone))[0]?.channel).toBe('voice');
    });

    it('keeps a custom purpose', async () => {
      const email = uniqueEmail();
      const res = await t.http
        .post('/otp/send')
        .send({ destination: email, purpose: 'reset' })
        .expect(202);
      expect(res.body.purpose).toBe('reset');
      expect((await rowsFor(email))[0]?.purpose).toBe('reset');
    });

    it('refuses a purpose outside the pattern', async () => {
      const email = uniqueEmail();
      for (const purpose of ['Reset', '1login', '', 'a'.repeat(65), 'log in']) {
        const res = await t.http.post('/otp/send').send({ destination: email, purpose });
        expectError(res, 400, 'VALIDATION_FAILED');
      }
      expect(await rowsFor(email)).toHaveLength(0);
    });
  });

  describe('normalization', () => {
    it('treats a padded, mixed-case email and its lowercase form as one destination', async () => {
      const email = uniqueEmail();
      const spelled = `  ${email.replace('user-', 'User-').replace('example.com', 'Example.COM')} `;
      await t.http.post('/otp/send').send({ destination: spelled }).expect(202);

      const code = t.provider.lastCode(email);
      // The code sent to one spelling verifies with the other: one flow.
      await t.http.post('/otp/verify').send({ destination: email, code }).expect(200);

      const rows = await query(
        'SELECT destination FROM otp_requests WHERE lower(destination) = $1',
        [email],
      );
      expect(rows).toEqual([{ destination: email }]);
    });

    it('treats a national US number and its E.164 form as one destination', async () => {
      const phone = uniqueUsPhone();
      await t.http.post('/otp/send').send({ destination: phone.national }).expect(202);
      // Same destination: the second spelling meets the first's resend cooldown.
      const again = await t.http.post('/otp/send').send({ destination: phone.e164 });
      expectError(again, 429, 'OTP_RESEND_COOLDOWN');

      const code = t.provider.lastCode(phone.e164);
      await t.http.post('/otp/verify').send({ destination: phone.e164, code }).expect(200);
      const rows = await rowsFor(phone.e164);
      expect(rows).toHaveLength(1);
      expect(rows[0]?.destination).toBe(phone.e164);
    });

    it('stores a spaced international number as E.164', async () => {
      const uk = uniqueUkMobile();
      const res = await t.http.post('/otp/send').send({ destination: uk.spaced }).expect(202);
      expect(res.body.destination).toBe(`+44${'•'.repeat(8)}${uk.e164.slice(-2)}`);
      const rows = await query<{ destination: string }>(
        'SELECT destination FROM otp_requests WHERE id = $1',
        [res.body.requestId],
      );
      expect(rows).toEqual([{ destination: uk.e164 }]);
      expect(t.provider.messages.at(-1)?.destination).toBe(uk.e164);
    });
  });

  describe('channel and destination mismatch', () => {
    it.each([
      ['email', 'a phone number', () => uniqueUsPhone().e164],
      ['sms', 'an email address', uniqueEmail],
      ['voice', 'an email address', uniqueEmail],
    ])('refuses channel %s for %s', async (channel, _kind, make) => {
      const destination = make();
      const before = t.provider.messages.length;
      const res = await t.http.post('/otp/send').send({ destination, channel });
      expectError(res, 400, 'VALIDATION_FAILED');
      expect(await rowsFor(destination)).toHaveLength(0);
      expect(t.provider.messages.length).toBe(before);
    });
  });

  describe('supersede', () => {
    it('invalidates the first code when a second send follows the cooldown', async () => {
      const email = uniqueEmail();
      const first = await sendCode(t, email);
      await travel(email, 31);
      const second = await sendCode(t, email);
      expect(second.body.requestId).not.toBe(first.body.requestId);

      const rows = await rowsFor(email);
      expect(rows).toHaveLength(2);
      expect(rows[0]).toMatchObject({ id: first.body.requestId, code_hash: null });
      expect(rows[0]?.superseded_at).toBeInstanceOf(Date);
      expect(rows[1]).toMatchObject({ id: second.body.requestId, superseded_at: null });
      expect(rows[1]?.code_hash).not.toBeNull();

      // The first code is checked against the flow's active (second) code: a wrong guess.
      if (first.code !== second.code) {
        const stale = await t.http
          .post('/otp/verify')
          .send({ destination: email, code: first.code });
        expectError(stale, 401, 'OTP_INVALID', ['attemptsRemaining']);
      }
      const fresh = await t.http
        .post('/otp/verify')
        .send({ destination: email, code: second.code })
        .expect(200);
      expect(fresh.body.verified).toBe(true);
      // And once the second is used, the first is no better: nothing is active.
      const late = await t.http.post('/otp/verify').send({ destination: email, code: first.code });
      expectError(late, 410, 'OTP_EXPIRED');
      expect(late.body.message).toBe(EXPIRED_MESSAGE);
    });

    it('leaves no active code when the superseding send fails to deliver', async () => {
      const email = uniqueEmail();
      const { first, failed } = await supersedeByFailedSend(t, email);
      expectError(failed, 503, 'OTP_DELIVERY_FAILED');
      const res = await t.http.post('/otp/verify').send({ destination: email, code: first.code });
      expectError(res, 410, 'OTP_EXPIRED');
      const rows = await rowsFor(email);
      expect(rows.map((r) => r.code_hash)).toEqual([null, null]);
      expect(rows[0]?.superseded_at).toBeInstanceOf(Date);
    });

    it('supersedes only the same purpose', async () => {
      const email = uniqueEmail();
      const login = await sendCode(t, email);
      const reset = await sendCode(t, email, { purpose: 'reset' });
      const rows = await rowsFor(email);
      expect(rows.map((r) => r.superseded_at)).toEqual([null, null]);
      await t.http.post('/otp/verify').send({ destination: email, code: login.code }).expect(200);
      await t.http
        .post('/otp/verify')
        .send({ destination: email, code: reset.code, purpose: 'reset' })
        .expect(200);
    });
  });

  describe('codes', () => {
    it('sends 6 ASCII digits by default, never in a response, stored only as a hash', async () => {
      const email = uniqueEmail();
      const res = await t.http.post('/otp/send').send({ destination: email }).expect(202);
      const code = t.provider.lastCode(email);
      expect(code).toMatch(/^[0-9]{6}$/);

      expect(JSON.stringify(res.body)).not.toContain(code);
      expect(JSON.stringify(res.headers)).not.toContain(code);

      const [row] = await rowsFor(email);
      const hash = row?.code_hash;
      expect(typeof hash).toBe('string');
      expect(hash).not.toBe(code);
      expect(hash as string).not.toContain(code);
      expect(row?.code_length).toBe(6);
    });

    it('never puts the code in a verify or status response', async () => {
      const email = uniqueEmail();
      const { body, code } = await sendCode(t, email);
      const status = await t.http.get(`/otp/requests/${String(body.requestId)}`).expect(200);
      const verified = await t.http
        .post('/otp/verify')
        .send({ destination: email, code })
        .expect(200);
      for (const res of [status, verified]) {
        expect(JSON.stringify(res.body)).not.toContain(code);
        expect(JSON.stringify(res.headers)).not.toContain(code);
      }
    });
  });

  describe('Idempotency-Key', () => {
    it('replays the first response for the same key and body, sending nothing', async () => {
      const email = uniqueEmail();
      const key = uniqueKey();
      const first = await sendWithKey(key, { destination: email }).expect(202);
      const sent = messagesTo(t, email);
      expect(sent).toBe(1);

      // Within the resend cooldown: a plain send would be a 429, a replay is not a send.
      const again = await sendWithKey(key, { destination: email }).expect(202);
      expect(again.body).toEqual(first.body);
      expect(messagesTo(t, email)).toBe(sent);
      expect(await rowsFor(email)).toHaveLength(1);
    });

    it('replays once for many concurrent requests with the same key', async () => {
      const email = uniqueEmail();
      const key = uniqueKey();
      const responses = await Promise.all(
        Array.from({ length: 8 }, () => sendWithKey(key, { destination: email })),
      );
      expect(responses.map((r) => r.status)).toEqual(Array(8).fill(202));
      expect(new Set(responses.map((r): unknown => r.body.requestId)).size).toBe(1);
      expect(messagesTo(t, email)).toBe(1);
      expect(await rowsFor(email)).toHaveLength(1);
    });

    it('lets a key be used again, for another body, once its first use is over 24 h old', async () => {
      const email = uniqueEmail();
      const other = uniqueEmail();
      const key = uniqueKey();
      const first = await sendWithKey(key, { destination: email }).expect(202);
      await travel(email, 24 * 3600 + 60);

      const reused = await sendWithKey(key, { destination: other }).expect(202);
      expect(reused.body.requestId).not.toBe(first.body.requestId);
      expect(messagesTo(t, other)).toBe(1);
      const holders = await query<{ destination: string }>(
        'SELECT destination FROM otp_requests WHERE idempotency_key = $1',
        [key],
      );
      expect(holders).toEqual([{ destination: other }]);
    });

    it('refuses the same key with another body and stores nothing', async () => {
      const email = uniqueEmail();
      const other = uniqueEmail();
      const key = uniqueKey();
      await sendWithKey(key, { destination: email }).expect(202);
      const before = t.provider.messages.length;

      const otherDestination = await sendWithKey(key, { destination: other });
      expectError(otherDestination, 422, 'IDEMPOTENCY_KEY_REUSED');
      const otherPurpose = await sendWithKey(key, { destination: email, purpose: 'reset' });
      expectError(otherPurpose, 422, 'IDEMPOTENCY_KEY_REUSED');

      expect(t.provider.messages.length).toBe(before);
      expect(await rowsFor(other)).toHaveLength(0);
      expect(await rowsFor(email)).toHaveLength(1);
    });

    it('accepts a 255-character printable ASCII key', async () => {
      const email = uniqueEmail();
      const key = `${uniqueKey()} ~!`.padEnd(255, 'x');
      await sendWithKey(key, { destination: email }).expect(202);
      expect((await rowsFor(email))[0]?.idempotency_key).toBe(key);
    });

    it.each([
      ['an empty key', ''],
      ['a 256-character key', 'k'.repeat(256)],
      ['a non-ASCII key', 'clé-é-unique'],
    ])('refuses %s', async (_name, key) => {
      const email = uniqueEmail();
      const before = t.provider.messages.length;
      const res = await sendWithKey(key, { destination: email });
      expectError(res, 400, 'VALIDATION_FAILED');
      expect(t.provider.messages.length).toBe(before);
      expect(await rowsFor(email)).toHaveLength(0);
    });
  });

  describe('delivery failure', () => {
    it('answers 503 and leaves a failed row with no code', async () => {
      const email = uniqueEmail();
      const res = await withFailing(t, ['email'], () =>
        t.http.post('/otp/send').send({ destination: email }),
      );
      expectError(res, 503, 'OTP_DELIVERY_FAILED');
      expect(messagesTo(t, email)).toBe(0);
      const rows = await rowsFor(email);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ delivery_status: 'failed', code_hash: null });

      // No active code is left: any guess finds nothing.
      const guess = await t.http.post('/otp/verify').send({ destination: email, code: '123456' });
      expectError(guess, 410, 'OTP_EXPIRED');
      // A failed delivery starts no cooldown: a retry sends at once.
      await t.http.post('/otp/send').send({ destination: email }).expect(202);
    });

    it('falls back to voice when only sms fails', async () => {
      const phone = uniqueUsPhone().e164;
      const res = await withFailing(t, ['sms'], () =>
        t.http.post('/otp/send').send({ destination: phone }),
      );
      expect(res.status).toBe(202);
      expect(res.body.channel).toBe('voice');
      expect(t.provider.messages.filter((m) => m.destination === phone)).toEqual([
        expect.objectContaining({ channel: 'voice' }),
      ]);
      expect((await rowsFor(phone))[0]).toMatchObject({
        channel: 'voice',
        delivery_status: 'sent',
      });
      const code = t.provider.lastCode(phone);
      await t.http.post('/otp/verify').send({ destination: phone, code }).expect(200);
    });

    it('records the delivery: the row sent by whom, every attempt logged, no sealed code kept', async () => {
      const by = t.provider.name;
      const email = uniqueEmail();
      const sent = await t.http.post('/otp/send').send({ destination: email }).expect(202);
      const phone = uniqueUsPhone().e164;
      const failedOver = await withFailing(t, ['sms'], () =>
        t.http.post('/otp/send').send({ destination: phone }).expect(202),
      );
      const recorded = async (requestId: string) => ({
        request: await query(
          `SELECT delivery_status, channel, delivered_by, delivered_at IS NOT NULL AS stamped
             FROM otp_requests WHERE id = $1`,
          [requestId],
        ),
        attempts: await query(
          `SELECT seq::int, channel, provider, status, cause FROM otp_deliveries
            WHERE request_id = $1 ORDER BY seq`,
          [requestId],
        ),
        sealed: await query(`SELECT 1 FROM otp_fallbacks WHERE request_id = $1`, [requestId]),
      });
      // No channel is left after email, nor after voice: nothing to re-deliver, nothing sealed.
      expect(await recorded(sent.body.requestId as string)).toEqual({
        request: [{ delivery_status: 'sent', channel: 'email', delivered_by: by, stamped: true }],
        attempts: [{ seq: 1, channel: 'email', provider: by, status: 'sent', cause: 'send' }],
        sealed: [],
      });
      expect(await recorded(failedOver.body.requestId as string)).toEqual({
        request: [{ delivery_status: 'sent', channel: 'voice', delivered_by: by, stamped: true }],
        attempts: [
          { seq: 1, channel: 'sms', provider: by, status: 'failed', cause: 'send' },
          { seq: 2, channel: 'voice', provider: by, status: 'sent', cause: 'send' },
        ],
        sealed: [],
      });
    });

    it('answers 503 when sms and its voice fallback both fail', async () => {
      const phone = uniqueUsPhone().e164;
      const res = await withFailing(t, ['sms', 'voice'], () =>
        t.http.post('/otp/send').send({ destination: phone }),
      );
      expectError(res, 503, 'OTP_DELIVERY_FAILED');
      expect((await rowsFor(phone))[0]).toMatchObject({
        delivery_status: 'failed',
        code_hash: null,
      });
    });
  });
});

describe.each(PLATFORMS)('POST /otp/send with codeLength 8 on %s', (platform) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ codeLength: 8 }, { platform });
  });
  afterAll(async () => {
    await t.close();
  });

  it('sends 8-digit codes that verify, and refuses 6 digits', async () => {
    const email = uniqueEmail();
    const res = await t.http.post('/otp/send').send({ destination: email }).expect(202);
    expect(res.body.codeLength).toBe(8);
    const code = t.provider.lastCode(email);
    expect(code).toMatch(/^[0-9]{8}$/);
    expect((await rowsFor(email))[0]?.code_length).toBe(8);

    const six = await t.http
      .post('/otp/verify')
      .send({ destination: email, code: code.slice(0, 6) });
    expectError(six, 400, 'VALIDATION_FAILED');
    await t.http.post('/otp/verify').send({ destination: email, code }).expect(200);
  });

  it('draws every digit uniformly, so a code may start with 0', async () => {
    // 150 codes: each starts with 0 with probability 1/10; all missing it has odds 0.9^150 ≈ 1e-7.
    const emails = Array.from({ length: 150 }, () => uniqueEmail());
    for (const email of emails) {
      await t.http.post('/otp/send').send({ destination: email }).expect(202);
    }
    const codes = emails.map((e) => t.provider.lastCode(e));
    for (const code of codes) expect(code).toMatch(/^[0-9]{8}$/);
    expect(codes.some((c) => c.startsWith('0'))).toBe(true);
  });
});
