import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { PoolClient } from 'pg';
import { OtpConnection } from '../src/otp/persistence/otp-connection.js';
import { startTestApp, uniqueEmail, type TestApp } from './support/test-app.js';

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
