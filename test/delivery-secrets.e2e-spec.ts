import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import request, { type Response } from 'supertest';
import { AppModule } from '../example/app.module.js';
import type { OtpMessage, OtpProvider } from '../src/otp/delivery/otp-provider.interface.js';
import { SmtpOtpProvider } from '../src/otp/delivery/smtp.provider.js';
import { TwilioOtpProvider } from '../src/otp/delivery/twilio.provider.js';
import { WebhookOtpProvider } from '../src/otp/delivery/webhook.provider.js';
import {
  OTP_WEBHOOK_SIGNATURE_HEADER,
  verifyOtpWebhookSignature,
} from '../src/otp/delivery/webhook-signature.js';
import type { OtpModuleOptionsInput } from '../src/otp/otp.options.js';
import { CapturingLogger, captureOutput, type OutputCapture } from './support/capturing-logger.js';
import { wrongCode } from './support/contract.js';
import { FakeTwilio, TWILIO_ERRORS } from './support/fake-twilio.js';
import { startSmtpSink, type SmtpSink } from './support/smtp-sink.js';
import { testDatabaseUrl, uniqueEmail, uniquePhone } from './support/test-app.js';

/**
 * Issue 8: "no credential and no code ever reaches a log or an error message". The example app runs
 * with real providers against local stand-ins, its Nest logger capturing every line at every level,
 * while process.stdout, process.stderr and the console are recorded too. Flows through the HTTP
 * routes succeed and fail in every way the providers know; then every captured byte is grepped for
 * every code sent, every verification token issued and every credential.
 */

// Long codes: a 6-digit code could turn up by chance inside a logged UUID; 8 digits do not.
const CODE_LENGTH = 8;
const TIMEOUT_MS = 300;
const hex = (bytes: number): string => randomBytes(bytes).toString('hex');

const HMAC_SECRET = `hmac-${hex(24)}`;
const SMTP_USER = `mailer-${hex(4)}`;
// Reserved characters, percent-encoded in the URL.
const SMTP_PASS = `Pw-${hex(12)}:/@%`;
const SMTP_WRONG_PASS = `Wrong-${hex(12)}`;
const TWILIO_SID = `AC${hex(16)}`;
const TWILIO_TOKEN = hex(16);
const TWILIO_WRONG_TOKEN = hex(16);
const WEBHOOK_SECRET = `whsec_${hex(24)}`;
const basic = (user: string, pass: string): string =>
  Buffer.from(`${user}:${pass}`).toString('base64');

/** Every credential a provider holds, in each form it travels in. */
const CREDENTIALS: Record<string, string> = {
  'the SMTP password': SMTP_PASS,
  'the SMTP password, percent-encoded': encodeURIComponent(SMTP_PASS),
  'the SMTP password, as AUTH PLAIN': Buffer.from(`\0${SMTP_USER}\0${SMTP_PASS}`).toString(
    'base64',
  ),
  'the wrong SMTP password': SMTP_WRONG_PASS,
  'the Twilio auth token': TWILIO_TOKEN,
  'the Twilio Basic credentials': basic(TWILIO_SID, TWILIO_TOKEN),
  'the wrong Twilio auth token': TWILIO_WRONG_TOKEN,
  'the wrong Twilio Basic credentials': basic(TWILIO_SID, TWILIO_WRONG_TOKEN),
  'the webhook secret': WEBHOOK_SECRET,
  'the HMAC secret': HMAC_SECRET,
};

const logger = new CapturingLogger();
let output: OutputCapture;
/** Every code the delivery service handed a provider, and every code a stand-in received. */
const codes = new Set<string>();
const standInCodes = new Set<string>();
const tokens = new Set<string>();
/** Every answer of the app: status, headers and body (an issued token masked, see `call`). */
const responses: { where: string; text: string }[] = [];

beforeAll(() => {
  output = captureOutput();
});
afterAll(() => {
  output?.restore();
});

/** Records the code of every message the provider is handed (the stand-in may never see it). */
function recorded<P extends OtpProvider>(provider: P): P {
  const deliver = provider.deliver.bind(provider);
  provider.deliver = (message: OtpMessage, signal: AbortSignal) => {
    codes.add(message.code);
    return deliver(message, signal);
  };
  return provider;
}

interface App {
  call(
    path: string,
    body?: object,
    headers?: Record<string, string>,
    method?: 'post' | 'get',
  ): Promise<Response>;
  close(): Promise<void>;
}

/** The example app with real providers and the capturing logger. */
async function startApp(otp: OtpModuleOptionsInput): Promise<App> {
  const app: INestApplication = await NestFactory.create<NestExpressApplication>(
    AppModule.register({
      databaseUrl: testDatabaseUrl(),
      otp: {
        hasher: 'hmac',
        hmacSecret: HMAC_SECRET,
        throttleLimit: 10_000,
        codeLength: CODE_LENGTH,
        appName: 'Acme',
        deliveryTimeoutMs: TIMEOUT_MS,
        ...otp,
      },
    }),
    { logger, abortOnError: false },
  );
  await app.init();
  const http = request(app.getHttpServer());
  return {
    async call(path, body, headers = {}, method = 'post') {
      let req = method === 'post' ? http.post(path) : http.get(path);
      for (const [name, value] of Object.entries(headers)) req = req.set(name, value);
      const res = body === undefined ? await req : await req.send(body);
      let text = res.text ?? '';
      // The one place a token belongs: the verify answer that issues it. Masked there, so the rest
      // of that answer is still checked.
      const issued: unknown = res.body?.verificationToken;
      if (path === '/otp/verify' && res.status === 200 && typeof issued === 'string') {
        tokens.add(issued);
        text = text.split(issued).join('[issued token]');
      }
      responses.push({
        where: `the answer to ${method.toUpperCase()} ${path} (${res.status})`,
        text: `${JSON.stringify(res.headers)}\n${text}`,
      });
      return res;
    },
    close: () => app.close(),
  };
}

/** Wrong code, right code, the token on the guarded route once, then refused when replayed. */
async function verifyAndUse(app: App, destination: string, code: string): Promise<void> {
  expect(code).toMatch(new RegExp(`^\\d{${CODE_LENGTH}}$`));
  const wrong = await app.call('/otp/verify', { destination, code: wrongCode(code) });
  expect({ status: wrong.status, code: wrong.body.code }).toEqual({
    status: 401,
    code: 'OTP_INVALID',
  });
  const right = await app.call('/otp/verify', { destination, code });
  expect(right.status).toBe(200);
  const token = right.body.verificationToken as string;
  expect(typeof token).toBe('string');

  const replayedCode = await app.call('/otp/verify', { destination, code });
  expect(replayedCode.status).toBeGreaterThanOrEqual(400);

  const guarded = await app.call('/example/protected', undefined, { 'X-OTP-Token': token });
  expect(guarded.status).toBe(200);
  expect(guarded.body.ok).toBe(true);
  const replayed = await app.call('/example/protected', undefined, { 'X-OTP-Token': token });
  expect({ status: replayed.status, code: replayed.body.code }).toEqual({
    status: 401,
    code: 'OTP_TOKEN_INVALID',
  });
  const tampered = await app.call('/example/protected', undefined, {
    'X-OTP-Token': `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`,
  });
  expect(tampered.status).toBe(401);
}

/** A send the providers could not carry: the contract's 503 OTP_DELIVERY_FAILED. */
async function sendFails(app: App, destination: string): Promise<void> {
  const res = await app.call('/otp/send', { destination });
  expect({ status: res.status, code: res.body.code }).toEqual({
    status: 503,
    code: 'OTP_DELIVERY_FAILED',
  });
}

/** A send that went through, and a status read of its request. */
async function sendSucceeds(app: App, destination: string, channel: string): Promise<void> {
  const res = await app.call('/otp/send', { destination });
  expect({ status: res.status, channel: res.body.channel }).toEqual({ status: 202, channel });
  const status = await app.call(
    `/otp/requests/${res.body.requestId as string}`,
    undefined,
    {},
    'get',
  );
  expect(status.status).toBe(200);
}

/** Greps every log line, every byte of output and every answer for every secret. */
function expectNoSecretAnywhere(): void {
  expect(codes.size).toBeGreaterThan(0);
  for (const code of codes) expect(code).toMatch(new RegExp(`^\\d{${CODE_LENGTH}}$`));
  for (const code of standInCodes) expect(codes).toContain(code);
  const secrets: [string, string][] = [
    ...Object.entries(CREDENTIALS),
    ...[...codes].map((c): [string, string] => [`a code sent (${c})`, c]),
    ...[...tokens].map((t): [string, string] => [`a verification token issued (${t})`, t]),
  ];
  for (const [, value] of secrets) expect(value.length).toBeGreaterThanOrEqual(CODE_LENGTH);

  const haystacks = [
    ...logger.entries.map((e, i) => ({ where: `log line ${i} (${e.level})`, text: e.text })),
    ...output.chunks.map((text, i) => ({ where: `stdout/stderr/console write ${i}`, text })),
    ...responses,
  ];
  const leaks: string[] = [];
  for (const { where, text } of haystacks) {
    const lower = text.toLowerCase();
    for (const [name, value] of secrets) {
      const at = lower.indexOf(value.toLowerCase());
      if (at >= 0) {
        const excerpt = text.slice(Math.max(0, at - 120), at + value.length + 40);
        leaks.push(`${name} in ${where}: …${excerpt}…`);
      }
    }
  }
  expect(leaks).toEqual([]);
}

/** The delivery failure warnings logged so far for one provider. */
const failures = (provider: string): string[] =>
  logger
    .at('warn')
    .filter((line) => new RegExp(`^delivery of request \\S+ by ${provider} over `).test(line));

// Express only: what reaches a log or an answer comes from the providers, whatever the platform.
describe('delivery secrets (issue 8): captured logs, output and answers', () => {
  it('captures the app logger and the process output', async () => {
    const app = await startApp({ providers: [new WebhookOtpProvider('http://127.0.0.1:9/')] });
    await app.close();
    // Nest's own start-up lines went to the capturing logger, not to the console.
    expect(logger.entries.length).toBeGreaterThan(0);
    const before = output.calls;
    process.stdout.write('');
    process.stderr.write('');
    expect(output.calls).toBe(before + 2);
  });

  it('no code, token or credential reaches a log, stdout or an error response (smtp)', async () => {
    const auth = { user: SMTP_USER, pass: SMTP_PASS };
    const sinks: SmtpSink[] = [];
    const sink = async (mode: 'accept' | 'reject-recipient' | 'reject-data' | 'stall') => {
      const started = await startSmtpSink({ auth, mode });
      sinks.push(started);
      return started;
    };
    const ok = await sink('accept');
    const refused = await sink('reject-recipient');
    const quoting = await sink('reject-data');
    const stalling = await sink('stall');
    // A server that expects SMTP_PASS, given SMTP_WRONG_PASS: 535 at AUTH.
    const wrongAuth = await sink('accept');
    const wrongAuthUrl = `smtp://${SMTP_USER}:${encodeURIComponent(SMTP_WRONG_PASS)}@127.0.0.1:${wrongAuth.port}?ignoreTLS=true`;
    expect(ok.url).toContain(encodeURIComponent(SMTP_PASS));
    const smtp = (url: string) =>
      recorded(new SmtpOtpProvider({ url, from: 'Acme <no-reply@acme.test>' }));

    try {
      // Every send fails four times (550, 554 quoting the subject, 535, no answer), then arrives.
      // One app at a time: two would register two default TypeORM data sources.
      const failingThenOk = await startApp({
        channels: ['email'],
        providers: [
          smtp(refused.url),
          smtp(quoting.url),
          smtp(wrongAuthUrl),
          smtp(stalling.url),
          smtp(ok.url),
        ],
      });
      try {
        const email = uniqueEmail();
        await sendSucceeds(failingThenOk, email, 'email');
        const mail = await ok.nextMail();
        expect(mail.user).toBe(SMTP_USER);
        const subject = mail.parsed.subject ?? '';
        const code = new RegExp(`\\b(\\d{${CODE_LENGTH}})\\b`).exec(subject)?.[1] as string;
        standInCodes.add(code);
        expect(mail.parsed.text).toContain(code);
        await verifyAndUse(failingThenOk, email, code);
      } finally {
        await failingThenOk.close();
      }

      const allFailing = await startApp({
        channels: ['email'],
        providers: [smtp(refused.url), smtp(quoting.url), smtp(stalling.url)],
      });
      try {
        await sendFails(allFailing, uniqueEmail());
      } finally {
        await allFailing.close();
      }
    } finally {
      await Promise.all(sinks.map((s) => s.close()));
    }
    expect(quoting.mails).toEqual([]);
    expect(wrongAuth.mails).toEqual([]);

    const warnings = failures('smtp');
    expect(warnings.some((w) => /failed: SMTP server answered 550/.test(w))).toBe(true);
    expect(warnings.some((w) => /failed: SMTP server answered 554/.test(w))).toBe(true);
    expect(warnings.some((w) => /failed: SMTP server answered 535/.test(w))).toBe(true);
    expect(warnings.some((w) => /failed: (no answer within|SMTP delivery aborted)/.test(w))).toBe(
      true,
    );
    expectNoSecretAnywhere();
  });

  it('no code, token or credential reaches a log, stdout or an error response (twilio)', async () => {
    const fake = await FakeTwilio.start({ accountSid: TWILIO_SID, authToken: TWILIO_TOKEN });
    const twilio = (authToken: string) =>
      recorded(
        new TwilioOtpProvider({
          accountSid: TWILIO_SID,
          authToken,
          from: '+14155550100',
          apiUrl: fake.url,
        }),
      );
    // Every attempt meets wrong credentials first (20003), then the right ones.
    const app = await startApp({
      channels: ['sms', 'voice'],
      providers: [twilio(TWILIO_WRONG_TOKEN), twilio(TWILIO_TOKEN)],
    });
    const smsCode = (phone: string): string => {
      const sms = fake.to(phone).find((r) => r.authorized && r.resource === 'Messages');
      const found = new RegExp(`(?<!\\d)\\d{${CODE_LENGTH}}(?!\\d)`).exec(sms?.form.Body ?? '');
      return found?.[0] as string;
    };
    const callCode = (phone: string): string => {
      const call = fake.to(phone).find((r) => r.authorized && r.resource === 'Calls');
      // The digits are said one by one, twice: the phrase that says CODE_LENGTH digits.
      const said = [...(call?.form.Twiml ?? '').matchAll(/<Say[^>]*>([^<]*)<\/Say>/g)]
        .map((m) => (m[1] ?? '').replace(/\D/g, ''))
        .filter((digits) => digits.length === CODE_LENGTH);
      expect(said).toHaveLength(2);
      return said[0] as string;
    };
    try {
      const plain = uniquePhone();
      await sendSucceeds(app, plain, 'sms');
      standInCodes.add(smsCode(plain));
      await verifyAndUse(app, plain, smsCode(plain));

      const unsubscribed = uniquePhone();
      fake.failFor(unsubscribed, TWILIO_ERRORS.unsubscribed, 'Messages');
      await sendSucceeds(app, unsubscribed, 'voice');
      standInCodes.add(callCode(unsubscribed));
      await verifyAndUse(app, unsubscribed, callCode(unsubscribed));

      const hanging = uniquePhone();
      fake.hangFor(hanging, 'Messages');
      await sendSucceeds(app, hanging, 'voice');
      standInCodes.add(callCode(hanging));

      const down = uniquePhone();
      fake.failFor(down, TWILIO_ERRORS.internal);
      await sendFails(app, down);

      // Twilio quoting the credentials back in its error text.
      const echoing = uniquePhone();
      fake.failFor(echoing, {
        status: 400,
        code: 21211,
        message: `Invalid 'To' ${TWILIO_TOKEN} ${basic(TWILIO_SID, TWILIO_TOKEN)}`,
      });
      await sendFails(app, echoing);
    } finally {
      await app.close();
      await fake.close();
    }
    // Every request of the fake carried a code; collect them all.
    for (const r of fake.requests) {
      const body = new RegExp(`(?<!\\d)\\d{${CODE_LENGTH}}(?!\\d)`).exec(r.form.Body ?? '');
      if (body) standInCodes.add(body[0]);
    }
    expect(fake.requests.some((r) => !r.authorized)).toBe(true);

    const warnings = failures('twilio');
    expect(warnings.some((w) => /failed: twilio 20003: Authenticate \(HTTP 401\)/.test(w))).toBe(
      true,
    );
    expect(warnings.some((w) => /over sms failed: twilio 21610: /.test(w))).toBe(true);
    expect(warnings.some((w) => /failed: twilio 20500: .*\(HTTP 500\)/.test(w))).toBe(true);
    expect(warnings.some((w) => /failed: twilio 21211: /.test(w))).toBe(true);
    expect(
      warnings.some((w) => /over sms failed: (no answer within|twilio request abandoned)/.test(w)),
    ).toBe(true);
    expectNoSecretAnywhere();
  });

  it('no code, token or credential reaches a log, stdout or an error response (webhook)', async () => {
    // Answers by the destination's local part: `fail-…` 500 quoting the request (body and
    // signature), `hang-…` never, any other 204 when the signature verifies, 401 otherwise.
    const hanging = new Set<ServerResponse>();
    /** The newest code posted for each destination. */
    const received = new Map<string, string>();
    const server: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        const posted = JSON.parse(raw.toString('utf8')) as { destination: string; code: string };
        standInCodes.add(posted.code);
        received.set(posted.destination, posted.code);
        const signature = req.headers[OTP_WEBHOOK_SIGNATURE_HEADER];
        if (posted.destination.startsWith('fail-')) {
          res
            .writeHead(500, { 'content-type': 'text/plain' })
            .end(`refused ${raw.toString('utf8')} signed ${String(signature)}`);
        } else if (posted.destination.startsWith('hang-')) {
          hanging.add(res);
        } else {
          const valid =
            typeof signature === 'string' &&
            verifyOtpWebhookSignature(raw, signature, WEBHOOK_SECRET);
          res.writeHead(valid ? 204 : 401).end();
        }
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/otp`;

    const app = await startApp({
      channels: ['email'],
      providers: [recorded(new WebhookOtpProvider(url, { secret: WEBHOOK_SECRET }))],
    });
    try {
      const email = uniqueEmail();
      await sendSucceeds(app, email, 'email');
      await verifyAndUse(app, email, received.get(email) as string);

      await sendFails(app, `fail-${uniqueEmail()}`);
      await sendFails(app, `hang-${uniqueEmail()}`);
    } finally {
      await app.close();
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }

    const warnings = failures('webhook');
    expect(warnings.some((w) => /failed: webhook answered 500/.test(w))).toBe(true);
    expect(warnings.some((w) => /failed: (no answer within|.*abort)/i.test(w))).toBe(true);
    expectNoSecretAnywhere();
  });
});
