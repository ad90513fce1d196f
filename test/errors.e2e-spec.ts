import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import { randomInt, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import request, { type Response } from 'supertest';
import { createExampleApp } from '../example/bootstrap.js';
import { createUniqueDatabase, dropDatabase, runOtpMigrations } from '../example/database.js';
import { WebhookOtpProvider } from '../src/otp/delivery/webhook.provider.js';
import { queryDatabase } from './support/coexistence-host.js';
import { withFailing, wrongCode } from './support/contract.js';
import {
  bootExampleApp,
  CapturingProvider,
  PLATFORMS,
  rowsFor,
  startTestApp,
  TEST_SECRET,
  type TestApp,
  uniqueEmail,
} from './support/test-app.js';

/**
 * The contract's error table, through the real example app: every error has the shape
 * `{ statusCode, code, message }`, never a 500 for bad input, and every 429 tells when to retry.
 */

/** An error in the contract's shape. */
function expectError(res: Response, status: number, code: string): void {
  expect({ status: res.status, code: res.body.code }).toEqual({ status, code });
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(res.body.statusCode).toBe(status);
  const message = res.body.message as unknown;
  expect(typeof message === 'string' || Array.isArray(message)).toBe(true);
}

/** A 429: `retryAfter` (whole seconds >= 1) in the body, the same in the Retry-After header. */
function expectRetryable(res: Response, code: string): number {
  expectError(res, 429, code);
  const retryAfter = res.body.retryAfter as number;
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(res.headers['retry-after']).toBe(String(retryAfter));
  return retryAfter;
}

/**
 * A valid, random US number. Not `uniquePhone()`: it yields an invalid number (exchange 0xx/1xx)
 * whenever its counter lands below 2,000,000, which depends on the worker's pid.
 */
const validPhone = (): string => `+1415${randomInt(2_000_000, 10_000_000)}`;

const ROUTES = ['/otp/send', '/otp/verify'] as const;
/** A valid body for each route, for a fresh destination. */
const validBody = (route: (typeof ROUTES)[number]): Record<string, unknown> =>
  route === '/otp/send'
    ? { destination: uniqueEmail() }
    : { destination: uniqueEmail(), code: '123456' };

describe.each(PLATFORMS)('request validation on %s', (platform) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({}, { platform });
  });
  afterAll(async () => {
    await t.close();
  });

  const rawJson = (route: string, body: string): Promise<Response> =>
    t.http.post(route).set('Content-Type', 'application/json').send(body);

  describe.each(ROUTES)('POST %s', (route) => {
    it('answers malformed JSON with 400 VALIDATION_FAILED', async () => {
      expectError(
        await rawJson(route, '{"destination": "a@example.com",'),
        400,
        'VALIDATION_FAILED',
      );
      expectError(await rawJson(route, "{'destination': 1}"), 400, 'VALIDATION_FAILED');
    });

    it('refuses an unknown field and writes nothing', async () => {
      const body = validBody(route);
      const res = await t.http.post(route).send({ ...body, admin: true });
      expectError(res, 400, 'VALIDATION_FAILED');
      expect(await rowsFor(body.destination as string)).toHaveLength(0);
    });

    it.each([
      ['a number', 15551234567],
      ['an array', ['a@example.com']],
      ['an object', { email: 'a@example.com' }],
      ['null', null],
      ['a boolean', true],
    ])('refuses a destination that is %s', async (_kind, destination) => {
      const res = await t.http.post(route).send({ ...validBody(route), destination });
      expectError(res, 400, 'VALIDATION_FAILED');
    });

    it.each([
      ['a JSON array', '[]'],
      ['an array holding a valid body', JSON.stringify([{ destination: 'a@example.com' }])],
      ['a JSON string', '"a@example.com"'],
      ['null', 'null'],
      ['a number', '42'],
      ['an empty object', '{}'],
    ])('answers a whole body that is %s with 400, never 500', async (_kind, body) => {
      expectError(await rawJson(route, body), 400, 'VALIDATION_FAILED');
    });

    it('answers a body over 16 KiB with 413 PAYLOAD_TOO_LARGE', async () => {
      const body: Record<string, unknown> = { ...validBody(route), padding: 'x'.repeat(17 * 1024) };
      const res = await t.http.post(route).send(body);
      expectError(res, 413, 'PAYLOAD_TOO_LARGE');
      expect(await rowsFor(body.destination as string)).toHaveLength(0);
    });

    it.each([
      ['uppercase', 'Login'],
      ['a leading digit', '1abc'],
      ['65 characters', `a${'b'.repeat(64)}`],
      ['a space', 'log in'],
      ['an empty string', ''],
      ['a number', 7],
      ['null', null],
    ])('refuses a purpose with %s', async (_kind, purpose) => {
      const body: Record<string, unknown> = { ...validBody(route), purpose };
      expectError(await t.http.post(route).send(body), 400, 'VALIDATION_FAILED');
      expect(await rowsFor(body.destination as string)).toHaveLength(0);
    });

    it.each([
      ['a NUL', 'user\u0000@example.com'],
      ['a newline', 'user\n@example.com'],
      ['a bell', '\u0007user@example.com'],
      ['a right-to-left mark', '\u200fuser@example.com'],
      ['a right-to-left override', 'user\u202e@example.com'],
      ['a zero-width space', 'us\u200ber@example.com'],
      // Half a surrogate pair: not text at all. validator.js's isEmail ran encodeURI on it, which
      // threw (a 500) before the module refused it.
      ['half a surrogate pair', 'us\ud800er@example.com'],
      ['half a surrogate pair in the domain', 'user@exam\udc00ple.com'],
      ['a right-to-left mark in a phone', '+1415\u200f5550123'],
      ['10,000 characters', `${'a'.repeat(10_000 - 12)}@example.com`],
      ['an address over 254 characters', `${'a'.repeat(64)}@${'b'.repeat(190)}.com`],
      ['no @ and no digits', 'not-an-address'],
      ['letters in a phone', '+1 415 555 CALL'],
    ])('refuses a destination with %s', async (_kind, destination) => {
      const body = { ...validBody(route), destination };
      expectError(await t.http.post(route).send(body), 400, 'VALIDATION_FAILED');
    });
  });

  it('accepts a purpose of 64 characters, the longest allowed', async () => {
    const purpose = `a${'b'.repeat(63)}`;
    const res = await t.http.post('/otp/send').send({ destination: uniqueEmail(), purpose });
    expect(res.status).toBe(202);
    expect(res.body.purpose).toBe(purpose);
  });

  it('refuses a premium-rate number with 400 OTP_DESTINATION_NOT_ALLOWED', async () => {
    const res = await t.http.post('/otp/send').send({ destination: '+1 900 555 1234' });
    expectError(res, 400, 'OTP_DESTINATION_NOT_ALLOWED');
    expect(await rowsFor('+19005551234')).toHaveLength(0);
    expect(t.provider.messages.some((m) => m.destination === '+19005551234')).toBe(false);
  });

  it("leaves unknown routes to the host: Nest's own 404, not rewritten by the module", async () => {
    for (const res of [
      await t.http.get('/no/such/route'),
      await t.http.post('/otp/nope').send({ destination: uniqueEmail() }),
      await t.http.delete('/otp/send'),
    ]) {
      expect(res.status).toBe(404);
      expect(res.body).toMatchObject({ statusCode: 404, error: 'Not Found' });
      expect(res.body.code).toBeUndefined();
    }
  });
});

describe.each(PLATFORMS)('POST /otp/send with allowedCountries on %s', (platform) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ allowedCountries: ['US'] }, { platform });
  });
  afterAll(async () => {
    await t.close();
  });

  it('refuses a number from another country with 400 OTP_DESTINATION_NOT_ALLOWED', async () => {
    const res = await t.http.post('/otp/send').send({ destination: '+44 7400 123456' });
    expectError(res, 400, 'OTP_DESTINATION_NOT_ALLOWED');
    expect(await rowsFor('+447400123456')).toHaveLength(0);
    expect(t.provider.messages).toHaveLength(0);
  });

  it('accepts a number from an allowed country', async () => {
    const phone = validPhone();
    const res = await t.http.post('/otp/send').send({ destination: phone });
    expect(res.status).toBe(202);
    expect(res.body.channel).toBe('sms');
  });
});

describe.each(PLATFORMS)('per-IP throttling on %s', (platform) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ throttleLimit: 3, throttleTtlSeconds: 60 }, { platform });
  });
  afterAll(async () => {
    await t.close();
  });

  it('answers the 4th request on the OTP routes with 429 RATE_LIMITED', async () => {
    const email = uniqueEmail();
    const first = await t.http.post('/otp/send').send({ destination: email });
    expect(first.status).toBe(202);
    const second = await t.http.post('/otp/verify').send({ destination: email, code: '000000' });
    expect(second.status).not.toBe(429);
    const third = await t.http.get(`/otp/requests/${first.body.requestId as string}`);
    expect(third.status).toBe(200);
    // The per-IP budget is not advertised on any answer.
    for (const res of [first, second, third]) {
      expect(Object.keys(res.headers).filter((h) => /ratelimit/i.test(h))).toEqual([]);
    }

    const other = uniqueEmail();
    const fourth = await t.http.post('/otp/send').send({ destination: other });
    const retryAfter = expectRetryable(fourth, 'RATE_LIMITED');
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(Object.keys(fourth.headers).filter((h) => /ratelimit|retry-after-/i.test(h))).toEqual(
      [],
    );
    // Refused before it reached the service.
    expect(await rowsFor(other)).toHaveLength(0);
    expectRetryable(
      await t.http.get(`/otp/requests/${first.body.requestId as string}`),
      'RATE_LIMITED',
    );
  });
});

describe.each(PLATFORMS)('every 429 on %s', (platform) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({}, { platform });
  });
  afterAll(async () => {
    await t.close();
  });

  const send = (destination: string, purpose = 'login'): Promise<Response> =>
    t.http.post('/otp/send').send({ destination, purpose });
  const guess = (destination: string): Promise<Response> =>
    t.http
      .post('/otp/verify')
      .send({ destination, code: wrongCode(t.provider.lastCode(destination)) });

  const producers: [string, () => Promise<Response>][] = [
    [
      'OTP_RESEND_COOLDOWN',
      async () => {
        const email = uniqueEmail();
        await send(email);
        return send(email);
      },
    ],
    [
      'OTP_SEND_LIMIT',
      async () => {
        const email = uniqueEmail();
        for (const purpose of ['a', 'b', 'c', 'd', 'e']) await send(email, purpose);
        return send(email, 'f');
      },
    ],
    [
      'OTP_ATTEMPTS_EXCEEDED',
      async () => {
        const email = uniqueEmail();
        await send(email);
        await guess(email);
        await guess(email);
        return guess(email);
      },
    ],
    [
      'OTP_LOCKED',
      async () => {
        const email = uniqueEmail();
        await send(email);
        for (let i = 0; i < 3; i++) await guess(email);
        return send(email, 'other');
      },
    ],
    [
      'RATE_LIMITED',
      async () => {
        const throttled = await startTestApp({ throttleLimit: 1 }, { platform });
        try {
          await throttled.http.get('/otp/requests/unknown');
          return await throttled.http.get('/otp/requests/unknown');
        } finally {
          await throttled.close();
        }
      },
    ],
  ];

  it.each(producers)('%s carries retryAfter and a Retry-After header', async (code, produce) => {
    expectRetryable(await produce(), code);
  });
});

describe.each(PLATFORMS)('POST /otp/send delivery failure on %s', (platform) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({}, { platform });
  });
  afterAll(async () => {
    await t.close();
  });

  it('answers 503 OTP_DELIVERY_FAILED when every channel fails, leaving no active code', async () => {
    const phone = validPhone();
    const res = await withFailing(t, ['sms', 'voice'], () =>
      t.http.post('/otp/send').send({ destination: phone }),
    );
    expectError(res, 503, 'OTP_DELIVERY_FAILED');
    const rows = await rowsFor(phone);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ delivery_status: 'failed', code_hash: null });
    const verify = await t.http.post('/otp/verify').send({ destination: phone, code: '123456' });
    expectError(verify, 410, 'OTP_EXPIRED');
  });

  it('falls back to voice when only sms fails', async () => {
    const phone = validPhone();
    const res = await withFailing(t, ['sms'], () =>
      t.http.post('/otp/send').send({ destination: phone }),
    );
    expect(res.status).toBe(202);
    expect(res.body.channel).toBe('voice');
  });
});

// Express only: what is tested is the provider's delivery, the same whatever serves the routes.
describe('WebhookOtpProvider', () => {
  type Mode = 'ok' | 'error' | 'silent';
  let mode: Mode = 'ok';
  const received: unknown[] = [];
  const held: ServerResponse[] = [];
  let server: Server;
  let app: INestApplication;
  let http: ReturnType<typeof request>;

  beforeAll(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        if (mode === 'ok') res.writeHead(204).end();
        else if (mode === 'error') res.writeHead(500).end('provider down');
        else held.push(res); // never answers
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    app = await createExampleApp(
      {
        databaseUrl: process.env.TEST_DATABASE_URL ?? '',
        otp: {
          hasher: 'hmac',
          hmacSecret: TEST_SECRET,
          throttleLimit: 10_000,
          deliveryTimeoutMs: 300,
          providers: [new WebhookOtpProvider(`http://127.0.0.1:${port}/otp`)],
        },
      },
      { logger: false },
    );
    await app.init();
    http = request(app.getHttpServer());
  });
  afterAll(async () => {
    await app.close();
    for (const res of held) res.destroy();
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });

  const lastPosted = (): Record<string, unknown> =>
    received[received.length - 1] as Record<string, unknown>;

  it('posts exactly the contract fields, with a code that verifies', async () => {
    mode = 'ok';
    const email = uniqueEmail();
    const sent = await http.post('/otp/send').send({ destination: `  ${email.toUpperCase()} ` });
    expect(sent.status).toBe(202);

    const posted = lastPosted();
    expect(Object.keys(posted).sort()).toEqual(
      ['channel', 'code', 'destination', 'expiresAt', 'message', 'purpose', 'requestId'].sort(),
    );
    expect(posted).toMatchObject({
      requestId: sent.body.requestId,
      channel: 'email',
      destination: email,
      purpose: 'login',
      expiresAt: sent.body.expiresAt,
    });
    expect(posted.code).toMatch(/^[0-9]{6}$/);
    expect(posted.message).toContain(posted.code);

    const verified = await http.post('/otp/verify').send({ destination: email, code: posted.code });
    expect(verified.status).toBe(200);
    expect(verified.body.verified).toBe(true);
  });

  it('answers 503 OTP_DELIVERY_FAILED when the webhook answers 500, leaving no active code', async () => {
    mode = 'error';
    const email = uniqueEmail();
    const sent = await http.post('/otp/send').send({ destination: email });
    expectError(sent, 503, 'OTP_DELIVERY_FAILED');

    const posted = lastPosted();
    expect(posted.destination).toBe(email);
    const rows = await rowsFor(email);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ delivery_status: 'failed', code_hash: null });
    // The code did reach the webhook, yet it must not verify.
    const verify = await http.post('/otp/verify').send({ destination: email, code: posted.code });
    expectError(verify, 410, 'OTP_EXPIRED');
  });

  it('answers 503 when the webhook never answers, bounded by deliveryTimeoutMs', async () => {
    mode = 'silent';
    const email = uniqueEmail();
    // Bounded well below the 5 s default timeout: a hang or the default would fail this request.
    const sent = await http.post('/otp/send').send({ destination: email }).timeout(4000);
    expectError(sent, 503, 'OTP_DELIVERY_FAILED');
    expect(lastPosted().destination).toBe(email);
    const rows = await rowsFor(email);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ delivery_status: 'failed', code_hash: null });
  });
});

describe.each(PLATFORMS)('database unavailable on %s', (platform) => {
  const adminUrl = process.env.TEST_ADMIN_DATABASE_URL ?? '';
  let databaseUrl: string;
  let databaseName: string;
  let admin: pg.Client;
  let app: INestApplication;
  let provider: CapturingProvider;

  beforeAll(async () => {
    databaseUrl = await createUniqueDatabase(adminUrl, 'nest_otp_outage');
    databaseName = decodeURIComponent(new URL(databaseUrl).pathname.slice(1));
    await runOtpMigrations(databaseUrl);
    admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    provider = new CapturingProvider();
    app = await bootExampleApp(
      {
        databaseUrl,
        otp: {
          hasher: 'hmac',
          hmacSecret: TEST_SECRET,
          throttleLimit: 10_000,
          providers: [provider],
        },
      },
      platform,
    );
  });
  afterAll(async () => {
    await admin
      .query(`ALTER DATABASE ${pg.escapeIdentifier(databaseName)} WITH ALLOW_CONNECTIONS true`)
      .catch(() => undefined);
    await app.close();
    await admin.end();
    await dropDatabase(adminUrl, databaseUrl);
  });

  /** Rows of the outage database (the app's own), by destination. */
  async function outageRows(destination: string): Promise<Record<string, unknown>[]> {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      return (
        await client.query('SELECT * FROM otp_requests WHERE destination = $1', [destination])
      ).rows as Record<string, unknown>[];
    } finally {
      await client.end();
    }
  }

  it('answers 503 SERVICE_UNAVAILABLE when the server rolls a statement back (deadlock, serialization), writing nothing', async () => {
    const http = request(app.getHttpServer());
    const sqlstates = ['40P01', '40001'];
    // Codes sent before the trigger below exists, one for each SQLSTATE it raises.
    const sent = sqlstates.map(
      (state) => `rollback-${state.toLowerCase()}-${randomUUID()}@example.com`,
    );
    for (const destination of sent) {
      expect((await http.post('/otp/send').send({ destination })).status).toBe(202);
    }
    // Stands for a deadlock or a serialization failure: Postgres raises it and rolls the statement
    // back. It reads which from the destination (lower-case, as destinations are stored).
    const rollback = (sql: string) => queryDatabase(databaseUrl, sql);
    await rollback(`CREATE FUNCTION rolled_back() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'rolled back' USING ERRCODE = upper(split_part(NEW.destination, '-', 2));
      END $$`);
    await rollback(`CREATE TRIGGER rolled_back BEFORE INSERT OR UPDATE ON otp_requests
      FOR EACH ROW WHEN (NEW.destination LIKE 'rollback-%') EXECUTE FUNCTION rolled_back()`);
    try {
      for (const [i, state] of sqlstates.entries()) {
        const fresh = `rollback-${state.toLowerCase()}-${randomUUID()}@example.com`;
        const refused = [
          await http.post('/otp/send').send({ destination: fresh }),
          await http
            .post('/otp/verify')
            .send({ destination: sent[i], code: provider.lastCode(sent[i] as string) }),
        ];
        for (const res of refused) {
          expectError(res, 503, 'SERVICE_UNAVAILABLE');
          expect(res.headers['retry-after']).toBe(String(res.body.retryAfter));
        }
        expect(await outageRows(fresh)).toHaveLength(0);
        expect(await outageRows(sent[i] as string)).toMatchObject([
          { attempts_used: 0, verified_at: null },
        ]);
      }
    } finally {
      await rollback('DROP TRIGGER IF EXISTS rolled_back ON otp_requests');
      await rollback('DROP FUNCTION IF EXISTS rolled_back()');
    }
    // Once the server lets them through, the same codes verify.
    for (const destination of sent) {
      const res = await http
        .post('/otp/verify')
        .send({ destination, code: provider.lastCode(destination) });
      expect(res.status).toBe(200);
    }
  });

  it('answers 503 SERVICE_UNAVAILABLE while the database is gone, then recovers', async () => {
    const http = request(app.getHttpServer());
    const before = uniqueEmail();
    expect((await http.post('/otp/send').send({ destination: before })).status).toBe(202);
    const code = provider.lastCode(before);

    const name = pg.escapeIdentifier(databaseName);
    await admin.query(`ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS false`);
    await admin.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE datname = $1 AND pid <> pg_backend_pid()`,
      [databaseName],
    );

    const during = uniqueEmail();
    const refused: Response[] = [];
    for (let i = 0; i < 3; i++)
      refused.push(await http.post('/otp/send').send({ destination: during }));
    refused.push(await http.post('/otp/verify').send({ destination: before, code }));
    for (const res of refused) {
      expectError(res, 503, 'SERVICE_UNAVAILABLE');
      // When to try again, in the body and the header alike.
      expect(res.body.retryAfter).toBeGreaterThanOrEqual(1);
      expect(res.headers['retry-after']).toBe(String(res.body.retryAfter));
    }

    await admin.query(`ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS true`);
    // Nothing half-written: no row for the refused sends, no attempt used on the earlier code.
    expect(await outageRows(during)).toHaveLength(0);
    expect(await outageRows(before)).toMatchObject([{ attempts_used: 0, verified_at: null }]);

    // The app reconnects by itself.
    expect((await http.post('/otp/send').send({ destination: during })).status).toBe(202);
    expect((await http.post('/otp/verify').send({ destination: before, code })).status).toBe(200);
  });
});
