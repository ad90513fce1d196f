import { afterAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { createUniqueDatabase, dropDatabase, runOtpMigrations } from '../example/database.js';
import { AddPolicyIndexes1795300000002 } from '../migrations/1795300000002-AddPolicyIndexes.js';
import { otpMigrations, otpPartitionedMigrations } from '../migrations/index.js';
import { migrationFileStem, migrationsSqlDir } from '../scripts/migrations-sql.js';
import {
  createOtpPartitions,
  listOtpPartitions,
  otpTableLayout,
} from '../src/otp/partitioning/otp-partitions.js';
import { findMissingOtpSchema } from '../src/otp/persistence/otp-schema.check.js';
import { purgeOtpRequests } from '../src/otp/retention/otp-retention.js';
import { describeWithPgPartman } from './support/services.js';
import { withDataSource } from './support/data-source.js';
import { startTestApp, uniqueEmail } from './support/test-app.js';

/**
 * The opt-in partitioned layout (otpPartitionedMigrations, docs/scaling.md): its schema against the
 * default layout's, the uniqueness it keeps across partitions, its upkeep by the module and by
 * pg_partman, and retention by dropping partitions. The race and policy suites run on it too (the
 * jest project "partitioned", jest.config.mjs). Each test works on databases of its own.
 */

const adminUrl = (): string => {
  const url = process.env.TEST_ADMIN_DATABASE_URL;
  if (!url) throw new Error('TEST_ADMIN_DATABASE_URL is not set: run the tests through jest.');
  return url;
};

const databases: string[] = [];
async function freshDatabase(): Promise<string> {
  const url = await createUniqueDatabase(adminUrl(), 'nest_otp_parts');
  databases.push(url);
  return url;
}
afterAll(async () => {
  await Promise.all(databases.map((url) => dropDatabase(adminUrl(), url)));
});

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

const sql = <T = Record<string, unknown>>(url: string, text: string, params: unknown[] = []) =>
  withClient(url, async (client) => (await client.query(text, params)).rows as T[]);

async function partitionedDatabase(): Promise<string> {
  const url = await freshDatabase();
  await runOtpMigrations(url, otpPartitionedMigrations);
  return url;
}

/**
 * Columns, CHECKs, indexes and triggers of each of the module's tables (partitions left out),
 * indexes as their definitions with `ON ONLY` dropped, so a partitioned table reads like a plain one.
 */
async function tablesOf(url: string): Promise<Record<string, unknown>> {
  const own = `n.nspname = current_schema() AND NOT t.relispartition
               AND t.relname NOT IN ('migrations', 'typeorm_metadata')`;
  return withClient(url, async (client) => {
    const rows = async (text: string) => (await client.query(text)).rows as unknown[];
    return {
      tables: await rows(`
        SELECT t.relname AS name, t.relkind AS kind FROM pg_class t
          JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE ${own} AND t.relkind IN ('r', 'p') ORDER BY 1`),
      columns: await rows(`
        SELECT t.relname AS table, a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type,
               a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS default
          FROM pg_attribute a JOIN pg_class t ON t.oid = a.attrelid
          JOIN pg_namespace n ON n.oid = t.relnamespace
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE ${own} AND t.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY 1, 2`),
      checks: await rows(`
        SELECT t.relname AS table, c.conname AS name, pg_get_constraintdef(c.oid) AS definition,
               c.convalidated AS valid
          FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
          JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE ${own} AND c.contype = 'c' ORDER BY 1, 2`),
      indexes: await rows(`
        SELECT t.relname AS table, i.relname AS index, x.indisvalid AS valid,
               replace(pg_get_indexdef(x.indexrelid), ' ON ONLY ', ' ON ') AS definition
          FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
          JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE ${own} ORDER BY 2`),
      triggers: await rows(`
        SELECT t.relname AS table, g.tgname AS name FROM pg_trigger g
          JOIN pg_class t ON t.oid = g.tgrelid JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE ${own} AND NOT g.tgisinternal ORDER BY 1, 2`),
    };
  });
}

const byIndexName = (indexes: unknown[]): unknown[] =>
  [...(indexes as { index: string }[])].sort((a, b) => (a.index < b.index ? -1 : 1));

/** The default layout's indexes as the partitioned layout has them (docs/scaling.md). */
function asPartitioned(indexes: unknown[]): unknown[] {
  return (indexes as { table: string; index: string; valid: boolean; definition: string }[])
    .map((index) => {
      if (index.index === 'otp_requests_pkey') {
        return { ...index, definition: index.definition.replace('(id)', '(id, created_at)') };
      }
      if (
        [
          'otp_requests_live_flow_uq',
          'otp_requests_idempotency_key_uq',
          'otp_requests_token_hash_uq',
        ].includes(index.index)
      ) {
        const name = index.index.replace(/_uq$/, '_idx');
        return {
          ...index,
          index: name,
          definition: index.definition.replace(
            `CREATE UNIQUE INDEX ${index.index}`,
            `CREATE INDEX ${name}`,
          ),
        };
      }
      return index;
    })
    .sort((a, b) => (a.index < b.index ? -1 : 1));
}

const INSERT = `
  INSERT INTO otp_requests (id, destination, purpose, channel, code_length, max_attempts,
                            created_at, expires_at, resend_available_at, idempotency_key,
                            superseded_at, token_hash, token_expires_at, delivery_status, code_hash)
  VALUES (gen_random_uuid(), $1, 'login', 'email', 6, 3, $2, $2::timestamptz + interval '5 minutes',
          $2, $3, $4, $5, $6, 'sent', 'hash')
  RETURNING id`;

/** Inserts one row; `at` is its created_at. */
const insertRow = (
  client: pg.Client,
  row: {
    destination: string;
    at: Date;
    key?: string | null;
    superseded?: boolean;
    tokenHash?: string | null;
  },
) =>
  client.query(INSERT, [
    row.destination,
    row.at,
    row.key ?? null,
    row.superseded ? row.at : null,
    row.tokenHash ?? null,
    row.tokenHash ? new Date(Date.now() + 600_000) : null,
  ]);

/** The start of today (UTC), as Postgres counts days for the partitions. */
const todayUtc = (): Date => {
  const now = new Date();
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
};
const daysAgo = (days: number, plusMs = 0): Date =>
  new Date(todayUtc().getTime() - days * 86_400_000 + plusMs);

const errorOf = async (promise: Promise<unknown>): Promise<Record<string, unknown>> => {
  try {
    await promise;
  } catch (error) {
    return error as Record<string, unknown>;
  }
  throw new Error('expected the statement to fail');
};

describe('otpPartitionedMigrations (the partitioned layout)', () => {
  it('partitions otp_requests by UTC day, with the default layout’s columns, CHECKs and triggers; its unique indexes become plain ones enforced by a trigger', async () => {
    const plain = await freshDatabase();
    const partitioned = await partitionedDatabase();
    await runOtpMigrations(plain);
    const expected = await tablesOf(plain);
    const actual = await tablesOf(partitioned);

    expect(actual.tables).toEqual(
      (expected.tables as { name: string; kind: string }[]).map((table) =>
        table.name === 'otp_requests' ? { ...table, kind: 'p' } : table,
      ),
    );
    expect(actual.columns).toEqual(expected.columns);
    expect(actual.checks).toEqual(expected.checks);
    expect(byIndexName(actual.indexes as unknown[])).toEqual(
      asPartitioned(expected.indexes as unknown[]),
    );
    expect(actual.triggers).toEqual(
      [
        ...(expected.triggers as { table: string; name: string }[]),
        { table: 'otp_requests', name: 'otp_requests_check_unique' },
      ].sort((a, b) => (`${a.table}.${a.name}` < `${b.table}.${b.name}` ? -1 : 1)),
    );

    // Today and 7 days ahead, one UTC day each.
    const partitions = await withDataSource(partitioned, (ds) => listOtpPartitions(ds));
    expect(partitions).toHaveLength(8);
    partitions.forEach((partition, day) => {
      expect(partition.from).toEqual(daysAgo(-day));
      expect(partition.to).toEqual(daysAgo(-day - 1));
      expect(partition.name).toBe(
        `otp_requests_p${daysAgo(-day).toISOString().slice(0, 10).replace(/-/g, '_')}`,
      );
    });
  });

  it('applies every later migration, reverts to nothing, and applies again', async () => {
    const url = await partitionedDatabase();
    const shape = await tablesOf(url);
    await withDataSource(
      url,
      async (ds) => {
        for (let n = 0; n < otpPartitionedMigrations.length; n += 1) {
          await ds.undoLastMigration({ transaction: 'each' });
        }
      },
      otpPartitionedMigrations,
    );
    const [left] = await sql<{ n: number }>(
      url,
      `SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relname LIKE 'otp%'`,
    );
    expect(left?.n).toBe(0);
    await runOtpMigrations(url, otpPartitionedMigrations);
    expect(await tablesOf(url)).toEqual(shape);
  }, 120_000);

  it('after it, plain otpMigrations find nothing to run, and OtpModule starts (its schema check accepts the layout)', async () => {
    const url = await partitionedDatabase();
    await withDataSource(
      url,
      async (ds) => {
        expect(await findMissingOtpSchema(ds)).toEqual([]);
        expect(await otpTableLayout(ds)).toEqual({
          partitioned: true,
          partman: null,
          parent: 'public.otp_requests',
        });
        expect(await ds.showMigrations()).toBe(false);
      },
      otpMigrations,
    );
    // The example app runs otpMigrations itself (migrationsRun) before the module's check.
    const t = await startTestApp({}, { databaseUrl: url });
    await t.close();
  });

  it('an index migration rebuilds a partition’s index that a failed concurrent build left INVALID', async () => {
    const url = await partitionedDatabase();
    const [today] = await withDataSource(url, (ds) => listOtpPartitions(ds));
    const child = `${today?.name}_destination_exhausted_at_idx`;
    await withDataSource(url, async (ds) => {
      const runner = ds.createQueryRunner();
      try {
        await new AddPolicyIndexes1795300000002().down(runner);
      } finally {
        await runner.release();
      }
    });
    await withClient(url, async (client) => {
      await insertRow(client, { destination: 'not-a-number@example.com', at: new Date() });
      // A build that fails half-way, as a timeout or a cancel would: the index stays, INVALID.
      await expect(
        client.query(`CREATE INDEX CONCURRENTLY ${child} ON ${today?.name} ((destination::int))`),
      ).rejects.toThrow(/invalid input syntax/);
    });
    expect(
      await sql(url, 'SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = $1::regclass', [
        child,
      ]),
    ).toEqual([{ valid: false }]);

    await withDataSource(url, async (ds) => {
      const runner = ds.createQueryRunner();
      try {
        await new AddPolicyIndexes1795300000002().up(runner);
      } finally {
        await runner.release();
      }
    });
    const [definition] = await sql<{ d: string }>(
      url,
      'SELECT pg_get_indexdef($1::regclass) AS d',
      [child],
    );
    expect(definition?.d).toMatch(
      /\(destination, exhausted_at\) WHERE \(exhausted_at IS NOT NULL\)/,
    );
    expect(await sql(url, 'SELECT 1 FROM pg_index WHERE NOT indisvalid')).toEqual([]);
  });

  it('refuses a table that holds rows', async () => {
    const url = await freshDatabase();
    await runOtpMigrations(url, otpMigrations.slice(0, 1));
    await withClient(url, (client) =>
      insertRow(client, { destination: 'a@example.com', at: new Date() }),
    );
    await expect(runOtpMigrations(url, otpPartitionedMigrations.slice(0, 2))).rejects.toThrow(
      /holds rows: the partitioned layout is for a new install/,
    );
  });

  it('as plain SQL (psql), CreateOtpRequests + PartitionOtpRequests + AddOtpDestinations build what TypeORM builds, and their downs remove it', async () => {
    const fromSql = await freshDatabase();
    const fromTypeorm = await freshDatabase();
    const first = otpPartitionedMigrations.slice(0, 3);
    const files = first.map((Migration) => migrationFileStem(new Migration()));
    const apply = async (name: string) => {
      const text = readFileSync(join(migrationsSqlDir(), name), 'utf8');
      // Each file runs in one transaction; psql -1 -f sends it as a script, as pg does here.
      await withClient(fromSql, async (client) => {
        await client.query('BEGIN');
        await client.query(text);
        await client.query('COMMIT');
      });
    };
    for (const stem of files) await apply(`${stem}.up.sql`);
    await runOtpMigrations(fromTypeorm, first);
    expect(await tablesOf(fromSql)).toEqual(await tablesOf(fromTypeorm));
    expect(await withDataSource(fromSql, (ds) => listOtpPartitions(ds))).toHaveLength(8);
    for (const stem of [...files].reverse()) await apply(`${stem}.down.sql`);
    expect((await tablesOf(fromSql)).tables).toEqual([]);
  });
});

describe('uniqueness across partitions (partitioned layout)', () => {
  it('an idempotency key held by a row of another day refuses a second row with 23505 on otp_requests_idempotency_key_uq, until released', async () => {
    const url = await partitionedDatabase();
    await withClient(url, (client) => client.query('SELECT otp_requests_create_partitions(7, 2)'));
    await withClient(url, async (client) => {
      await insertRow(client, {
        destination: 'a@example.com',
        at: daysAgo(2, 3_600_000),
        key: 'k1',
        superseded: true,
      });
      const error = await errorOf(
        insertRow(client, { destination: 'b@example.com', at: new Date(), key: 'k1' }),
      );
      expect(error).toMatchObject({ code: '23505', constraint: 'otp_requests_idempotency_key_uq' });
      // A key released (as a send releases a stale one, or a failed delivery) can be taken again.
      await client.query(
        `UPDATE otp_requests SET idempotency_key = NULL WHERE idempotency_key = 'k1'`,
      );
      await insertRow(client, { destination: 'b@example.com', at: new Date(), key: 'k1' });
    });
  });

  it('two transactions taking one key: the second waits for the first, then fails; or takes it when the first rolls back', async () => {
    const url = await partitionedDatabase();
    await withClient(url, (client) => client.query('SELECT otp_requests_create_partitions(7, 1)'));
    const [a, b] = [
      new pg.Client({ connectionString: url }),
      new pg.Client({ connectionString: url }),
    ];
    await Promise.all([a.connect(), b.connect()]);
    try {
      for (const outcome of ['COMMIT', 'ROLLBACK'] as const) {
        const key = `race-${outcome}`;
        await a.query('BEGIN');
        await insertRow(a, {
          destination: `${outcome}-a@example.com`,
          at: daysAgo(1, 60_000),
          key,
        });
        let settled = false;
        const second = insertRow(b, {
          destination: `${outcome}-b@example.com`,
          at: new Date(),
          key,
        })
          .then(
            () => 'inserted',
            (error: { code?: string; constraint?: string }) => `${error.code} ${error.constraint}`,
          )
          .finally(() => (settled = true));
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(settled).toBe(false);
        await a.query(outcome);
        expect(await second).toBe(
          outcome === 'COMMIT' ? '23505 otp_requests_idempotency_key_uq' : 'inserted',
        );
      }
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });

  it('one active code per flow across days: a second live row raises 23505 on otp_requests_live_flow_uq; a superseded one does not', async () => {
    const url = await partitionedDatabase();
    await withClient(url, (client) => client.query('SELECT otp_requests_create_partitions(7, 1)'));
    await withClient(url, async (client) => {
      await client.query(`INSERT INTO otp_destinations VALUES ('flow@example.com', 1, now())`);
      await insertRow(client, { destination: 'flow@example.com', at: daysAgo(1, 60_000) });
      const error = await errorOf(
        insertRow(client, { destination: 'flow@example.com', at: new Date() }),
      );
      expect(error).toMatchObject({ code: '23505', constraint: 'otp_requests_live_flow_uq' });
      await insertRow(client, {
        destination: 'flow@example.com',
        at: new Date(),
        superseded: true,
      });
      // The send's own shape: supersede and insert in one statement.
      await client.query(
        `WITH released AS (UPDATE otp_requests SET superseded_at = now()
                             WHERE destination = 'flow@example.com' AND superseded_at IS NULL RETURNING 1)
         INSERT INTO otp_requests (id, destination, purpose, channel, code_length, max_attempts,
                                   expires_at, resend_available_at)
         SELECT gen_random_uuid(), 'flow@example.com', 'login', 'email', 6, 3, now(), now()
           FROM (SELECT count(*) FROM released) s`,
      );
      const rows = await client.query<{ active: boolean; n: number }>(
        `SELECT superseded_at IS NULL AS active, count(*)::int AS n FROM otp_requests
          GROUP BY 1 ORDER BY 1`,
      );
      expect(rows.rows).toEqual([
        { active: false, n: 2 },
        { active: true, n: 1 },
      ]);
    });
  });

  it('through the routes: a replay finds its request in an earlier partition, and a token verified there is consumed once', async () => {
    const url = await partitionedDatabase();
    // Two partitions split an hour ago instead of at midnight, so "a partition before the current
    // one, inside the 24 h window" exists whatever the time of day.
    for (const partition of await withDataSource(url, (ds) => listOtpPartitions(ds))) {
      await sql(url, `DROP TABLE ${partition.name}`);
    }
    await sql(
      url,
      `CREATE TABLE otp_requests_earlier (LIKE otp_requests INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`,
    );
    await sql(
      url,
      `CREATE TABLE otp_requests_current (LIKE otp_requests INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`,
    );
    await sql(
      url,
      `ALTER TABLE otp_requests ATTACH PARTITION otp_requests_earlier
                      FOR VALUES FROM (now() - interval '20 hours') TO (now() - interval '1 hour')`,
    );
    await sql(
      url,
      `ALTER TABLE otp_requests ATTACH PARTITION otp_requests_current
                      FOR VALUES FROM (now() - interval '1 hour') TO (now() + interval '2 days')`,
    );
    const t = await startTestApp({}, { databaseUrl: url });
    try {
      // A send two hours ago that a replay or a token comes back to, in the earlier partition.
      const toEarlier = (destination: string) =>
        sql(
          url,
          `UPDATE otp_requests SET created_at = now() - interval '2 hours' WHERE destination = $1`,
          [destination],
        );
      const email = uniqueEmail();
      const first = await t.http
        .post('/otp/send')
        .set('Idempotency-Key', `replay-${email}`)
        .send({ destination: email })
        .expect(202);
      await toEarlier(email);
      const [where] = await sql<{ partition: string }>(
        url,
        'SELECT tableoid::regclass::text AS partition FROM otp_requests WHERE destination = $1',
        [email],
      );
      expect(where?.partition).toBe('otp_requests_earlier');
      const replay = await t.http
        .post('/otp/send')
        .set('Idempotency-Key', `replay-${email}`)
        .send({ destination: email })
        .expect(202);
      expect(replay.body.requestId).toBe(first.body.requestId);

      const verified = await t.http
        .post('/otp/verify')
        .send({ destination: email, code: t.provider.lastCode(email) })
        .expect(200);
      await toEarlier(email);
      const token = verified.body.verificationToken as string;
      await t.http.post('/example/protected').set('X-OTP-Token', token).expect(200);
      await t.http.post('/example/protected').set('X-OTP-Token', token).expect(401);
    } finally {
      await t.close();
    }
  });
});

describe('partition upkeep and retention (the module’s own, without pg_partman)', () => {
  const cli = (url: string, args: string[]) =>
    promisify(execFile)('node', ['build/src/cli/nest-otp.js', ...args], {
      env: { ...process.env, DATABASE_URL: url },
    });

  /** `count` rows created `days` days before today's start plus `plusMs`. */
  const seedDay = (url: string, days: number, count: number) =>
    sql(
      url,
      `INSERT INTO otp_requests (id, destination, purpose, channel, code_length, max_attempts,
                                 created_at, expires_at, resend_available_at, delivery_status, verified_at)
       SELECT gen_random_uuid(), 'day' || $1 || '-' || g || '@example.com', 'login', 'sms', 6, 3,
              $2::timestamptz + make_interval(secs => g), now(), now(), 'sent', now()
         FROM generate_series(1, $3::int) g`,
      [days, daysAgo(days), count],
    );

  it('purge drops the whole days that ended past the retention, keeps the rest, and a dry run changes nothing', async () => {
    const url = await partitionedDatabase();
    await withClient(url, (client) => client.query('SELECT otp_requests_create_partitions(7, 5)'));
    for (const days of [5, 4, 3, 2, 1, 0]) await seedDay(url, days, 10 * (days + 1));
    const retention = 86_400 + 300;
    // Days ending before now - retention: 5, 4, 3 days ago surely; 2 days ago ends at yesterday's
    // start, which is more than 24 h 5 min ago unless it is just past midnight.
    const cutoff = Date.now() - retention * 1000;
    const doomedDays = [5, 4, 3, 2].filter((days) => daysAgo(days - 1).getTime() < cutoff);
    const name = (days: number) =>
      `otp_requests_p${daysAgo(days).toISOString().slice(0, 10).replace(/-/g, '_')}`;
    const rows = doomedDays.reduce((sum, days) => sum + 10 * (days + 1), 0);

    await withDataSource(url, async (ds) => {
      const dry = await purgeOtpRequests(ds, { olderThanSeconds: retention, dryRun: true });
      expect(dry).toMatchObject({ deleted: rows, partitionsDropped: doomedDays.map(name) });
      expect(await listOtpPartitions(ds)).toHaveLength(13);

      const done = await purgeOtpRequests(ds, { olderThanSeconds: retention });
      expect(done).toMatchObject({ deleted: rows, partitionsDropped: doomedDays.map(name) });
      expect((await listOtpPartitions(ds)).map((p) => p.name)).not.toEqual(
        expect.arrayContaining(doomedDays.map(name)),
      );
      expect(await listOtpPartitions(ds)).toHaveLength(13 - doomedDays.length);
    });
    const [left] = await sql<{ n: number }>(url, 'SELECT count(*)::int AS n FROM otp_requests');
    expect(left?.n).toBe(210 - rows);
  });

  it('the module makes the missing days ahead at start, and refuses to start with no partition for today that it could make', async () => {
    const url = await partitionedDatabase();
    const ahead = (await withDataSource(url, (ds) => listOtpPartitions(ds))).slice(2);
    for (const partition of ahead) await sql(url, `DROP TABLE ${partition.name}`);
    expect(await withDataSource(url, (ds) => listOtpPartitions(ds))).toHaveLength(2);
    const t = await startTestApp({}, { databaseUrl: url });
    await t.close();
    expect(await withDataSource(url, (ds) => listOtpPartitions(ds))).toHaveLength(8);

    // No partition at all, and none can be made: no send could be written, so the app stops.
    for (const partition of await withDataSource(url, (ds) => listOtpPartitions(ds))) {
      await sql(url, `DROP TABLE ${partition.name}`);
    }
    await sql(
      url,
      `ALTER FUNCTION otp_requests_create_partitions(integer, integer) RENAME TO broken`,
    );
    await expect(startTestApp({}, { databaseUrl: url })).rejects.toThrow(
      /otp_requests has no partition for today and making one failed/,
    );
  });

  it('npx nest-otp partitions makes the days ahead and drops the old ones (dry run first), nest-otp purge names what it dropped, and on the default layout partitions refuses', async () => {
    const url = await partitionedDatabase();
    await withClient(url, (client) => client.query('SELECT otp_requests_create_partitions(1, 4)'));
    await seedDay(url, 4, 7);
    const before = (await withDataSource(url, (ds) => listOtpPartitions(ds))).map((p) => p.name);

    const dry = await cli(url, ['partitions', '--days-ahead', '9', '--dry-run']);
    // Days -4 to +7 exist: +8 and +9 are missing; -4, -3, -2 ended more than a day ago.
    expect(dry.stdout).toMatch(
      /\(dry run\), kept by nest-otp: would make 2: .*; would drop 3: .* holding 7 rows/,
    );
    expect((await withDataSource(url, (ds) => listOtpPartitions(ds))).map((p) => p.name)).toEqual(
      before,
    );

    const done = await cli(url, ['partitions', '--days-ahead', '9']);
    expect(done.stdout).toMatch(/kept by nest-otp: made 2: .*; dropped 3: .* holding 7 rows/);
    const after = await withDataSource(url, (ds) => listOtpPartitions(ds));
    expect(after.at(-1)?.from).toEqual(daysAgo(-9));

    await seedDay(url, 0, 3);
    const purge = await cli(url, ['purge', '--older-than', String(10 * 86_400)]);
    expect(purge.stdout).toMatch(/removed 0 rows older than 864000 s \(0 daily partitions\)/);

    const plain = await freshDatabase();
    await runOtpMigrations(plain);
    await expect(cli(plain, ['partitions'])).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/otp_requests is not partitioned/),
    });
  });
});

describeWithPgPartman('partition upkeep and retention by pg_partman', () => {
  async function partmanDatabase(): Promise<string> {
    const url = await freshDatabase();
    await sql(url, 'CREATE SCHEMA partman');
    await sql(url, 'CREATE EXTENSION pg_partman SCHEMA partman');
    await runOtpMigrations(url, otpPartitionedMigrations);
    return url;
  }

  it('the migration registers otp_requests with pg_partman (daily, 7 ahead, UTC days), and the index migrations build on its partitions', async () => {
    const url = await partmanDatabase();
    const [config] = await sql(
      url,
      `SELECT partition_interval::text AS interval, premake, infinite_time_partitions AS infinite,
              retention FROM partman.part_config WHERE parent_table = 'public.otp_requests'`,
    );
    expect(config).toEqual({ interval: '1 day', premake: 7, infinite: true, retention: null });
    const partitions = await withDataSource(url, (ds) => listOtpPartitions(ds));
    expect(partitions.at(-1)).toMatchObject({ name: 'otp_requests_default', from: null, to: null });
    expect(partitions[0]).toMatchObject({ from: daysAgo(0), to: daysAgo(-1) });
    expect(await withDataSource(url, (ds) => otpTableLayout(ds))).toEqual({
      partitioned: true,
      partman: 'partman',
      parent: 'public.otp_requests',
    });
    // Every partition, the default one too, has the policy indexes, attached and valid.
    const [indexes] = await sql<{ missing: number; invalid: number }>(
      url,
      `SELECT (SELECT count(*)::int FROM pg_inherits i
                WHERE i.inhparent = 'otp_requests'::regclass AND NOT EXISTS (
                  SELECT 1 FROM pg_inherits ii JOIN pg_index x ON x.indexrelid = ii.inhrelid
                   WHERE ii.inhparent = 'otp_requests_destination_exhausted_at_idx'::regclass
                     AND x.indrelid = i.inhrelid)) AS missing,
              (SELECT count(*)::int FROM pg_index WHERE NOT indisvalid) AS invalid`,
    );
    expect(indexes).toEqual({ missing: 0, invalid: 0 });
    await withDataSource(url, async (ds) => {
      const runner = ds.createQueryRunner();
      try {
        await new AddPolicyIndexes1795300000002().down(runner);
        await new AddPolicyIndexes1795300000002().up(runner);
      } finally {
        await runner.release();
      }
    });
    expect(await sql(url, 'SELECT 1 FROM pg_index WHERE NOT indisvalid')).toEqual([]);
  }, 120_000);

  it('the module runs pg_partman’s maintenance at start, and purge drops old days through it', async () => {
    const url = await partmanDatabase();
    // Three days back, as if the table had been running; two days ahead gone.
    for (const days of [3, 2, 1]) {
      const name = `otp_requests_p${daysAgo(days).toISOString().slice(0, 10).replace(/-/g, '_')}`;
      await sql(
        url,
        `CREATE TABLE ${name} (LIKE otp_requests INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`,
      );
      await sql(
        url,
        `ALTER TABLE otp_requests ATTACH PARTITION ${name} FOR VALUES FROM ('${daysAgo(days).toISOString()}') TO ('${daysAgo(days - 1).toISOString()}')`,
      );
      await sql(
        url,
        `INSERT INTO otp_requests (id, destination, purpose, channel, code_length, max_attempts,
                                   created_at, expires_at, resend_available_at, verified_at)
         SELECT gen_random_uuid(), 'pm' || g || '@example.com', 'login', 'sms', 6, 3,
                $1::timestamptz + make_interval(secs => g), now(), now(), now()
           FROM generate_series(1, 5) g`,
        [daysAgo(days)],
      );
    }
    const last = (await withDataSource(url, (ds) => listOtpPartitions(ds))).filter((p) => p.to);
    for (const partition of last.slice(-2)) await sql(url, `DROP TABLE ${partition.name}`);

    const t = await startTestApp({}, { databaseUrl: url });
    await t.close();
    const made = (await withDataSource(url, (ds) => listOtpPartitions(ds))).filter((p) => p.to);
    // pg_partman counts the days made ahead from this moment, rounded: from noon UTC on, the day
    // seven days ahead counts as six and a half, and it makes an eighth.
    expect([daysAgo(-7), daysAgo(-8)]).toContainEqual(made.at(-1)?.from);

    const result = await withDataSource(url, (ds) =>
      purgeOtpRequests(ds, { olderThanSeconds: 86_400 + 300 }),
    );
    const gone = [3, 2].filter((days) => daysAgo(days - 1).getTime() < Date.now() - 86_700_000);
    expect(result).toMatchObject({ deleted: 5 * gone.length });
    expect(result.partitionsDropped).toHaveLength(gone.length);
    expect(await withDataSource(url, (ds) => createOtpPartitions(ds))).toEqual([]);
  }, 120_000);
});

/**
 * Retention on each layout: the default one deletes old rows in batches, the partitioned one drops
 * the day's partition and deletes no row, which is why it writes almost no WAL and leaves no dead
 * tuples. What each costs (time, WAL) is measured by the bench (`BENCH_SECTIONS=retention`), where
 * nothing else writes to the server at the same time; here, a trigger that refuses any row's
 * DELETE tells the two apart.
 */
describe('retention: partition drop against batched DELETE', () => {
  const rows = 2_000;

  const seedOld = (url: string) =>
    sql(
      url,
      `INSERT INTO otp_requests (id, destination, purpose, channel, code_length, max_attempts,
                                 created_at, expires_at, resend_available_at, delivery_status, verified_at)
       SELECT gen_random_uuid(), 'old-' || g || '@example.com', 'login', 'sms', 6, 3,
              $1::timestamptz + make_interval(secs => g), now(), now(), 'sent', now()
         FROM generate_series(1, $2::int) g`,
      [daysAgo(3), rows],
    );

  /** A row-level trigger on otp_requests (cloned to each partition) that fails any DELETE. */
  const refuseRowDeletes = (url: string) =>
    sql(
      url,
      `CREATE FUNCTION refuse_row_delete() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'a row was deleted one by one'; END $$;
       CREATE TRIGGER refuse_row_delete BEFORE DELETE ON otp_requests
         FOR EACH ROW EXECUTE FUNCTION refuse_row_delete();`,
    );

  const purge = (url: string) =>
    withDataSource(url, (ds) => purgeOtpRequests(ds, { olderThanSeconds: 2 * 86_400 }));

  it('drops the day as a partition on the partitioned layout, deleting no row one by one', async () => {
    const partitioned = await partitionedDatabase();
    await withClient(partitioned, (client) =>
      client.query('SELECT otp_requests_create_partitions(7, 3)'),
    );
    await seedOld(partitioned);
    await refuseRowDeletes(partitioned);

    const result = await purge(partitioned);

    expect(result).toMatchObject({ deleted: rows, partitionsDropped: [expect.any(String)] });
    expect(await sql(partitioned, 'SELECT 1 FROM otp_requests')).toEqual([]);
  }, 60_000);

  it('deletes row by row on the default layout, which the same trigger stops', async () => {
    const plain = await freshDatabase();
    await runOtpMigrations(plain);
    await seedOld(plain);

    expect(await purge(plain)).toMatchObject({ deleted: rows });

    await seedOld(plain);
    await refuseRowDeletes(plain);
    await expect(purge(plain)).rejects.toThrow('a row was deleted one by one');
    expect(await sql(plain, 'SELECT count(*)::int AS n FROM otp_requests')).toEqual([{ n: rows }]);
  }, 60_000);
});
