import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHmac, randomBytes, randomInt } from 'node:crypto';
import { TwilioOtpProvider } from '../src/otp/delivery/twilio.provider.js';
import { signOtpWebhookPayload } from '../src/otp/delivery/webhook-signature.js';
import { expectError } from './support/contract.js';
import { FakeTwilio, type FakeTwilioRequest } from './support/fake-twilio.js';
import {
  CapturingProvider,
  PLATFORMS,
  query,
  startTestApp,
  type TestApp,
} from './support/test-app.js';

/** A valid US number no other test uses (test-app's `uniquePhone` repeats within a few dozen). */
const uniquePhone = (): string => `+1415${2_000_000 + randomInt(8_000_000)}`;

const ACCOUNT_SID = `AC${'0123456789abcdef'.repeat(2)}`;
const AUTH_TOKEN = randomBytes(16).toString('hex');
const FROM = '+14155550100';
const PUBLIC_URL = 'https://otp.example.test/otp/delivery-status/twilio';
const WEBHOOK_SECRET = 'receipt-secret-that-is-at-least-32-bytes!';

/**
 * `X-Twilio-Signature` as Twilio documents it (written here, not with the twilio package, so the
 * module's use of the package is checked against the documented scheme): base64 HMAC-SHA1 of the
 * URL followed by each POST parameter's name and value, sorted by name.
 */
function twilioSignature(url: string, params: Record<string, string>, token = AUTH_TOKEN): string {
  const data = Object.keys(params)
    .sort()
    .reduce((acc, key) => acc + key + params[key], url);
  return createHmac('sha1', token).update(data, 'utf8').digest('base64');
}

/** The code an SMS carries, and the one a call says (the first run of `length` spoken digits). */
const smsCode = (r: FakeTwilioRequest | undefined): string =>
  /(?<!\d)\d{6}(?!\d)/.exec(r?.form.Body ?? '')?.[0] ?? 'none';
const callCode = (r: FakeTwilioRequest | undefined): string =>
  (/<Say[^>]*>([^<]*\d[^<]*)<\/Say>/.exec(r?.form.Twiml ?? '')?.[1]?.match(/\d/g) ?? [])
    .slice(0, 6)
    .join('');

async function attemptsOf(requestId: string): Promise<Record<string, unknown>[]> {
  return query(
    `SELECT seq::int, channel, provider, provider_message_id, status, cause, error_code
       FROM otp_deliveries WHERE request_id = $1 ORDER BY seq`,
    [requestId],
  );
}

describe.each(PLATFORMS)('delivery receipts (%s)', (platform) => {
  let fake: FakeTwilio;
  let t: TestApp;
  let capped: TestApp;

  const twilioProvider = () =>
    new TwilioOtpProvider({
      accountSid: ACCOUNT_SID,
      authToken: AUTH_TOKEN,
      from: FROM,
      apiUrl: fake.url,
      statusCallback: PUBLIC_URL,
    });
  const options = {
    channels: ['sms' as const, 'voice' as const],
    deliveryReceipts: {
      twilio: { authToken: AUTH_TOKEN, publicUrl: PUBLIC_URL },
      webhook: { secret: WEBHOOK_SECRET },
    },
    fallbackPollIntervalMs: 0,
  };

  beforeAll(async () => {
    fake = await FakeTwilio.start({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN });
    t = await startTestApp({ ...options, providers: [twilioProvider()] }, { platform });
    capped = await startTestApp(
      { ...options, providers: [twilioProvider()], maxSendsPerHour: 1 },
      { platform },
    );
  });
  afterAll(async () => {
    await t?.close();
    await capped?.close();
    await fake?.close();
  });

  /** Sends an SMS code; resolves the request id, the SMS and Twilio's sid for it. */
  async function sendSms(app: TestApp = t) {
    const phone = uniquePhone();
    const res = await app.http.post('/otp/send').send({ destination: phone }).expect(202);
    expect(res.body.channel).toBe('sms');
    const requestId = res.body.requestId as string;
    const [attempt] = await attemptsOf(requestId);
    expect(attempt).toMatchObject({ seq: 1, channel: 'sms', provider: 'twilio', status: 'queued' });
    const sms = fake.to(phone).find((r) => r.resource === 'Messages');
    expect(sms?.form.StatusCallback).toBe(PUBLIC_URL);
    return { phone, requestId, sms, sid: attempt?.provider_message_id as string };
  }

  const receipt = (
    app: TestApp,
    params: Record<string, string>,
    signature: string | null = twilioSignature(PUBLIC_URL, params),
  ) => {
    const req = app.http
      .post('/otp/delivery-status/twilio')
      .type('form')
      .send(new URLSearchParams(params).toString());
    return signature === null ? req : req.set('X-Twilio-Signature', signature);
  };
  const twilioFields = (sid: string, phone: string, status: string) => ({
    AccountSid: ACCOUNT_SID,
    ApiVersion: '2010-04-01',
    From: FROM,
    To: phone,
    MessageSid: sid,
    SmsSid: sid,
    MessageStatus: status,
    SmsStatus: status,
  });

  it('POST /otp/delivery-status/twilio: a failed receipt moves the same code to voice at once', async () => {
    const { phone, requestId, sms, sid } = await sendSms();
    await receipt(t, { ...twilioFields(sid, phone, 'failed'), ErrorCode: '30008' }).expect(204);

    const calls = fake.to(phone).filter((r) => r.resource === 'Calls');
    expect(calls).toHaveLength(1);
    expect(callCode(calls[0])).toBe(smsCode(sms));
    expect(await attemptsOf(requestId)).toEqual([
      expect.objectContaining({ seq: 1, channel: 'sms', status: 'failed', error_code: '30008' }),
      expect.objectContaining({ seq: 2, channel: 'voice', status: 'queued', cause: 'receipt' }),
    ]);
    // Counted as a send of its own, and the code is still the one that verifies.
    const rows = await query(`SELECT channel FROM otp_requests WHERE destination = $1`, [phone]);
    expect(rows.map((r) => r.channel).sort()).toEqual(['sms', 'voice']);

    // Once per channel: the same receipt again, or the call's own failure, sends nothing more.
    await receipt(t, twilioFields(sid, phone, 'undelivered')).expect(204);
    expect(fake.to(phone)).toHaveLength(2);

    const status = await t.http.get(`/otp/requests/${requestId}`).expect(200);
    expect(status.body.deliveries).toEqual([
      expect.objectContaining({
        channel: 'sms',
        provider: 'twilio',
        status: 'failed',
        cause: 'send',
      }),
      expect.objectContaining({
        channel: 'voice',
        provider: 'twilio',
        status: 'queued',
        cause: 'receipt',
      }),
    ]);
    expect(JSON.stringify(status.body)).not.toContain(phone.slice(2));
    expect(JSON.stringify(status.body)).not.toContain(sid);

    await t.http
      .post('/otp/verify')
      .send({ destination: phone, code: smsCode(sms) })
      .expect(200);
  });

  it('POST /otp/delivery-status/twilio: a bad or missing signature is a 403 that changes nothing', async () => {
    const { phone, requestId, sid } = await sendSms();
    const fields = twilioFields(sid, phone, 'failed');
    const forged = [
      receipt(t, fields, null),
      receipt(t, fields, twilioSignature(PUBLIC_URL, fields, 'f'.repeat(32))),
      receipt(t, fields, twilioSignature('https://evil.example/hook', fields)),
      // Signed for other parameters than those sent.
      receipt(t, fields, twilioSignature(PUBLIC_URL, { ...fields, MessageStatus: 'delivered' })),
    ];
    for (const res of await Promise.all(forged)) expectError(res, 403, 'OTP_RECEIPT_FORBIDDEN');
    expect(fake.to(phone).filter((r) => r.resource === 'Calls')).toHaveLength(0);
    expect(await attemptsOf(requestId)).toEqual([
      expect.objectContaining({ seq: 1, status: 'queued', error_code: null }),
    ]);
  });

  it('POST /otp/delivery-status/twilio: a signed body it cannot read is a 400; JSON is refused', async () => {
    const res = await receipt(t, { MessageSid: 'nope', MessageStatus: 'exploded' }).expect(400);
    expectError(res, 400, 'VALIDATION_FAILED');
    const json = await t.http
      .post('/otp/delivery-status/twilio')
      .set('X-Twilio-Signature', 'x')
      .send({ MessageSid: 'x' });
    expectError(json, 400, 'VALIDATION_FAILED');
    const big = await receipt(t, { MessageSid: 'x'.repeat(20_000), MessageStatus: 'failed' });
    expectError(big, 413, 'PAYLOAD_TOO_LARGE');
  });

  it('a delivered receipt, or one for a code already verified, sends nothing', async () => {
    const a = await sendSms();
    await receipt(t, twilioFields(a.sid, a.phone, 'delivered')).expect(204);
    // A late failure after delivered does not change a final status.
    await receipt(t, twilioFields(a.sid, a.phone, 'failed')).expect(204);
    expect(await attemptsOf(a.requestId)).toEqual([
      expect.objectContaining({ status: 'delivered' }),
    ]);

    const b = await sendSms();
    await t.http
      .post('/otp/verify')
      .send({ destination: b.phone, code: smsCode(b.sms) })
      .expect(200);
    expect(await query(`SELECT 1 FROM otp_fallbacks WHERE request_id = $1`, [b.requestId])).toEqual(
      [],
    );
    await receipt(t, twilioFields(b.sid, b.phone, 'failed')).expect(204);
    expect(
      fake
        .to(a.phone)
        .concat(fake.to(b.phone))
        .filter((r) => r.resource === 'Calls'),
    ).toEqual([]);
  });

  it('a failed receipt never re-sends past the send caps or the code expiry', async () => {
    // maxSendsPerHour: 1, used by the send itself.
    const a = await sendSms(capped);
    await receipt(capped, twilioFields(a.sid, a.phone, 'failed')).expect(204);
    expect(fake.to(a.phone).filter((r) => r.resource === 'Calls')).toEqual([]);

    const b = await sendSms();
    await query(`UPDATE otp_requests SET expires_at = now() - interval '1 second' WHERE id = $1`, [
      b.requestId,
    ]);
    await receipt(t, twilioFields(b.sid, b.phone, 'failed')).expect(204);
    expect(fake.to(b.phone).filter((r) => r.resource === 'Calls')).toEqual([]);
    const rows = await query(`SELECT 1 FROM otp_requests WHERE destination = $1`, [b.phone]);
    expect(rows).toHaveLength(1);
  });

  it('POST /otp/delivery-status/webhook: signed like the outgoing webhook', async () => {
    const { phone, requestId, sms } = await sendSms();
    const body = JSON.stringify({ requestId, channel: 'sms', status: 'failed' });
    // The webhook provider names its messages `<requestId>:<channel>`; this one came by Twilio,
    // so the webhook report names no message the log knows: 204, nothing changes.
    const unsigned = await t.http
      .post('/otp/delivery-status/webhook')
      .set('content-type', 'application/json')
      .send(body);
    expectError(unsigned, 403, 'OTP_RECEIPT_FORBIDDEN');
    const wrong = await t.http
      .post('/otp/delivery-status/webhook')
      .set('content-type', 'application/json')
      .set('X-OTP-Signature', signOtpWebhookPayload(body, 'x'.repeat(40)))
      .send(body);
    expectError(wrong, 403, 'OTP_RECEIPT_FORBIDDEN');
    await t.http
      .post('/otp/delivery-status/webhook')
      .set('content-type', 'application/json')
      .set('X-OTP-Signature', signOtpWebhookPayload(body, WEBHOOK_SECRET))
      .send(body)
      .expect(204);
    expect(fake.to(phone).filter((r) => r.resource === 'Calls')).toEqual([]);
    expect(smsCode(sms)).toMatch(/^\d{6}$/);
    const bad = JSON.stringify({ requestId, channel: 'fax', status: 'failed', extra: 1 });
    const invalid = await t.http
      .post('/otp/delivery-status/webhook')
      .set('content-type', 'application/json')
      .set('X-OTP-Signature', signOtpWebhookPayload(bad, WEBHOOK_SECRET))
      .send(bad);
    expectError(invalid, 400, 'VALIDATION_FAILED');
  });
});

describe('delivery receipts through the webhook provider', () => {
  let t: TestApp;
  const capture = new CapturingProvider();

  beforeAll(async () => {
    // A provider that reports message ids as the webhook provider does.
    const webhookLike = {
      name: 'webhook',
      supports: () => true,
      deliver: async (message: Parameters<CapturingProvider['deliver']>[0]) => {
        await capture.deliver(message);
        return { messageId: `${message.requestId}:${message.channel}` };
      },
    };
    t = await startTestApp({
      providers: [webhookLike],
      channels: ['sms', 'voice'],
      deliveryReceipts: { webhook: { secret: WEBHOOK_SECRET } },
      fallbackPollIntervalMs: 0,
    });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('POST /otp/delivery-status/webhook: an undelivered report moves the code to voice', async () => {
    const phone = uniquePhone();
    const res = await t.http.post('/otp/send').send({ destination: phone }).expect(202);
    const body = JSON.stringify({
      requestId: res.body.requestId,
      channel: 'sms',
      status: 'undelivered',
      errorCode: 'carrier-rejected',
    });
    await t.http
      .post('/otp/delivery-status/webhook')
      .set('content-type', 'application/json')
      .set('X-OTP-Signature', signOtpWebhookPayload(body, WEBHOOK_SECRET))
      .send(body)
      .expect(204);
    const sent = capture.messages.filter((m) => m.destination === phone);
    expect(sent.map((m) => m.channel)).toEqual(['sms', 'voice']);
    expect(sent[1]?.code).toBe(sent[0]?.code);
    // Twilio's route is not configured here: it answers 404.
    const twilio = await t.http.post('/otp/delivery-status/twilio').type('form').send('a=b');
    expect(twilio.status).toBe(404);
  });
});
