import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createUniqueDatabase,
  runOtpMigrations,
  startEmbeddedPostgres,
  type PostgresServer,
} from '../example/database.js';
import { queryDatabase } from './support/coexistence-host.js';
import { freePort } from './support/free-port.js';
import { startTestApp, uniqueEmail, type TestApp } from './support/test-app.js';

/**
 * When a send's rows reach disk. The send's insert commits without waiting for its WAL flush; the
 * delivery record that follows commits synchronously, which flushes both before the API answers.
 * Measured on a Postgres server of this file's own (embedded), where no other test's commits
 * count: WAL flushes are a server-wide figure, and crashing a server is not something to do to
 * the shared one.
 */
describe('send durability', () => {
  let dir: string;
  let port: number;
  let server: PostgresServer;
  let databaseUrl: string;

  const one = async <T>(sql: string, values: unknown[] = []): Promise<T> =>
    (await queryDatabase<T>(databaseUrl, sql, values))[0] as T;

  /** WAL flushes (fsyncs) the server has made, once every backend's figures are reported. */
  const walSyncs = async (): Promise<number> => {
    // A backend reports its WAL figures when it goes idle (at most once a second) or exits.
    await new Promise((done) => setTimeout(done, 1_100));
    // Postgres 18 moved them from pg_stat_wal to pg_stat_io.
    const { n } = await one<{ n: string }>(
      `SELECT CASE WHEN current_setting('server_version_num')::int >= 180000
                THEN (SELECT sum(fsyncs) FROM pg_stat_io WHERE object = 'wal')
                ELSE (SELECT (to_jsonb(w) ->> 'wal_sync')::numeric FROM pg_stat_wal w) END AS n`,
    );
    return Number(n);
  };

  /** The postmaster's pid: the first line of its pid file in the data folder. */
  const postmasterPid = (): number =>
    Number(readFileSync(join(dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);

  const send = async (t: TestApp): Promise<string> => {
    const sent = await t.http.post('/otp/send').send({ destination: uniqueEmail() });
    expect(sent.status).toBe(202);
    return sent.body.requestId as string;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nest-otp-durability-'));
    // As root the server runs as the postgres user, which must reach the data folder inside.
    chmodSync(dir, 0o755);
    port = await freePort();
    server = await startEmbeddedPostgres(join(dir, 'data'), port, { log: () => undefined });
    databaseUrl = await createUniqueDatabase(server.adminUrl);
    await runOtpMigrations(databaseUrl);
  });

  afterAll(async () => {
    await server?.release();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('flushes WAL once a send: the insert commits lazily, the delivery record durably', async () => {
    const sends = 40;
    const t = await startTestApp({}, { databaseUrl });
    let before: number;
    try {
      await send(t); // the pool's first connection and statements, out of the count
      before = await walSyncs();
      for (let i = 0; i < sends; i += 1) await send(t);
    } finally {
      await t.close();
    }
    const perSend = ((await walSyncs()) - before) / sends;
    // Synchronous inserts flush twice a send (2.0 and up); a lazy delivery record too would
    // leave acknowledged sends waiting on the WAL writer (well under one a send).
    expect(perSend).toBeGreaterThanOrEqual(0.9);
    expect(perSend).toBeLessThan(1.5);
  });

  it('keeps every send it acknowledged through a crash of the database server', async () => {
    const t = await startTestApp({}, { databaseUrl });
    let acknowledged: string[];
    let postmaster: number;
    try {
      postmaster = postmasterPid();
      acknowledged = await Promise.all(Array.from({ length: 24 }, () => send(t)));
      // At once, before the WAL writer's next round (200 ms): an immediate shutdown drops what
      // is still in Postgres's WAL buffers, as a crash would.
      process.kill(postmaster, 'SIGQUIT');
      await waitForExit(postmaster);
    } finally {
      await t.close().catch(() => undefined);
    }
    server = await startEmbeddedPostgres(join(dir, 'data'), port, { log: () => undefined });
    const kept = await one<{ sent: number }>(
      `SELECT count(*)::int AS sent FROM otp_requests
        WHERE delivery_status = 'sent' AND code_hash IS NOT NULL AND id = ANY($1::uuid[])`,
      [acknowledged],
    );
    expect(kept.sent).toBe(acknowledged.length);
  });
});

async function waitForExit(pid: number): Promise<void> {
  for (let i = 0; i < 300; i += 1) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((done) => setTimeout(done, 50));
  }
  throw new Error(`postmaster ${pid} did not stop`);
}
