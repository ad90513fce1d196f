import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import type { Response } from 'supertest';
import { createUniqueDatabase, dropDatabase, runOtpMigrations } from '../example/database.js';
import { createThrottleRedis } from '../example/example.config.js';
import { RedisThrottlerStorage } from '../src/index.js';
import { startRedisServer, type RedisServer } from './support/redis-server.js';
import { describeWithRedisServer } from './support/services.js';
import { startTestApp, type TestApp } from './support/test-app.js';

/**
 * `GET /health` of the example app (terminus, with `OtpHealthIndicator`): 200 while what it checks
 * is there, 503 once it is stopped, and 200 again when it is back. Each scenario stops things of
 * its own: a database of its own (refusing connections, a table renamed), a Redis server of its
 * own (killed), never the shared ones.
 */

const adminUrl = (): string => process.env.TEST_ADMIN_DATABASE_URL as string;

const UP = { status: 'up', database: 'up', migrations: 'applied' };

function expectHealthy(res: Response, info: Record<string, unknown> = { otp: UP }): void {
  expect({ status: res.status, body: res.body }).toEqual({
    status: 200,
    body: { status: 'ok', info, error: {}, details: info },
  });
}

function expectDown(res: Response, error: Record<string, unknown>): void {
  expect(res.status).toBe(503);
  expect(res.body).toMatchObject({ status: 'error', error, details: error });
}

/** Polls until the check answers 200 (reconnects happen in the background). */
async function eventuallyHealthy(app: TestApp, within = 15_000): Promise<Response> {
  const deadline = Date.now() + within;
  for (;;) {
    const res = await app.http.get('/health');
    if (res.status === 200 || Date.now() > deadline) return res;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

// Express only: the example's own terminus route, not one of the module's.
describe('GET /health', () => {
  let url: string;
  let name: string;
  let admin: pg.Client;
  let app: TestApp | undefined;

  const sql = async (text: string): Promise<void> => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(text);
    } finally {
      await client.end();
    }
  };

  beforeAll(async () => {
    url = await createUniqueDatabase(adminUrl(), 'nest_otp_health');
    name = decodeURIComponent(new URL(url).pathname.slice(1));
    await runOtpMigrations(url);
    admin = new pg.Client({ connectionString: adminUrl() });
    await admin.connect();
  });
  afterEach(async () => {
    await admin.query(`ALTER DATABASE ${pg.escapeIdentifier(name)} WITH ALLOW_CONNECTIONS true`);
    await app?.close();
    app = undefined;
  });
  afterAll(async () => {
    await admin.end();
    await dropDatabase(adminUrl(), url);
  });

  it('answers 200 with the OTP check up: database reachable, migrations applied', async () => {
    app = await startTestApp({}, { databaseUrl: url });
    const res = await app.http.get('/health');
    expectHealthy(res);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
  });

  it('answers 503 while the database refuses connections, and 200 once it accepts them again', async () => {
    app = await startTestApp({ acquireTimeoutMs: 1_000 }, { databaseUrl: url });
    expectHealthy(await app.http.get('/health'));

    const database = pg.escapeIdentifier(name);
    await admin.query(`ALTER DATABASE ${database} WITH ALLOW_CONNECTIONS false`);
    await admin.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE datname = $1 AND pid <> pg_backend_pid()`,
      [name],
    );
    const started = Date.now();
    const down = await app.http.get('/health');
    expectDown(down, { otp: { status: 'down', database: 'unreachable' } });
    expect(Date.now() - started).toBeLessThan(5_000);
    // Nothing of the driver's message (it names the database) in a public answer.
    expect(JSON.stringify(down.body)).not.toContain(name);

    await admin.query(`ALTER DATABASE ${database} WITH ALLOW_CONNECTIONS true`);
    expectHealthy(await eventuallyHealthy(app));
  });

  it('answers 503 when the migrations are missing (a table renamed), naming what is missing', async () => {
    app = await startTestApp({}, { databaseUrl: url });
    expectHealthy(await app.http.get('/health'));

    await sql('ALTER TABLE otp_destinations RENAME TO otp_destinations_elsewhere');
    try {
      expectDown(await app.http.get('/health'), {
        otp: {
          status: 'down',
          database: 'up',
          migrations: 'missing',
          missing: ['otp_destinations'],
        },
      });
    } finally {
      await sql('ALTER TABLE otp_destinations_elsewhere RENAME TO otp_destinations');
    }
    expectHealthy(await app.http.get('/health'));
  });
});

// Needs the `redis-server` binary; reported skipped, with the reason, when it is missing.
describeWithRedisServer('GET /health with the throttle counters in Redis', () => {
  let redis: RedisServer;
  let app: TestApp;
  let client: ReturnType<typeof createThrottleRedis>;

  beforeAll(async () => {
    redis = await startRedisServer();
    client = createThrottleRedis(redis.url);
    app = await startTestApp({ throttleStorage: new RedisThrottlerStorage(client) });
  });
  afterAll(async () => {
    await app?.close();
    client?.disconnect();
    await redis?.stop();
  });

  it('answers 200 with Redis up, 503 once it is killed, and 200 again after it restarts', async () => {
    const bothUp = { otp: UP, redis: { status: 'up', responseTime: expect.any(Number) } };
    expectHealthy(await eventuallyHealthy(app, 5_000), bothUp);

    await redis.kill();
    const down = await app.http.get('/health');
    expectDown(down, { redis: { status: 'down' } });
    // The OTP check itself is fine: it is Redis that is reported.
    expect(down.body.details.otp).toEqual(UP);

    await redis.restart();
    expectHealthy(await eventuallyHealthy(app), bothUp);
  });
});
