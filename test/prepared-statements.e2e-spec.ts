import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import pg, { type PoolClient } from 'pg';
import { createUniqueDatabase, dropDatabase, runOtpMigrations } from '../example/database.js';
import { OtpConnection } from '../src/otp/persistence/otp-connection.js';
import { queryDatabase } from './support/coexistence-host.js';
import { startTestApp, uniqueEmail, type TestApp } from './support/test-app.js';

const adminUrl = (): string => process.env.TEST_ADMIN_DATABASE_URL as string;

/**
 * The module's statements go to its pool as prepared statements (parsed once a connection; the
 * history read, once Postgres has seen it a few times, on one generic plan), and keep working where the server side does not keep them (a transaction-pooling PgBouncer
 * hands a session another backend: the statement the client prepared is gone, 26000).
 */

const POOL_SIZE = 3;

// Express only: the statements and the pool are the module's, whatever the adapter.
describe('prepared statements on the module pool', () => {
  let t: TestApp;
  let connection: OtpConnection;

  /** Runs `sql` on every connection of the module's pool (all checked out at once). */
  const onEveryConnection = async (sql: string): Promise<Record<string, unknown>[][]> => {
    const clients: PoolClient[] = [];
    try {
      for (let i = 0; i < POOL_SIZE; i += 1) clients.push(await connection.pool.connect());
      return await Promise.all(
        clients.map(async (c) => (await c.query<Record<string, unknown>>(sql)).rows),
      );
    } finally {
      for (const c of clients) c.release();
    }
  };

  const sendAndVerify = async (): Promise<void> => {
    const destination = uniqueEmail();
    const sent = await t.http.post('/otp/send').send({ destination });
    expect(sent.status).toBe(202);
    const verified = await t.http
      .post('/otp/verify')
      .send({ destination, code: t.provider.lastCode(destination) });
    expect(verified.status).toBe(200);
    expect(typeof verified.body.verificationToken).toBe('string');
    // Again, now that the destination has a history: read first (a first send is not).
    expect((await t.http.post('/otp/send').send({ destination })).status).toBe(202);
  };

  beforeAll(async () => {
    t = await startTestApp({ poolSize: POOL_SIZE });
    connection = t.app.get(OtpConnection);
  });

  afterAll(async () => {
    await t?.close();
  });

  it('prepares its statements, and the history read settles on a generic plan', async () => {
    const modes = await onEveryConnection('SHOW plan_cache_mode');
    expect(modes.map(([row]) => row?.plan_cache_mode)).toEqual(Array(POOL_SIZE).fill('auto'));
    // Enough sends that some connection runs the history read more than five times (Postgres
    // plans the first five executions for their values, then chooses).
    for (let i = 0; i < 8 * POOL_SIZE; i += 1) await sendAndVerify();
    const prepared = await onEveryConnection(
      `SELECT count(*)::int AS n,
              COALESCE(max(generic_plans) FILTER (WHERE statement LIKE '%json_agg%'), 0)::int AS g
         FROM pg_prepared_statements WHERE name LIKE 'nest-otp-%'`,
    );
    expect(Math.max(...prepared.map(([row]) => Number(row?.n)))).toBeGreaterThanOrEqual(3);
    expect(Math.max(...prepared.map(([row]) => Number(row?.g)))).toBeGreaterThanOrEqual(1);
  });

  it('keeps answering when the server forgets the prepared statements', async () => {
    await sendAndVerify();
    // What a transaction pooler does to a client: its statements are not on this backend.
    await onEveryConnection('DEALLOCATE ALL');
    for (let i = 0; i < 4; i += 1) await sendAndVerify();
    const status = await t.http.get(`/otp/requests/${crypto.randomUUID()}`);
    expect(status.status).toBe(404);
  });
});

/** A scan in an EXPLAIN (FORMAT JSON) plan: its node, table or index, and index condition. */
interface Scan {
  node: string;
  on: string;
  cond?: string;
}

/** Every scan of the module's tables in a plan, with its index condition if any. */
function scans(plan: Record<string, unknown>): Scan[] {
  const node = String(plan['Node Type']);
  const on = (plan['Relation Name'] ?? plan['Index Name'] ?? '') as string;
  const own =
    node.endsWith('Scan') && /^otp_/.test(on)
      ? [{ node, on, cond: plan['Index Cond'] as string | undefined }]
      : [];
  const children = (plan.Plans as Record<string, unknown>[] | undefined) ?? [];
  return [...own, ...children.flatMap(scans)];
}

/** A scan that reads a whole table or a whole index: no condition bounds it. */
const unbounded = (scan: Scan): boolean =>
  scan.node === 'Seq Scan' || (scan.node.includes('Index') && scan.cond === undefined);

// A new install: Postgres has not analyzed otp_requests yet, and many codes are live. Without
// statistics a partial index over IS NULL columns looks tiny, and a generic plan may read all of
// it where an index condition was at hand (the reservation did, and cancel did).
describe('on a table Postgres has not analyzed yet', () => {
  let url: string;
  let t: TestApp | undefined;

  beforeAll(async () => {
    url = await createUniqueDatabase(adminUrl(), 'nest_otp_unanalyzed');
    await runOtpMigrations(url);
    await queryDatabase(url, `ALTER TABLE otp_requests SET (autovacuum_enabled = false)`);
    await queryDatabase(
      url,
      `INSERT INTO otp_requests (id, destination, purpose, channel, code_hash, code_length,
         max_attempts, expires_at, resend_available_at, delivery_status, delivered_at)
       SELECT gen_random_uuid(), 'live-' || g || '@example.com', 'login', 'email', repeat('a', 64),
         6, 3, now() + interval '1 hour', now(), 'sent', now()
       FROM generate_series(1, 5000) AS g`,
    );
    t = await startTestApp({ poolSize: 1 }, { databaseUrl: url });
  });

  afterAll(async () => {
    await t?.close();
    if (url) await dropDatabase(adminUrl(), url);
  });

  it('every statement of the routes plans bounded scans, as Postgres plans it for any values', async () => {
    const app = t as TestApp;
    // Each route once: send (with and without a key), status, a wrong and a right verify, the
    // token on a @RequireOtp route, a code guessed until used up, a verify with no code, a cancel.
    const destination = uniqueEmail();
    const sent = await app.http.post('/otp/send').send({ destination });
    expect(sent.status).toBe(202);
    const keyed = await app.http
      .post('/otp/send')
      .set('Idempotency-Key', randomUUID())
      .send({ destination: uniqueEmail() });
    expect(keyed.status).toBe(202);
    await app.http.get(`/otp/requests/${sent.body.requestId as string}`).expect(200);
    const code = app.provider.lastCode(destination);
    const wrong = code === '000000' ? '111111' : '000000';
    await app.http.post('/otp/verify').send({ destination, code: wrong }).expect(401);
    const verified = await app.http.post('/otp/verify').send({ destination, code }).expect(200);
    await app.http
      .post('/example/protected')
      .set('X-OTP-Token', verified.body.verificationToken as string)
      .expect(200);
    // Guesses until the code is used up (marked exhausted), and a verify with no code at all.
    const exhausted = uniqueEmail();
    await app.http.post('/otp/send').send({ destination: exhausted }).expect(202);
    const statuses: number[] = [];
    for (let i = 0; i < 3; i += 1) {
      const guess = await app.http
        .post('/otp/verify')
        .send({ destination: exhausted, code: wrong });
      statuses.push(guess.status);
    }
    expect(statuses).toEqual([401, 401, 429]);
    const none = await app.http.post('/otp/verify').send({ destination: uniqueEmail(), code });
    expect(none.status).toBeGreaterThanOrEqual(400);
    expect(none.status).toBeLessThan(500);
    const cancelled = uniqueEmail();
    const toCancel = await app.http.post('/otp/send').send({ destination: cancelled });
    await app.http.post(`/otp/requests/${toCancel.body.requestId as string}/cancel`).expect(204);
    expect(
      await queryDatabase(url, `SELECT code_hash FROM otp_requests WHERE destination = $1`, [
        cancelled,
      ]),
    ).toEqual([{ code_hash: null }]);

    // Every statement the module prepared on its one connection, planned generically (the plan
    // Postgres keeps for all values once it settles) on a session of its own.
    const pool = app.app.get(OtpConnection).pool;
    const { rows: statements } = await pool.query<{ statement: string; params: number }>(
      `SELECT statement, cardinality(parameter_types) AS params FROM pg_prepared_statements`,
    );
    expect(statements.length).toBeGreaterThanOrEqual(10);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const found: Record<string, Scan[]> = {};
    try {
      await client.query(`SET plan_cache_mode = force_generic_plan`);
      for (const [i, { statement, params }] of statements.entries()) {
        await client.query(`PREPARE under_test_${i} AS ${statement}`);
        const nulls = Array.from({ length: params }, () => 'NULL').join(', ');
        const { rows } = await client.query<{ 'QUERY PLAN': [{ Plan: Record<string, unknown> }] }>(
          `EXPLAIN (FORMAT JSON) EXECUTE under_test_${i}${params > 0 ? `(${nulls})` : ''}`,
        );
        const bad = scans(rows[0]?.['QUERY PLAN'][0].Plan ?? {}).filter(unbounded);
        if (bad.length > 0) found[statement.replace(/\s+/g, ' ').slice(0, 120)] = bad;
      }
    } finally {
      await client.end();
    }
    expect(found).toEqual({});
  });
});
