import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { createUniqueDatabase, dropDatabase, runOtpMigrations } from '../example/database.js';
import { OtpService } from '../src/otp/otp.service.js';
import { purgeOtpRequests } from '../src/otp/retention/otp-retention.js';
import { CapturingProvider, TEST_SECRET, uniqueEmail } from './support/test-app.js';
import { createExampleApp } from '../example/bootstrap.js';
import type { INestApplication } from '@nestjs/common';

// Purging deletes every old row of a database, so this file works on a database of its own.
// Express only: the purge job works on the table, not through the routes.
describe('retention', () => {
  const adminUrl = (): string => process.env.TEST_ADMIN_DATABASE_URL as string;
  let url: string;
  let db: pg.Pool;

  const sql = async <T = Record<string, unknown>>(
    text: string,
    params: unknown[] = [],
  ): Promise<T[]> => (await db.query(text, params)).rows as T[];

  /** Inserts `count` sends (one destination each) created `ageSeconds` ago, each holding a hash. */
  const seed = (count: number, ageSeconds: number, destination = uniqueEmail()): Promise<unknown> =>
    sql(
      `INSERT INTO otp_requests (id, destination, purpose, channel, code_hash, code_length, max_attempts,
         created_at, expires_at, resend_available_at, delivery_status)
       SELECT gen_random_uuid(), g || '.' || $1, 'login', 'email', 'hmac-sha256$x', 6, 3,
              now() - make_interval(secs => $2) - make_interval(secs => g),
              now() - make_interval(secs => $2) - make_interval(secs => g) + interval '300 seconds',
              now() - make_interval(secs => $2), 'sent'
         FROM generate_series(1, $3) g`,
      [destination, ageSeconds, count],
    );

  const startApp = async (otp: Record<string, unknown> = {}): Promise<INestApplication> => {
    const app = await createExampleApp(
      {
        databaseUrl: url,
        otp: {
          hasher: 'hmac',
          hmacSecret: TEST_SECRET,
          providers: [new CapturingProvider()],
          ...otp,
        },
      },
      { logger: false },
    );
    await app.init();
    return app;
  };

  beforeAll(async () => {
    url = await createUniqueDatabase(adminUrl(), 'nest_otp_retention');
    await runOtpMigrations(url);
    db = new pg.Pool({ connectionString: url });
    // The database is dropped WITH (FORCE) after the pool ends: a connection still closing then is
    // terminated by the server, which must not crash the worker (seen once in a `.ci/run`).
    db.on('error', () => undefined);
  });
  afterAll(async () => {
    await db.end();
    await dropDatabase(adminUrl(), url);
  });

  it('OtpService.purge() deletes rows past the 24 h window and keeps the rest', async () => {
    await sql('DELETE FROM otp_requests');
    await seed(30, 25 * 3600);
    await seed(7, 23 * 3600);
    const app = await startApp();
    try {
      const result = await app.get(OtpService).purge();
      expect(result.deleted).toBe(30);
      const [left] = await sql<{ n: number }>('SELECT count(*)::int AS n FROM otp_requests');
      expect(left?.n).toBe(7);
      // The survivors expired long ago: their hashes are gone too.
      expect(result.hashesCleared).toBe(7);
      const [hashes] = await sql<{ n: number }>(
        'SELECT count(*)::int AS n FROM otp_requests WHERE code_hash IS NOT NULL',
      );
      expect(hashes?.n).toBe(0);
    } finally {
      await app.close();
    }
  });

  it('a large purge refreshes the planner statistics, so plans fit the table as it is now', async () => {
    await sql('DELETE FROM otp_requests');
    await seed(10_000, 25 * 3600);
    await seed(5, 23 * 3600);
    await sql('ANALYZE otp_requests');
    const estimate = async (): Promise<number> =>
      (
        await sql<{ n: number }>(
          `SELECT reltuples::int AS n FROM pg_class WHERE oid = 'otp_requests'::regclass`,
        )
      )[0]?.n ?? -1;
    expect(await estimate()).toBeGreaterThan(9_000);
    const ds = await new DataSource({ type: 'postgres', url }).initialize();
    try {
      const result = await purgeOtpRequests(ds, { olderThanSeconds: 86_400 });
      expect(result.deleted).toBe(10_000);
    } finally {
      await ds.destroy();
    }
    expect(await estimate()).toBeLessThan(100);
  });

  it('purge() also ages out the delivery log and the sealed codes of expired fallbacks', async () => {
    await sql('DELETE FROM otp_deliveries');
    await sql('DELETE FROM otp_fallbacks');
    const attempt = (ageSeconds: number) =>
      sql(
        `INSERT INTO otp_deliveries (request_id, seq, channel, provider, status, cause, created_at)
         VALUES (gen_random_uuid(), 1, 'sms', 'test', 'sent', 'send',
                 now() - make_interval(secs => $1))`,
        [ageSeconds],
      );
    for (let i = 0; i < 3; i += 1) await attempt(25 * 3600);
    await attempt(3600);
    const fallback = (expiresInSeconds: number) =>
      sql(
        `INSERT INTO otp_fallbacks (request_id, request_created_at, sealed, channels_used, expires_at)
         VALUES (gen_random_uuid(), now(), '\\x00', '{sms}', now() + make_interval(secs => $1))`,
        [expiresInSeconds],
      );
    await fallback(-10);
    await fallback(300);
    const app = await startApp();
    try {
      await app.get(OtpService).purge();
      const [log] = await sql<{ n: number }>('SELECT count(*)::int AS n FROM otp_deliveries');
      expect(log?.n).toBe(1);
      const [sealed] = await sql<{ n: number }>('SELECT count(*)::int AS n FROM otp_fallbacks');
      expect(sealed?.n).toBe(1);
    } finally {
      await app.close();
    }
  });

  it("OtpService.purge() keeps a day plus a code's lifetime: a code sent just over 24 h ago may still count", async () => {
    await sql('DELETE FROM otp_requests');
    // 24 h + 100 s old: its code lived until 24 h - 200 s ago and could have been exhausted
    // inside the policy window, so the lockout still reads it.
    await seed(3, 24 * 3600 + 100);
    await seed(4, 24 * 3600 + 400);
    const app = await startApp();
    try {
      const result = await app.get(OtpService).purge();
      expect(result.deleted).toBe(4);
      const [left] = await sql<{ n: number }>('SELECT count(*)::int AS n FROM otp_requests');
      expect(left?.n).toBe(3);
    } finally {
      await app.close();
    }
  });

  it('many purges at once delete every old row exactly once', async () => {
    await sql('DELETE FROM otp_requests');
    await seed(2_000, 30 * 3600);
    await seed(50, 60);
    const sources = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const ds = new DataSource({ type: 'postgres', url });
        return ds.initialize();
      }),
    );
    try {
      const results = await Promise.all(
        sources.map((ds) => purgeOtpRequests(ds, { olderThanSeconds: 86_400, batchSize: 100 })),
      );
      expect(results.reduce((sum, r) => sum + r.deleted, 0)).toBe(2_000);
      const [left] = await sql<{ n: number }>('SELECT count(*)::int AS n FROM otp_requests');
      expect(left?.n).toBe(50);
    } finally {
      await Promise.all(sources.map((ds) => ds.destroy()));
    }
  });

  it.each([
    ['a retention shorter than the 24 h policy window', { olderThanSeconds: 3_600 }],
    ['a batch size of 0', { olderThanSeconds: 86_400, batchSize: 0 }],
  ])('purgeOtpRequests refuses %s and deletes nothing', async (_label, options) => {
    await sql('DELETE FROM otp_requests');
    await seed(4, 30 * 3600);
    const ds = await new DataSource({ type: 'postgres', url }).initialize();
    try {
      await expect(purgeOtpRequests(ds, options)).rejects.toThrow(RangeError);
      const [left] = await sql<{ n: number }>('SELECT count(*)::int AS n FROM otp_requests');
      expect(left?.n).toBe(4);
    } finally {
      await ds.destroy();
    }
  });

  const cli = (args: string[], env: Record<string, string> = {}) =>
    promisify(execFile)('node', ['build/src/cli/nest-otp.js', ...args], {
      env: { ...process.env, DATABASE_URL: url, ...env },
    });

  it('npx nest-otp purge --dry-run says what would go and changes nothing; then purge removes it', async () => {
    await sql('DELETE FROM otp_requests');
    await seed(12, 48 * 3600);
    await seed(3, 10);
    const dry = await cli(['purge', '--dry-run']);
    expect(dry.stdout).toMatch(/would remove 12 rows older than 86400 s/);
    const [before] = await sql<{ n: number }>('SELECT count(*)::int AS n FROM otp_requests');
    expect(before?.n).toBe(15);

    const { stdout } = await cli(['purge', '--batch-size', '5']);
    expect(stdout).toMatch(/removed 12 rows/);
    const [left] = await sql<{ n: number }>('SELECT count(*)::int AS n FROM otp_requests');
    expect(left?.n).toBe(3);
  });

  it('npx nest-otp purge takes --database-url and --older-than, and refuses a window under 24 h', async () => {
    await sql('DELETE FROM otp_requests');
    await seed(4, 30 * 3600);
    await seed(2, 60 * 3600);
    const { stdout } = await cli(
      ['purge', '--database-url', url, '--older-than', String(40 * 3600)],
      {
        DATABASE_URL: '',
      },
    );
    expect(stdout).toMatch(/removed 2 rows older than 144000 s/);
    await expect(cli(['purge', '--older-than', '3600'])).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/at least 86400/),
    });
    await expect(cli(['nonsense'])).rejects.toMatchObject({ code: 2 });
    const [left] = await sql<{ n: number }>('SELECT count(*)::int AS n FROM otp_requests');
    expect(left?.n).toBe(4);
  });

  it('the optional in-app schedule purges by itself', async () => {
    await sql('DELETE FROM otp_requests');
    await seed(5, 26 * 3600);
    const app = await startApp({ purgeIntervalSeconds: 1 });
    try {
      let left = 5;
      for (let i = 0; i < 50 && left > 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const [row] = await sql<{ n: number }>('SELECT count(*)::int AS n FROM otp_requests');
        left = row?.n ?? -1;
      }
      expect(left).toBe(0);
    } finally {
      await app.close();
    }
  });

  it('is off by default', async () => {
    await sql('DELETE FROM otp_requests');
    await seed(5, 26 * 3600);
    const app = await startApp();
    try {
      await new Promise((r) => setTimeout(r, 1500));
      const [row] = await sql<{ n: number }>('SELECT count(*)::int AS n FROM otp_requests');
      expect(row?.n).toBe(5);
    } finally {
      await app.close();
    }
  });

  it('drops the hash of a verified code at once', async () => {
    const provider = new CapturingProvider();
    const app = await startApp({ providers: [provider] });
    try {
      const { default: request } = await import('supertest');
      const email = uniqueEmail();
      await request(app.getHttpServer()).post('/otp/send').send({ destination: email }).expect(202);
      const [before] = await sql<{ code_hash: string | null }>(
        'SELECT code_hash FROM otp_requests WHERE destination = $1',
        [email],
      );
      expect(before?.code_hash).toEqual(expect.any(String));
      await request(app.getHttpServer())
        .post('/otp/verify')
        .send({ destination: email, code: provider.lastCode(email) })
        .expect(200);
      const [after] = await sql<{ code_hash: string | null }>(
        'SELECT code_hash FROM otp_requests WHERE destination = $1',
        [email],
      );
      expect(after?.code_hash).toBeNull();
    } finally {
      await app.close();
    }
  });
});
