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

/** Every index scan on otp_requests in an EXPLAIN (FORMAT JSON) plan, with its index condition. */
function indexScans(plan: Record<string, unknown>): { index: string; cond?: string }[] {
  const own =
    String(plan['Node Type']).startsWith('Index') && plan['Relation Name'] === 'otp_requests'
      ? [{ index: String(plan['Index Name']), cond: plan['Index Cond'] as string | undefined }]
      : [];
  const children = (plan.Plans as Record<string, unknown>[] | undefined) ?? [];
  return [...own, ...children.flatMap(indexScans)];
}

// A new install: Postgres has not analyzed otp_requests yet, and many codes are live.
describe('cancel on a table Postgres has not analyzed yet', () => {
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

  it('finds the request through the primary key, then its flow, in the plan Postgres keeps', async () => {
    const app = t as TestApp;
    const destination = uniqueEmail();
    const sent = await app.http.post('/otp/send').send({ destination });
    expect(sent.status).toBe(202);
    await app.http.post(`/otp/requests/${sent.body.requestId as string}/cancel`).expect(204);
    expect(
      await queryDatabase(url, `SELECT id, code_hash FROM otp_requests WHERE destination = $1`, [
        destination,
      ]),
    ).toEqual([expect.objectContaining({ id: sent.body.requestId, code_hash: null })]);

    // The statement the module prepared, planned as Postgres plans it for every id once it
    // settles on a generic plan, on a session of its own.
    const pool = app.app.get(OtpConnection).pool;
    const [prepared] = (
      await pool.query<{ statement: string }>(
        `SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%cancelled_at =%'`,
      )
    ).rows;
    expect(prepared).toBeDefined();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(`SET plan_cache_mode = force_generic_plan`);
      await client.query(`PREPARE cancel_under_test AS ${prepared?.statement ?? ''}`);
      const { rows } = await client.query<{ 'QUERY PLAN': [{ Plan: Record<string, unknown> }] }>(
        `EXPLAIN (FORMAT JSON) EXECUTE cancel_under_test('${randomUUID()}')`,
      );
      const scans = indexScans(rows[0]?.['QUERY PLAN'][0].Plan ?? {});
      expect(scans.length).toBeGreaterThan(0);
      // No scan of a whole index: each one is bounded by a condition (the id, then the flow).
      expect(scans.filter((scan) => scan.cond === undefined)).toEqual([]);
    } finally {
      await client.end();
    }
  });
});
