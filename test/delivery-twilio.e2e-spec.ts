import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { randomBytes, randomUUID } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import type { OtpMessage } from '../src/otp/delivery/otp-provider.interface.js';
import {
  TwilioOtpProvider,
  type TwilioOtpProviderOptions,
} from '../src/otp/delivery/twilio.provider.js';
import type { OtpChannel } from '../src/otp/otp.types.js';
import { expectError } from './support/contract.js';
import {
  FakeTwilio,
  TWILIO_ERRORS,
  parseXml,
  type FakeTwilioRequest,
  type XmlElement,
} from './support/fake-twilio.js';
import { CapturingProvider, startTestApp, uniquePhone, type TestApp } from './support/test-app.js';

const ACCOUNT_SID = `AC${'0123456789abcdef'.repeat(2)}`;
const AUTH_TOKEN = randomBytes(16).toString('hex');
const FROM = '+14155550100';
const MESSAGING_SERVICE_SID = `MG${'fedcba9876543210'.repeat(2)}`;

/** Polls `check` until it holds (a socket's close lands a moment after the answer). */
async function eventually(check: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Asserts the request is what Twilio's API documents for `resource`, with exactly `fields`. */
function expectWellFormed(
  request: FakeTwilioRequest | undefined,
  resource: 'Messages' | 'Calls',
  fields: string[],
): FakeTwilioRequest {
  expect(request).toMatchObject({
    method: 'POST',
    path: `/2010-04-01/Accounts/${ACCOUNT_SID}/${resource}.json`,
    resource,
    authorized: true,
    problems: [],
  });
  expect(request?.contentType).toMatch(/^application\/x-www-form-urlencoded/);
  // Each field once: a repeated field would be a list to Twilio.
  expect(request?.fields.map(([name]) => name).sort()).toEqual([...fields].sort());
  return request as FakeTwilioRequest;
}

/** The code in an SMS body, a run of exactly `length` digits. */
function codeInSms(body: string | undefined, length: number): string {
  const found = new RegExp(`(?<!\\d)\\d{${length}}(?!\\d)`).exec(body ?? '');
  if (!found) throw new Error('no code in the SMS body');
  return found[0];
}

/**
 * Checks a call's TwiML (parseable; `<Response>` of `<Say>`s with a one-second `<Pause/>` between
 * them) and returns the texts it says.
 */
function spokenPhrases(twiml: string | undefined): string[] {
  const root = parseXml(twiml ?? '');
  expect(root.name).toBe('Response');
  const verbs = root.children.filter((c): c is XmlElement => typeof c !== 'string');
  expect(verbs.length).toBe(root.children.length);
  verbs.forEach((verb, i) => {
    if (i % 2 === 1) {
      expect(verb).toEqual({ name: 'Pause', attributes: { length: '1' }, children: [] });
    } else {
      expect(verb.name).toBe('Say');
      expect(verb.attributes).toEqual({ voice: 'alice', language: 'en-US' });
      expect(verb.children.every((c) => typeof c === 'string')).toBe(true);
    }
  });
  expect(verbs.length % 2).toBe(1);
  return verbs
    .filter((v) => v.name === 'Say')
    .map((v) => v.children.map((c) => (typeof c === 'string' ? c : '')).join(''));
}

/**
 * The code a call says, from its phrases: it must be said digit by digit (no run of two digits
 * anywhere), in exactly two phrases that say the same digits.
 */
function codeInCall(phrases: string[], length: number): string {
  for (const phrase of phrases) expect(phrase).not.toMatch(/\d\d/);
  const spelled = phrases
    .map((phrase) => (phrase.match(/\d/g) ?? []).join(''))
    .filter((digits) => digits.length === length);
  expect(spelled.length).toBe(2);
  expect(spelled[0]).toBe(spelled[1]);
  return spelled[0] as string;
}

/** A message as OtpDeliveryService hands it to a provider. */
function otpMessage(destination: string, channel: OtpChannel, code = '482913'): OtpMessage {
  const digits = code.split('').join(', ');
  return {
    requestId: randomUUID(),
    channel,
    destination,
    purpose: 'login',
    code,
    text: `Acme verification code is ${code}. It expires in 10 minutes. Do not share it.`,
    subject: `${code} is your Acme code`,
    html: `<p>${code}</p>`,
    speech: ['Acme verification code is', `${digits}.`, 'Again:', `${digits}.`, 'Goodbye.'],
    appName: 'Acme',
    expiresAt: new Date(Date.now() + 600_000),
  };
}

const never = (): AbortSignal => new AbortController().signal;

// Express only: the calls to Twilio are the same whatever platform serves the routes.
describe('TwilioOtpProvider', () => {
  let fake: FakeTwilio;
  const provider = (options: Partial<TwilioOtpProviderOptions> = {}): TwilioOtpProvider =>
    new TwilioOtpProvider({
      accountSid: ACCOUNT_SID,
      authToken: AUTH_TOKEN,
      from: FROM,
      apiUrl: fake.url,
      ...options,
    });

  beforeAll(async () => {
    fake = await FakeTwilio.start({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN });
  });
  afterAll(async () => {
    await fake.close();
  });

  describe('POST /otp/send (Twilio the only provider)', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await startTestApp({ channels: ['sms', 'voice'], providers: [provider()] });
    });
    afterAll(async () => {
      await t.close();
    });

    it('sends one SMS through the Messages API whose code verifies', async () => {
      const phone = uniquePhone();
      const res = await t.http.post('/otp/send').send({ destination: phone }).expect(202);
      expect(res.body.channel).toBe('sms');

      const [request, ...more] = fake.to(phone);
      expect(more).toEqual([]);
      expectWellFormed(request, 'Messages', ['To', 'From', 'Body']);
      expect(request?.form).toMatchObject({ To: phone, From: FROM });
      expect(request?.answered).toBe(201);
      const code = codeInSms(request?.form.Body, res.body.codeLength as number);

      await t.http.post('/otp/verify').send({ destination: phone, code }).expect(200);
    });

    it('calls through the Calls API with TwiML that says each digit, twice', async () => {
      const phone = uniquePhone();
      const res = await t.http
        .post('/otp/send')
        .send({ destination: phone, channel: 'voice' })
        .expect(202);
      expect(res.body.channel).toBe('voice');

      const [request, ...more] = fake.to(phone);
      expect(more).toEqual([]);
      expectWellFormed(request, 'Calls', ['To', 'From', 'Twiml']);
      expect(request?.form).toMatchObject({ To: phone, From: FROM });
      const code = codeInCall(spokenPhrases(request?.form.Twiml), res.body.codeLength as number);

      await t.http.post('/otp/verify').send({ destination: phone, code }).expect(200);
    });

    it('falls back to a call in the same send when Twilio refuses the SMS (21610)', async () => {
      const phone = uniquePhone();
      fake.failFor(phone, TWILIO_ERRORS.unsubscribed, 'Messages');
      const res = await t.http.post('/otp/send').send({ destination: phone }).expect(202);
      expect(res.body.channel).toBe('voice');

      const [sms, call, ...more] = fake.to(phone);
      expect(more).toEqual([]);
      expectWellFormed(sms, 'Messages', ['To', 'From', 'Body']);
      expect(sms?.answered).toBe(400);
      expectWellFormed(call, 'Calls', ['To', 'From', 'Twiml']);
      expect(call?.answered).toBe(201);
      const code = codeInCall(spokenPhrases(call?.form.Twiml), res.body.codeLength as number);

      await t.http.post('/otp/verify').send({ destination: phone, code }).expect(200);
    });

    it('answers 503 OTP_DELIVERY_FAILED when Twilio refuses both SMS and call (21211)', async () => {
      const phone = uniquePhone();
      fake.failFor(phone, TWILIO_ERRORS.invalidTo);
      const res = await t.http.post('/otp/send').send({ destination: phone });
      expectError(res, 503, 'OTP_DELIVERY_FAILED');
      expect(fake.to(phone).map((r) => [r.resource, r.answered])).toEqual([
        ['Messages', 400],
        ['Calls', 400],
      ]);
    });

    it('writes the app name XML-escaped into the TwiML', async () => {
      const app = await startTestApp({
        channels: ['sms', 'voice'],
        providers: [provider()],
        appName: `Q&A <Bank> "Tom's"`,
      });
      try {
        const phone = uniquePhone();
        await app.http.post('/otp/send').send({ destination: phone, channel: 'voice' }).expect(202);
        const twiml = fake.to(phone)[0]?.form.Twiml;
        expect(twiml).toContain('Q&amp;A &lt;Bank&gt; &quot;Tom&apos;s&quot;');
        expect(spokenPhrases(twiml).join(' ')).toContain(`Q&A <Bank> "Tom's"`);
      } finally {
        await app.close();
      }
    });
  });

  describe('POST /otp/send (Twilio, then a second SMS provider)', () => {
    let t: TestApp;
    const capture = new CapturingProvider();
    beforeAll(async () => {
      t = await startTestApp({ channels: ['sms', 'voice'], providers: [provider(), capture] });
    });
    afterAll(async () => {
      await t.close();
    });

    it('fails over to the next provider of the channel when Twilio answers 500', async () => {
      const phone = uniquePhone();
      fake.failFor(phone, TWILIO_ERRORS.internal, 'Messages');
      const res = await t.http.post('/otp/send').send({ destination: phone }).expect(202);
      expect(res.body.channel).toBe('sms');
      expect(fake.to(phone).map((r) => [r.resource, r.answered])).toEqual([['Messages', 500]]);

      const code = capture.lastCode(phone);
      await t.http.post('/otp/verify').send({ destination: phone, code }).expect(200);
    });
  });

  describe('POST /otp/send (a Twilio that does not answer)', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await startTestApp({
        channels: ['sms', 'voice'],
        providers: [provider()],
        deliveryTimeoutMs: 400,
      });
    });
    afterAll(async () => {
      await t.close();
    });

    it('abandons the SMS request at the delivery timeout and calls instead', async () => {
      const phone = uniquePhone();
      fake.hangFor(phone, 'Messages');
      const started = Date.now();
      const res = await t.http.post('/otp/send').send({ destination: phone }).expect(202);
      expect(res.body.channel).toBe('voice');
      expect(Date.now() - started).toBeLessThan(5_000);

      const [sms, call] = fake.to(phone);
      expect(call?.answered).toBe(201);
      // The request was not left running: the provider closed its connection.
      await eventually(() => sms?.abandoned === true);
      expect(sms?.answered).toBeUndefined();
    });
  });

  describe('deliver()', () => {
    it('sends through a Messaging Service when one is configured', async () => {
      const phone = uniquePhone();
      const viaService = provider({ from: undefined, messagingServiceSid: MESSAGING_SERVICE_SID });
      await viaService.deliver(otpMessage(phone, 'sms'), never());
      const request = expectWellFormed(fake.to(phone)[0], 'Messages', [
        'To',
        'MessagingServiceSid',
        'Body',
      ]);
      expect(request.form.MessagingServiceSid).toBe(MESSAGING_SERVICE_SID);
    });

    it('carries sms and voice with a from number, and only sms with a Messaging Service', () => {
      const withFrom = provider();
      const viaService = provider({ from: undefined, messagingServiceSid: MESSAGING_SERVICE_SID });
      expect(withFrom.name).toBe('twilio');
      expect([withFrom.supports('sms'), withFrom.supports('voice')]).toEqual([true, true]);
      expect([viaService.supports('sms'), viaService.supports('voice')]).toEqual([true, false]);
      expect([withFrom.supports('email'), viaService.supports('email')]).toEqual([false, false]);
    });

    it.each([
      ['21610', TWILIO_ERRORS.unsubscribed, /^twilio 21610: Attempt to send to unsubscribed/],
      ['21211', TWILIO_ERRORS.invalidTo, /^twilio 21211: Invalid 'To' Phone Number/],
      ['500', TWILIO_ERRORS.internal, /^twilio 20500: .*\(HTTP 500\)/],
    ])('rejects with the Twilio code of an error answer (%s)', async (_, error, pattern) => {
      const phone = uniquePhone();
      fake.failFor(phone, error);
      await expect(provider().deliver(otpMessage(phone, 'sms'), never())).rejects.toThrow(pattern);
    });

    it('rejects wrong credentials with Twilio 20003, never showing the token', async () => {
      const phone = uniquePhone();
      const wrongToken = randomBytes(16).toString('hex');
      const error = await provider({ authToken: wrongToken })
        .deliver(otpMessage(phone, 'sms'), never())
        .catch((e: unknown) => e as Error);
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toMatch(/^twilio 20003: Authenticate \(HTTP 401\)/);
      expect((error as Error).message).not.toContain(wrongToken);
      expect(fake.to(phone)[0]).toMatchObject({ authorized: false, answered: 401 });
    });

    it('keeps the token and the code out of the error even when Twilio echoes them', async () => {
      const phone = uniquePhone();
      const code = '739155';
      const basic = Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString('base64');
      fake.failFor(phone, { status: 400, code: 21211, message: `${code} ${AUTH_TOKEN} ${basic}` });
      const error = await provider()
        .deliver(otpMessage(phone, 'sms', code), never())
        .catch((e: unknown) => e as Error);
      expect((error as Error).message).toMatch(/^twilio 21211: /);
      for (const secret of [code, AUTH_TOKEN, basic]) {
        expect((error as Error).message).not.toContain(secret);
      }
    });

    it('abandons the request when its signal aborts', async () => {
      const phone = uniquePhone();
      fake.hangFor(phone);
      const controller = new AbortController();
      const delivery = provider().deliver(otpMessage(phone, 'voice'), controller.signal);
      await eventually(() => fake.to(phone).length === 1);
      const abortedAt = Date.now();
      controller.abort();
      await expect(delivery).rejects.toThrow('twilio request abandoned: the delivery timed out');
      await eventually(() => fake.to(phone)[0]?.abandoned === true);
      expect(Date.now() - abortedAt).toBeLessThan(1_000);
    });

    it('sends nothing when the signal has already aborted', async () => {
      const phone = uniquePhone();
      const controller = new AbortController();
      controller.abort();
      await expect(
        provider().deliver(otpMessage(phone, 'sms'), controller.signal),
      ).rejects.toThrow();
      expect(fake.to(phone)).toEqual([]);
    });
  });

  describe('constructor', () => {
    const valid: TwilioOtpProviderOptions = {
      accountSid: ACCOUNT_SID,
      authToken: AUTH_TOKEN,
      from: FROM,
    };

    it.each<[string, Partial<Record<keyof TwilioOtpProviderOptions, unknown>>, string]>([
      ['a token given as accountSid', { accountSid: AUTH_TOKEN }, 'accountSid'],
      ['a short accountSid', { accountSid: 'AC123' }, 'accountSid'],
      ['no authToken', { authToken: undefined }, 'authToken'],
      ['an empty authToken', { authToken: ' ' }, 'authToken'],
      ['neither from nor messagingServiceSid', { from: undefined }, 'exactly one of from'],
      ['both from and messagingServiceSid', { messagingServiceSid: MESSAGING_SERVICE_SID }, 'from'],
      ['a national from', { from: '(415) 555-0100' }, 'from must be'],
      ['the token as from', { from: AUTH_TOKEN }, 'from must be'],
      [
        'a bad messagingServiceSid',
        { from: undefined, messagingServiceSid: AUTH_TOKEN },
        'messagingServiceSid',
      ],
      ['an apiUrl that is no URL', { apiUrl: 'api.twilio.com' }, 'apiUrl'],
      ['an ftp apiUrl', { apiUrl: 'ftp://127.0.0.1/' }, 'apiUrl'],
      ['a voice with markup', { voice: '"><Hangup/>' }, 'voice'],
    ])('refuses %s, naming the option and never echoing the token', (_, change, named) => {
      let error: unknown;
      try {
        new TwilioOtpProvider({ ...valid, ...change } as TwilioOtpProviderOptions);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toMatch(/^TwilioOtpProvider: /);
      expect((error as Error).message).toContain(named);
      expect((error as Error).message).not.toContain(AUTH_TOKEN);
    });

    it('accepts a Messaging Service instead of a from number, and an http apiUrl', () => {
      expect(
        () =>
          new TwilioOtpProvider({
            accountSid: ACCOUNT_SID,
            authToken: AUTH_TOKEN,
            messagingServiceSid: MESSAGING_SERVICE_SID,
            apiUrl: 'http://127.0.0.1:8080/twilio/',
          }),
      ).not.toThrow();
    });
  });

  describe('without the twilio package', () => {
    it('loads, and fails a delivery with a message that names the package', async () => {
      await jest.isolateModulesAsync(async () => {
        jest.doMock('twilio', () => {
          throw Object.assign(new Error("Cannot find module 'twilio'"), {
            code: 'MODULE_NOT_FOUND',
          });
        });
        const isolated = await import('../src/otp/delivery/twilio.provider.js');
        const withoutTwilio = new isolated.TwilioOtpProvider({
          accountSid: ACCOUNT_SID,
          authToken: AUTH_TOKEN,
          from: FROM,
          apiUrl: fake.url,
        });
        await expect(
          withoutTwilio.deliver(otpMessage(uniquePhone(), 'sms'), never()),
        ).rejects.toThrow("needs the optional peer dependency 'twilio': run `npm install twilio`");
      });
      jest.dontMock('twilio');
    });

    it('declares no twilio type in its emitted declarations', () => {
      const here = dirname(fileURLToPath(import.meta.url));
      const file = join(here, '..', 'src', 'otp', 'delivery', 'twilio.provider.ts');
      const program = ts.createProgram([file], {
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        strict: true,
        skipLibCheck: true,
        types: ['node'],
        declaration: true,
        emitDeclarationOnly: true,
        outDir: join(here, '..', 'build', 'dts-check'),
      });
      let declarations = '';
      program.emit(
        program.getSourceFile(file),
        (name, text) => {
          if (name.endsWith('twilio.provider.d.ts')) declarations = text;
        },
        undefined,
        true,
      );
      expect(declarations).toContain('export declare class TwilioOtpProvider');
      expect(declarations).not.toMatch(/from ['"]twilio['"]|import\(['"]twilio['"]\)/);
    });
  });
});
