import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import type { Response } from 'supertest';
import { DataSource } from 'typeorm';
import { createUniqueDatabase, dropDatabase, runOtpMigrations } from '../example/database.js';
import type { OtpModuleOptionsInput } from '../src/index.js';
import { startTestApp, uniqueEmail, type TestApp } from './support/test-app.js';

/**
 * Bounded waits on the database: a table lock, a row lock that outlasts `statementTimeoutMs`, and
 * a pool kept busy by requests stuck behind a lock each turn into a 503 `SERVICE_UNAVAILABLE` with
 * `Retry-After` within the configured bound (not when the lock ends), write nothing, and the app
 * serves again as soon as the lock goes. Bounds are asserted with wide margins (a busy machine);
 * what matters is answering in seconds while the lock is held for much longer.
 */

const adminUrl = (): string => process.env.TEST_ADMIN_DATABASE_URL as string;

/** One request, timed. */
async function timed(send: () => PromiseLike<Response>): Promise<{ ms: number; res: Response }> {
  const start = performance.now();
  const res = await send();
  return { ms: performance.now() - start, res };
}

function expectUnavailable(res: Response): void {
  expect({ status: res.status, code: res.body.code }).toEqual({
    status: 503,
    code: 'SERVICE_UNAVAILABLE',
  });
  const retryAfter = Number(res.headers['retry-after']);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(res.body.retryAfter).toBe(retryAfter);
}

// Express only: the bounds are the module's pool's; the 503 itself is on both in errors.e2e-spec.
describe('bounded waits on the database', () => {
  let url: string;
  let locker: pg.Client;
  let inspect: pg.Pool;
  let t: TestApp | undefined;

  const start = async (otp: OtpModuleOptionsInput): Promise<TestApp> => {
    t = await startTestApp(otp, { databaseUrl: url });
    return t;
  };
  const rowsFor = async (destination: string): Promise<number> =>
    Number(
      (
        await inspect.query('SELECT count(*) AS n FROM otp_requests WHERE destination = $1', [
          destination,
        ])
      ).rows[0]?.n,
    );

  beforeAll(async () => {
    url = await createUniqueDatabase(adminUrl(), 'nest_otp_bounds');
    await runOtpMigrations(url);
    inspect = new pg.Pool({ connectionString: url, max: 2 });
    // The database is dropped WITH (FORCE) after the pool ends: a connection still closing then is
    // terminated by the server, which must not crash the worker (seen once in a `.ci/run`).
    inspect.on('error', () => undefined);
  });
  afterEach(async () => {
    await locker?.query('ROLLBACK').catch(() => undefined);
    await locker?.end().catch(() => undefined);
    await t?.close();
    t = undefined;
  });
  afterAll(async () => {
    await inspect.end();
    await dropDatabase(adminUrl(), url);
  });

  /** Another session that holds a lock until the test lets it go. */
  const lock = async (sql: string, params: unknown[] = []): Promise<void> => {
    locker = new pg.Client({ connectionString: url });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query(sql, params);
  };
  const release = (): Promise<unknown> => locker.query('COMMIT');

  it('POST /otp/send, POST /otp/verify, GET /otp/requests/:id: a table lock is a 503 within lockTimeoutMs, and the next send after it goes works', async () => {
    const app = await start({ lockTimeoutMs: 1_000 });
    const earlier = uniqueEmail();
    const sent = await app.http.post('/otp/send').send({ destination: earlier });
    expect(sent.status).toBe(202);

    await lock('LOCK TABLE otp_requests IN ACCESS EXCLUSIVE MODE');
    const blocked = uniqueEmail();
    const answers = [
      await timed(() => app.http.post('/otp/send').send({ destination: blocked })),
      await timed(() => app.http.post('/otp/send').send({ destination: blocked })),
      await timed(() =>
        app.http
          .post('/otp/verify')
          .send({ destination: earlier, code: app.provider.lastCode(earlier) }),
      ),
      await timed(() => app.http.get(`/otp/requests/${sent.body.requestId as string}`)),
    ];
    for (const { ms, res } of answers) {
      expectUnavailable(res);
      // Bound 1 s; the lock would have held for as long as the test kept it.
      expect(ms).toBeLessThan(5_000);
      expect(ms).toBeGreaterThanOrEqual(900);
    }
    // No message went out for the refused sends.
    expect(app.provider.messages.filter((m) => m.destination === blocked)).toHaveLength(0);

    await release();
    expect(await rowsFor(blocked)).toBe(0);
    // Nothing half-written for the verify either: the earlier code still verifies.
    const verified = await app.http
      .post('/otp/verify')
      .send({ destination: earlier, code: app.provider.lastCode(earlier) });
    expect(verified.status).toBe(200);
    expect((await app.http.post('/otp/send').send({ destination: blocked })).status).toBe(202);
  });

  it('POST /otp/send: a statement that outlasts statementTimeoutMs is cut off at that bound', async () => {
    // The lock wait would be allowed 30 s; the statement itself only 800 ms.
    const app = await start({ lockTimeoutMs: 30_000, statementTimeoutMs: 800 });
    await lock('LOCK TABLE otp_requests IN ACCESS EXCLUSIVE MODE');
    const blocked = uniqueEmail();
    const { ms, res } = await timed(() =>
      app.http.post('/otp/send').send({ destination: blocked }),
    );
    expectUnavailable(res);
    expect(ms).toBeLessThan(5_000);
    await release();
    expect(await rowsFor(blocked)).toBe(0);
    expect((await app.http.post('/otp/send').send({ destination: blocked })).status).toBe(202);
  });

  it('POST /otp/send: with the pool held by requests stuck behind a row lock, waiting for a connection is a 503 within acquireTimeoutMs', async () => {
    const app = await start({ poolSize: 2, acquireTimeoutMs: 500, lockTimeoutMs: 8_000 });
    const stuck = uniqueEmail();
    expect((await app.http.post('/otp/send').send({ destination: stuck })).status).toBe(202);
    const code = app.provider.lastCode(stuck);
    const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, '0');

    // Every guess at this code waits for its row: two of them hold both pool connections.
    await lock('SELECT 1 FROM otp_requests WHERE destination = $1 FOR UPDATE', [stuck]);
    // supertest sends on `then`: Promise.resolve starts both now.
    const guesses = [0, 1].map(() =>
      Promise.resolve(app.http.post('/otp/verify').send({ destination: stuck, code: wrong })),
    );
    // Let both guesses take their connection before the third request asks for one.
    let waiting = 0;
    for (let i = 0; i < 50 && waiting < 2; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const found = await inspect.query(
        `SELECT count(*) AS n FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'nest-otp'
            AND wait_event_type = 'Lock'`,
      );
      waiting = Number(found.rows[0]?.n);
    }
    expect(waiting).toBe(2);

    const other = uniqueEmail();
    const { ms, res } = await timed(() => app.http.post('/otp/send').send({ destination: other }));
    expectUnavailable(res);
    expect(ms).toBeLessThan(4_000);
    expect(await rowsFor(other)).toBe(0);

    // The lock goes: the stuck guesses finish as guesses, and the pool serves again at once.
    await release();
    const finished = await Promise.all(guesses);
    expect(finished.map((r) => r.status).sort()).toEqual([401, 401]);
    expect((await app.http.post('/otp/send').send({ destination: other })).status).toBe(202);
  });

  it.each([
    ['fails', true],
    ['succeeds', false],
  ])(
    'POST /otp/send: when the delivery %s but its outcome cannot be written (a lock), the answer is a 503 and the code never verifies',
    async (_name, failing) => {
      const app = await start({ lockTimeoutMs: 800 });
      const destination = uniqueEmail();
      // The lock arrives after the insert, while the code is out for delivery.
      const deliver = app.provider.deliver.bind(app.provider);
      let code = '';
      app.provider.deliver = async (message) => {
        code = message.code;
        await lock('LOCK TABLE otp_requests IN ACCESS EXCLUSIVE MODE');
        if (failing) throw new Error('provider down');
        return deliver(message);
      };
      const res = await app.http.post('/otp/send').send({ destination });
      expectUnavailable(res);
      await release();
      app.provider.deliver = deliver;

      // The row is there, its outcome unrecorded: it must not verify, whatever the provider did.
      expect(await rowsFor(destination)).toBe(1);
      expect(code).toMatch(/^\d{6}$/);
      const verify = await app.http.post('/otp/verify').send({ destination, code });
      expect(verify.status).toBe(410);
    },
  );

  it("leaves the host's own connections alone: their sessions keep the server's defaults", async () => {
    const app = await start({ statementTimeoutMs: 1_234, lockTimeoutMs: 567 });
    const sent = await app.http.post('/otp/send').send({ destination: uniqueEmail() });
    expect(sent.status).toBe(202);
    const sessions = await inspect.query<{ application_name: string }>(
      `SELECT application_name FROM pg_stat_activity WHERE datname = current_database()`,
    );
    expect(sessions.rows.map((r) => r.application_name)).toContain('nest-otp');
    const host = app.app.get(DataSource);
    const [settings] = await host.query<{ statement: string; lock: string }[]>(
      `SELECT current_setting('statement_timeout') AS statement, current_setting('lock_timeout') AS lock`,
    );
    expect(settings).toEqual({ statement: '0', lock: '0' });
  });
});
