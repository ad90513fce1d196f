import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import request, { type Response } from 'supertest';
import { createExampleApp } from '../example/bootstrap.js';
import { wrongCode } from './support/contract.js';
import {
  CapturingProvider,
  testDatabaseUrl,
  uniqueEmail,
  uniquePhone,
} from './support/test-app.js';

/**
 * Issue 9, logs: the example app with nestjs-pino writes JSON lines with a request id, and whatever
 * full flows go through its routes, no code, no verification token and no unmasked destination
 * reaches a line. The app logs at `trace` into memory, so every line any level would write is read.
 */

// Long codes: a 6-digit code could turn up by chance inside a logged UUID or time; 8 digits do not.
const CODE_LENGTH = 8;

const lines: string[] = [];
const provider = new CapturingProvider();
let app: INestApplication;
const tokens: string[] = [];
const email = uniqueEmail();
const phone = uniquePhone();
const failing = uniquePhone();
const givenId = `logs-test-${randomUUID()}`;
let generatedId: string | undefined;
let replacedId: string | undefined;

const post = (
  path: string,
  body?: object,
  headers: Record<string, string> = {},
): Promise<Response> => {
  let req = request(app.getHttpServer()).post(path);
  for (const [name, value] of Object.entries(headers)) req = req.set(name, value);
  return body === undefined ? req : req.send(body);
};

/** Send, wrong code, right code (a token), the guarded route once, then the token replayed. */
async function fullFlow(destination: string, channel: string): Promise<void> {
  const sent = await post('/otp/send', { destination, channel });
  expect({ status: sent.status, channel: sent.body.channel }).toEqual({ status: 202, channel });
  const code = provider.lastCode(destination);
  expect(code).toMatch(new RegExp(`^\\d{${CODE_LENGTH}}$`));

  const wrong = await post('/otp/verify', { destination, code: wrongCode(code) });
  expect({ status: wrong.status, code: wrong.body.code }).toEqual({
    status: 401,
    code: 'OTP_INVALID',
  });
  const right = await post('/otp/verify', { destination, code });
  expect(right.status).toBe(200);
  const token = right.body.verificationToken as string;
  expect(typeof token).toBe('string');
  tokens.push(token);

  const guarded = await post('/example/protected', undefined, { 'X-OTP-Token': token });
  expect(guarded.status).toBe(200);
  const replayed = await post('/example/protected', undefined, { 'X-OTP-Token': token });
  expect({ status: replayed.status, code: replayed.body.code }).toEqual({
    status: 401,
    code: 'OTP_TOKEN_INVALID',
  });
}

interface Line {
  level: number;
  msg?: string;
  context?: string;
  req?: { id?: unknown; method?: string; url?: string; headers?: Record<string, unknown> };
  res?: { statusCode?: number };
}

const parsed = (): Line[] => lines.map((line) => JSON.parse(line) as Line);
/** pino-http's line at the end of each request ("request completed", or "request errored"). */
const requestLines = (): Line[] => parsed().filter((line) => line.res !== undefined);

beforeAll(async () => {
  app = await createExampleApp({
    databaseUrl: testDatabaseUrl(),
    otp: {
      hasher: 'hmac',
      hmacSecret: 'logs-test-secret-of-at-least-32-bytes!',
      throttleLimit: 10_000,
      codeLength: CODE_LENGTH,
      providers: [provider],
    },
    logging: { level: 'trace', stream: { write: (line: string) => void lines.push(line) } },
  });
  await app.init();

  await fullFlow(email, 'email');
  await fullFlow(phone, 'sms');

  // A delivery no provider can carry: the module logs it (a warning) inside the request.
  provider.failing.add('voice');
  const down = await post('/otp/send', { destination: failing, channel: 'voice' });
  expect({ status: down.status, code: down.body.code }).toEqual({
    status: 503,
    code: 'OTP_DELIVERY_FAILED',
  });

  // A request id given by a proxy, and one made up by the app.
  const given = await request(app.getHttpServer()).get('/health').set('X-Request-Id', givenId);
  expect(given.headers['x-request-id']).toBe(givenId);
  const made = await request(app.getHttpServer()).get('/health');
  generatedId = made.headers['x-request-id'];
  // One that is not a sane id (too long) is replaced, not logged.
  const odd = await request(app.getHttpServer())
    .get('/health')
    .set('X-Request-Id', 'x'.repeat(200));
  replacedId = odd.headers['x-request-id'];
}, 60_000);

afterAll(async () => {
  await app?.close();
});

// Express only: the example's nestjs-pino (pino-http) request logs are built on Express only.
describe('logs (nestjs-pino in the example app)', () => {
  it('logged something: one request line per request at least', () => {
    // 2 flows of 5 requests, the failed send, 3 health checks.
    expect(requestLines().length).toBeGreaterThanOrEqual(14);
  });

  it('writes JSON lines only', () => {
    for (const line of lines) {
      expect(line.endsWith('\n')).toBe(true);
      expect(() => void JSON.parse(line)).not.toThrow();
    }
  });

  it('gives every request line an id, the method, the URL and the status, and no body', () => {
    for (const line of requestLines()) {
      expect(typeof line.req?.id).toBe('string');
      expect(line.req?.method).toMatch(/^(GET|POST)$/);
      expect(typeof line.req?.url).toBe('string');
      expect(typeof line.res?.statusCode).toBe('number');
      expect(line.req).not.toHaveProperty('body');
      expect(line.res).not.toHaveProperty('body');
    }
  });

  it('honours an incoming X-Request-Id, echoes it, and logs it', () => {
    expect(requestLines().filter((line) => line.req?.id === givenId)).toHaveLength(1);
  });

  it('makes a UUID when none is given, echoes it, and logs it', () => {
    expect(generatedId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(requestLines().filter((line) => line.req?.id === generatedId)).toHaveLength(1);
  });

  it('replaces an incoming X-Request-Id that is not a sane id (200 characters) by a UUID', () => {
    expect(replacedId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(requestLines().filter((line) => line.req?.id === replacedId)).toHaveLength(1);
  });

  it("logs the module's own lines through the app's logger, inside the request", () => {
    const warning = parsed().find((line) => line.context === 'OtpDelivery');
    expect(warning).toBeDefined();
    expect(warning?.level).toBe(40);
    expect(typeof warning?.req?.id).toBe('string');
  });

  it('redacts the X-OTP-Token header', () => {
    const guarded = requestLines().filter((line) => line.req?.url === '/example/protected');
    expect(guarded.length).toBe(4);
    for (const line of guarded) expect(line.req?.headers?.['x-otp-token']).toBe('[Redacted]');
  });

  it('never logs a code, a token or an unmasked destination', () => {
    const text = lines.join('');
    const codes = provider.messages.map((m) => m.code);
    expect(codes.length).toBe(2);
    expect(tokens.length).toBe(2);
    const secrets: Record<string, string> = {};
    for (const code of codes) secrets[`the code ${code}`] = code;
    for (const code of codes) secrets[`the wrong code for ${code}`] = wrongCode(code);
    tokens.forEach((token, i) => (secrets[`token ${i + 1}`] = token));
    for (const destination of [email, phone, failing]) {
      secrets[destination] = destination;
      // A phone number without its +, or without its country code.
      if (destination.startsWith('+')) {
        secrets[`${destination} without +`] = destination.slice(1);
        secrets[`${destination} national`] = destination.slice(2);
      }
    }
    const leaked = Object.entries(secrets)
      .filter(([, secret]) => text.includes(secret))
      .map(([name]) => name);
    expect(leaked).toEqual([]);
  });
});
