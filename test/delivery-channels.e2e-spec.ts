import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { OtpService } from '../src/index.js';
import {
  PLATFORMS,
  rowsFor,
  startTestApp,
  type TestApp,
  travel,
  uniqueEmail,
  uniquePhone,
} from './support/test-app.js';

/** Channel choice, messages people can use, and the SMS-pumping guards, through the real routes. */
describe.each(PLATFORMS)('POST /otp/send: channels and messages on %s', (platform) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(
      {
        appName: 'Acme',
        webOtpDomain: 'acme.test',
        messages: {
          fr: {
            sms: '{code}\nCode {appName}. Il expire dans {minutes} min.',
            purposes: { pay: { sms: '{code}\nCode de paiement {appName}.' } },
          },
        },
      },
      { platform },
    );
  });
  afterAll(async () => {
    await t.close();
  });

  it('offers fallbackChannel (voice) once two sends of the flow went out by SMS, and the client can pick it', async () => {
    const phone = uniquePhone();
    const first = await t.http.post('/otp/send').send({ destination: phone });
    expect(first.status).toBe(202);
    expect(first.body.channel).toBe('sms');
    expect(first.body).not.toHaveProperty('fallbackChannel');

    await travel(phone, 31);
    const second = await t.http.post('/otp/send').send({ destination: phone });
    expect(second.status).toBe(202);
    expect(second.body.fallbackChannel).toBe('voice');

    await travel(phone, 61);
    const call = await t.http.post('/otp/send').send({ destination: phone, channel: 'voice' });
    expect(call.status).toBe(202);
    expect(call.body.channel).toBe('voice');
    // One voice send so far: nothing more to offer yet.
    expect(call.body).not.toHaveProperty('fallbackChannel');
    const spoken = t.provider.messages.at(-1);
    expect(spoken?.channel).toBe('voice');
    const code = t.provider.lastCode(phone);
    const digits = code.split('').join(', ');
    expect(spoken?.speech.filter((phrase) => phrase.includes(digits))).toHaveLength(2);
    const verified = await t.http.post('/otp/verify').send({ destination: phone, code });
    expect(verified.status).toBe(200);
  });

  it('writes an SMS with the code alone on its first line and the WebOTP line last', async () => {
    const phone = uniquePhone();
    expect((await t.http.post('/otp/send').send({ destination: phone })).status).toBe(202);
    const message = t.provider.messages.at(-1);
    const lines = message?.text.split('\n') ?? [];
    expect(lines[0]).toBe(message?.code);
    expect(lines.at(-1)).toBe(`@acme.test #${message?.code}`);
    expect(message?.text.length).toBeLessThanOrEqual(160);
  });

  it('writes in the Accept-Language locale, with the purpose override, else English', async () => {
    const fr = uniquePhone();
    await t.http.post('/otp/send').set('Accept-Language', 'fr-CA,fr;q=0.9,en;q=0.5').send({
      destination: fr,
    });
    expect(t.provider.messages.at(-1)?.text).toContain('Code Acme. Il expire dans 5 min.');

    const pay = uniquePhone();
    await t.http
      .post('/otp/send')
      .set('Accept-Language', 'fr')
      .send({ destination: pay, purpose: 'pay' });
    expect(t.provider.messages.at(-1)?.text).toContain('Code de paiement Acme.');

    const de = uniqueEmail();
    await t.http.post('/otp/send').set('Accept-Language', 'de').send({ destination: de });
    const email = t.provider.messages.at(-1);
    expect(email?.subject).toBe(`${email?.code} is your Acme verification code`);
  });

  it.each([
    ['premium rate (+1 900)', '+1 900 555 1234'],
    ['UAN (+44 55)', '+44 55 1234 5678'],
    ['pager (+44 7640)', '+44 7640 123456'],
    ['shared cost (+61 1300)', '+61 1300 123 456'],
  ])(
    'refuses a %s number with 400 OTP_DESTINATION_NOT_ALLOWED, storing and sending nothing',
    async (_name, raw) => {
      const before = t.provider.messages.length;
      const res = await t.http.post('/otp/send').send({ destination: raw });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('OTP_DESTINATION_NOT_ALLOWED');
      expect(t.provider.messages).toHaveLength(before);
      const e164 = raw.replace(/[^+\d]/g, '');
      expect(await rowsFor(e164)).toHaveLength(0);
    },
  );
});

describe.each(PLATFORMS)('POST /otp/send: a provider that always fails on %s', (platform) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ maxSendsPerHour: 3 }, { platform });
    t.provider.failing.add('email');
  });
  afterAll(async () => {
    await t.close();
  });

  it('answers 503 OTP_DELIVERY_FAILED with no cooldown, and still stops at the send cap', async () => {
    const email = uniqueEmail();
    const statuses: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await t.http.post('/otp/send').send({ destination: email });
      statuses.push(`${res.status} ${res.body.code as string}`);
    }
    // No cooldown between failed sends; the hourly cap of 3 still counts them.
    expect(statuses).toEqual([
      '503 OTP_DELIVERY_FAILED',
      '503 OTP_DELIVERY_FAILED',
      '503 OTP_DELIVERY_FAILED',
      '429 OTP_SEND_LIMIT',
    ]);
    const rows = await rowsFor(email);
    expect(rows.map((r) => [r.delivery_status, r.code_hash])).toEqual([
      ['failed', null],
      ['failed', null],
      ['failed', null],
    ]);
  });
});

describe.each(PLATFORMS)('fallbackEmail: SMS → voice → email in one send, on %s', (platform) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({}, { platform });
  });
  afterAll(async () => {
    await t.close();
  });

  it('records which provider carried each code', async () => {
    const email = uniqueEmail();
    expect((await t.http.post('/otp/send').send({ destination: email })).status).toBe(202);
    const [row] = await rowsFor(email);
    expect(row).toMatchObject({ channel: 'email', delivered_by: 'capture', delivered_to: null });
  });

  it('sends the same code to the account email when every phone channel fails, and it verifies for the phone', async () => {
    t.provider.failing.add('sms');
    t.provider.failing.add('voice');
    try {
      const phone = uniquePhone();
      const account = `Account-${uniqueEmail()}`;
      const result = await t.app
        .get(OtpService)
        .send({ destination: phone, fallbackEmail: account });
      expect(result.channel).toBe('email');
      expect(result.destination).toMatch(/^a•••@example\.com$/);
      const message = t.provider.messages.at(-1);
      expect(message).toMatchObject({ channel: 'email', destination: account.toLowerCase() });
      const [row] = await rowsFor(phone);
      expect(row).toMatchObject({
        id: result.requestId,
        channel: 'email',
        delivered_by: 'capture',
        delivered_to: account.toLowerCase(),
      });
      const verified = await t.http
        .post('/otp/verify')
        .send({ destination: phone, code: message?.code });
      expect(verified.status).toBe(200);
    } finally {
      t.provider.failing.clear();
    }
  });

  it('POST /otp/send: refuses fallbackEmail from the request body (anyone could redirect a code)', async () => {
    const phone = uniquePhone();
    const res = await t.http
      .post('/otp/send')
      .send({ destination: phone, fallbackEmail: uniqueEmail() });
    expect(res.status).toBe(400);
    expect(res.body.message).toContain('property fallbackEmail should not exist');
    expect(await rowsFor(phone)).toHaveLength(0);
  });

  it('refuses a fallbackEmail that is not an email, before anything is stored', async () => {
    const phone = uniquePhone();
    await expect(
      t.app.get(OtpService).send({ destination: phone, fallbackEmail: uniquePhone() }),
    ).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(await rowsFor(phone)).toHaveLength(0);
  });
});
