import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { appendFileSync, readdirSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { createUniqueDatabase, dropDatabase } from '../example/database.js';
import { AddPolicyIndexes1795300000002 } from '../migrations/1795300000002-AddPolicyIndexes.js';
import { MoveChecksToDomains1795300000008 } from '../migrations/1795300000008-MoveChecksToDomains.js';
import {
  OTP_SCHEMA_RELATIONS,
  otpMigrations,
  otpPartitionedMigrations,
} from '../migrations/index.js';
import { migrationFileStem, migrationsSqlDir } from '../scripts/migrations-sql.js';
import { listOtpPartitions } from '../src/otp/partitioning/otp-partitions.js';
import { purgeOtpRequests, type PurgeResult } from '../src/otp/retention/otp-retention.js';
import { httpTraffic, watchLockWaits, type TrafficCall } from './support/live-traffic.js';
import { withDataSource } from './support/data-source.js';
import { isHeapOnly } from './support/heap-only.js';
import { startTestApp, type TestApp } from './support/test-app.js';

const adminUrl = (): string => {
  const url = process.env.TEST_ADMIN_DATABASE_URL;
  if (!url) throw new Error('TEST_ADMIN_DATABASE_URL is not set: run the tests through jest.');
  return url;
};

const POLICY_INDEXES = [
  'otp_requests_destination_exhausted_at_idx',
  'otp_requests_destination_purpose_verified_at_idx',
];

const databases: string[] = [];
async function freshDatabase(): Promise<string> {
  const url = await createUniqueDatabase(adminUrl(), 'nest_otp_migsql');
  databases.push(url);
  return url;
}

afterAll(async () => {
  for (const url of databases) await dropDatabase(adminUrl(), url);
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

/** Runs migrations as a host does: TypeORM, each migration in its own transaction unless it says. */
async function runMigrations(
  url: string,
  migrations: readonly (typeof otpMigrations)[number][] = otpMigrations,
): Promise<void> {
  await withDataSource(url, (ds) => ds.runMigrations({ transaction: 'each' }), migrations);
}

/**
 * Splits a SQL file into statements as psql does: at semicolons outside quotes, dollar quotes and
 * comments (which are dropped).
 */
function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let current = '';
  let i = 0;
  while (i < sql.length) {
    const rest = sql.slice(i);
    const ch = sql[i] as string;
    if (rest.startsWith('--')) {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? sql.length : end + 1;
      current += ' ';
    } else if (rest.startsWith('/*')) {
      i = sql.indexOf('*/', i + 2) + 2;
      current += ' ';
    } else if (ch === "'" || ch === '"') {
      let j = i + 1;
      while (j < sql.length && !(sql[j] === ch && sql[j + 1] !== ch)) j += sql[j] === ch ? 2 : 1;
      current += sql.slice(i, j + 1);
      i = j + 1;
    } else if (/^\$(?:[A-Za-z_]\w*)?\$/.test(rest)) {
      const tag = (/^\$(?:[A-Za-z_]\w*)?\$/.exec(rest) as RegExpExecArray)[0];
      const end = sql.indexOf(tag, i + tag.length) + tag.length;
      current += sql.slice(i, end);
      i = end;
    } else if (ch === ';') {
      if (current.trim() !== '') statements.push(current.trim());
      current = '';
      i += 1;
    } else {
      current += ch;
      i += 1;
    }
  }
  if (current.trim() !== '') statements.push(current.trim());
  return statements;
}

/**
 * Applies one file of migrations/sql/ as its header says: in one transaction (psql
 * --single-transaction), or statement by statement outside any.
 */
async function applySqlFile(url: string, name: string): Promise<void> {
  const sql = readFileSync(join(migrationsSqlDir(), name), 'utf8');
  const outside = /^-- Run OUTSIDE a transaction/m.test(sql);
  await withClient(url, async (client) => {
    if (outside) {
      for (const statement of splitStatements(sql)) await client.query(statement);
      return;
    }
    await client.query('BEGIN');
    try {
      for (const statement of splitStatements(sql)) await client.query(statement);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK');
      throw error;
    }
  });
}

/** The files of the partitioned layout only (PartitionOtpRequests): not for the default layout. */
const PARTITIONED_ONLY = otpPartitionedMigrations
  .filter((migration) => !otpMigrations.some((other) => other === migration))
  .map((Migration) => migrationFileStem(new Migration()));

/** migrations/sql/'s files of the default layout, in the order psql would apply them. */
const sqlFiles = (direction: 'up' | 'down'): string[] =>
  readdirSync(migrationsSqlDir())
    .filter((name) => name.endsWith(`.${direction}.sql`))
    .filter((name) => !PARTITIONED_ONLY.some((stem) => name.startsWith(`${stem}.`)))
    .sort();

/** Tables, columns, indexes and constraints of the current schema, TypeORM's own table left out. */
async function schemaOf(url: string): Promise<Record<string, unknown[]>> {
  const own = `n.nspname = current_schema() AND t.relname NOT IN ('migrations', 'typeorm_metadata')`;
  return withClient(url, async (client) => {
    const rows = async (sql: string): Promise<unknown[]> =>
      (await client.query(sql)).rows as unknown[];
    return {
      // Tables, views, sequences; indexes below, with their tables.
      relations: await rows(`
        SELECT t.relname AS name, t.relkind AS kind FROM pg_class t
          JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE ${own} AND t.relname <> 'migrations_id_seq' AND t.relkind NOT IN ('i', 'I', 'c', 't')
         ORDER BY 1`),
      columns: await rows(`
        SELECT t.relname AS table, a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type,
               a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS default
          FROM pg_attribute a JOIN pg_class t ON t.oid = a.attrelid
          JOIN pg_namespace n ON n.oid = t.relnamespace
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE ${own} AND t.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY 1, a.attnum`),
      indexes: await rows(`
        SELECT t.relname AS table, i.relname AS index, pg_get_indexdef(x.indexrelid) AS definition,
               x.indisvalid AS valid
          FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
          JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE ${own} ORDER BY 2`),
      constraints: await rows(`
        SELECT t.relname AS table, c.conname AS name, pg_get_constraintdef(c.oid) AS definition
          FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
          JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE ${own} ORDER BY 1, 2`),
      domains: await rows(`
        SELECT d.typname AS name, format_type(d.typbasetype, d.typtypmod) AS base,
               c.conname AS constraint, pg_get_constraintdef(c.oid) AS definition
          FROM pg_type d JOIN pg_namespace n ON n.oid = d.typnamespace
          LEFT JOIN pg_constraint c ON c.contypid = d.oid
         WHERE d.typtype = 'd' AND n.nspname = current_schema() ORDER BY 1, 3`),
    };
  });
}

async function policyIndexes(
  url: string,
): Promise<{ name: string; valid: boolean; oid: number }[]> {
  return withClient(url, async (client) => {
    const { rows } = await client.query<{ name: string; valid: boolean; oid: number }>(
      `SELECT i.relname AS name, x.indisvalid AS valid, i.oid::int AS oid
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        WHERE i.relname = ANY($1) ORDER BY 1`,
      [POLICY_INDEXES],
    );
    return rows;
  });
}

const INSERT_ONE = `
  INSERT INTO otp_requests
    (id, destination, purpose, channel, code_length, max_attempts, expires_at, resend_available_at)
  VALUES (gen_random_uuid(), $1, 'login', 'email', 6, 3, now() + interval '5 minutes', now())`;

/** A table with history in it, as a live one has: 50k rows, a third exhausted, a third verified. */
async function liveTable(): Promise<string> {
  const url = await freshDatabase();
  await runMigrations(url, otpMigrations.slice(0, 2));
  await withClient(url, (client) =>
    client.query(`
      INSERT INTO otp_requests (id, destination, purpose, channel, code_length, max_attempts,
                                expires_at, resend_available_at, exhausted_at, verified_at)
      SELECT gen_random_uuid(), 'seed-' || i, 'login', 'sms', 6, 3, now(), now(),
             CASE WHEN i % 3 = 0 THEN now() END, CASE WHEN i % 3 = 1 THEN now() END
        FROM generate_series(1, 50000) AS i`),
  );
  return url;
}

interface Traffic {
  /** How long each insert took, in ms, and when it started. */
  inserts: { at: number; ms: number }[];
  failures: unknown[];
  stop(): Promise<void>;
}

/** One client inserting rows back to back, as sends do, until stopped. */
async function insertTraffic(url: string): Promise<Traffic> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const traffic = { inserts: [] as { at: number; ms: number }[], failures: [] as unknown[] };
  let running = true;
  const loop = (async () => {
    for (let n = 0; running; n += 1) {
      const at = performance.now();
      try {
        await client.query(INSERT_ONE, [`live-${n}@example.com`]);
      } catch (error) {
        traffic.failures.push(error);
      }
      traffic.inserts.push({ at, ms: performance.now() - at });
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  return {
    ...traffic,
    stop: async () => {
      running = false;
      await loop;
      await client.end();
    },
  };
}

/**
 * A second client's transaction that wrote a row and stays open for `ms`: an index build has to
 * wait for it (a plain CREATE INDEX for its lock, a concurrent one for it to end).
 */
async function openWriteTransaction(
  url: string,
  ms: number,
): Promise<{ committed: Promise<void> }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('BEGIN');
  await client.query(INSERT_ONE, [`long-transaction-${randomUUID()}@example.com`]);
  const committed = (async () => {
    await new Promise((resolve) => setTimeout(resolve, ms));
    await client.query('COMMIT');
    await client.end();
  })();
  return { committed };
}

describe('migrations/sql/ applied as plain SQL (psql, Flyway, Sqitch)', () => {
  it('the up files build the schema the TypeORM migrations build, and the down files remove it', async () => {
    const fromSql = await freshDatabase();
    const fromTypeorm = await freshDatabase();
    for (const name of sqlFiles('up')) await applySqlFile(fromSql, name);
    await runMigrations(fromTypeorm);

    const built = await schemaOf(fromSql);
    expect(built).toEqual(await schemaOf(fromTypeorm));
    expect(built.relations).toEqual([
      { name: 'otp_deliveries', kind: 'r' },
      { name: 'otp_destinations', kind: 'r' },
      { name: 'otp_fallbacks', kind: 'r' },
      { name: 'otp_requests', kind: 'r' },
    ]);
    expect(built.indexes).toEqual(
      expect.arrayContaining(
        OTP_SCHEMA_RELATIONS.filter((name) => name.endsWith('_idx')).map((index) =>
          expect.objectContaining({ index, valid: true }),
        ),
      ),
    );

    for (const name of sqlFiles('down').reverse()) await applySqlFile(fromSql, name);
    expect(await schemaOf(fromSql)).toEqual({
      relations: [],
      columns: [],
      indexes: [],
      constraints: [],
      domains: [],
    });
  }, 120_000);
});

describe('AddPolicyIndexes (online-safe)', () => {
  it('reverts with TypeORM in a transaction (as migration:revert does) and outside one', async () => {
    const url = await freshDatabase();
    // Up to the migration after AddPolicyIndexes: two undos revert it, whatever came later.
    const upTo = otpMigrations.slice(0, otpMigrations.indexOf(AddPolicyIndexes1795300000002) + 2);
    await runMigrations(url, upTo);
    const dataSource = await new DataSource({
      type: 'postgres',
      url,
      migrations: upTo,
    }).initialize();
    try {
      // typeorm/typeorm#11058: a revert runs in a transaction whatever the migration says.
      await dataSource.undoLastMigration({ transaction: 'each' });
      await dataSource.undoLastMigration({ transaction: 'each' });
      expect(await policyIndexes(url)).toEqual([]);
      await dataSource.runMigrations({ transaction: 'each' });
      expect((await policyIndexes(url)).map((i) => i.valid)).toEqual([true, true]);
      await dataSource.undoLastMigration({ transaction: 'none' });
      await dataSource.undoLastMigration({ transaction: 'none' });
      expect(await policyIndexes(url)).toEqual([]);
    } finally {
      await dataSource.destroy();
    }
  }, 120_000);

  it('resets the session timeouts it set, also when it fails', async () => {
    const url = await freshDatabase();
    const dataSource = await new DataSource({ type: 'postgres', url }).initialize();
    const runner = dataSource.createQueryRunner();
    try {
      const timeouts = () =>
        runner.query(`SELECT current_setting('lock_timeout') AS lock,
                             current_setting('statement_timeout') AS statement`);
      const before: unknown = await timeouts();
      // No otp_requests yet: the first CREATE INDEX fails.
      await expect(new AddPolicyIndexes1795300000002().up(runner)).rejects.toThrow(/otp_requests/);
      expect(await timeouts()).toEqual(before);
      await runMigrations(url, otpMigrations.slice(0, 2));
      await new AddPolicyIndexes1795300000002().up(runner);
      expect(await timeouts()).toEqual(before);
      await new AddPolicyIndexes1795300000002().down(runner);
      expect(await timeouts()).toEqual(before);
      expect(await policyIndexes(url)).toEqual([]);
    } finally {
      await runner.release();
      await dataSource.destroy();
    }
  }, 120_000);

  it('rebuilds an index a failed concurrent build left INVALID, and keeps a valid one', async () => {
    const url = await freshDatabase();
    await runMigrations(url, otpMigrations.slice(0, 2));
    await withClient(url, async (client) => {
      await client.query(INSERT_ONE, ['not-a-number@example.com']);
      // A build that fails half-way, as a timeout or a cancel would: the index stays, INVALID.
      await expect(
        client.query(
          `CREATE INDEX CONCURRENTLY ${POLICY_INDEXES[0]} ON otp_requests ((destination::int))`,
        ),
      ).rejects.toThrow(/invalid input syntax/);
      // The other one was built before the failure.
      await client.query(
        `CREATE INDEX CONCURRENTLY ${POLICY_INDEXES[1]}
           ON otp_requests (destination, verified_at, purpose) WHERE verified_at IS NOT NULL`,
      );
    });
    const [invalid, valid] = await policyIndexes(url);
    expect(invalid).toMatchObject({ name: POLICY_INDEXES[0], valid: false });

    await runMigrations(url);

    const after = await policyIndexes(url);
    expect(after.map(({ name, valid }) => ({ name, valid }))).toEqual(
      POLICY_INDEXES.map((name) => ({ name, valid: true })),
    );
    expect(after[1]?.oid).toBe(valid?.oid);
    const [definition] = await withClient(
      url,
      async (client) =>
        (
          await client.query<{ d: string }>(`SELECT pg_get_indexdef($1::regclass) AS d`, [
            POLICY_INDEXES[0],
          ])
        ).rows,
    );
    expect(definition?.d).toMatch(
      /\(destination, exhausted_at\) WHERE \(exhausted_at IS NOT NULL\)/,
    );
  }, 120_000);

  // A write transaction stays open for 3 s while the index migration runs; a client keeps
  // inserting. Timings are generous: a CI run may load this machine.
  const HOLD_MS = 3_000;

  it('builds its indexes while inserts go on: none waits 1 s, nothing fails, the indexes end valid', async () => {
    const url = await liveTable();
    const traffic = await insertTraffic(url);
    const { committed } = await openWriteTransaction(url, HOLD_MS);
    const start = performance.now();
    try {
      await runMigrations(url, otpMigrations.slice(0, 3));
    } finally {
      await committed;
      await traffic.stop();
    }
    const end = performance.now();
    // The build waited for the open transaction, so traffic ran all along it.
    expect(end - start).toBeGreaterThan(HOLD_MS / 2);
    const during = traffic.inserts.filter((insert) => insert.at >= start && insert.at <= end);
    expect(during.length).toBeGreaterThan(10);
    expect(traffic.failures).toEqual([]);
    expect(Math.max(...traffic.inserts.map((insert) => insert.ms))).toBeLessThan(1_000);
    expect(await policyIndexes(url)).toEqual(
      POLICY_INDEXES.map((name) => expect.objectContaining({ name, valid: true })),
    );
  }, 120_000);

  it('(control) a plain CREATE INDEX under the same traffic makes inserts wait', async () => {
    const url = await liveTable();
    const traffic = await insertTraffic(url);
    const { committed } = await openWriteTransaction(url, HOLD_MS);
    try {
      await withClient(url, (client) =>
        client.query(
          `CREATE INDEX plain_idx ON otp_requests (destination, exhausted_at)
            WHERE exhausted_at IS NOT NULL`,
        ),
      );
    } finally {
      await committed;
      await traffic.stop();
    }
    expect(traffic.failures).toEqual([]);
    expect(Math.max(...traffic.inserts.map((insert) => insert.ms))).toBeGreaterThan(1_000);
  }, 120_000);
});

describe('MoveChecksToDomains and MergeOtpRequestsChecks (online-safe)', () => {
  const before = otpMigrations.slice(0, otpMigrations.indexOf(MoveChecksToDomains1795300000008));
  /** Through MergeOtpRequestsChecks: the two migrations under test, and nothing after them. */
  const through = otpMigrations.slice(
    0,
    otpMigrations.indexOf(MoveChecksToDomains1795300000008) + 2,
  );

  /** Every relation of the module's tables (tables and indexes) with its file: a rewrite changes it. */
  const files = (url: string): Promise<Record<string, number>> =>
    withClient(url, async (client) => {
      const { rows } = await client.query<{ name: string; file: number }>(
        `SELECT c.relname AS name, c.relfilenode::int AS file FROM pg_class c
          WHERE c.relkind IN ('r', 'i') AND c.relname LIKE 'otp\_%'`,
      );
      return Object.fromEntries(rows.map((row) => [row.name, row.file]));
    });

  /** Sequential scans of the two tables it retypes, once no other session of the database is left. */
  const scans = (url: string): Promise<number> =>
    withClient(url, async (client) => {
      // A backend's counts reach the shared statistics when it ends: wait for the migration's.
      for (let tries = 0; ; tries += 1) {
        const { rows } = await client.query<{ others: number }>(
          `SELECT count(*)::int AS others FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid()`,
        );
        if (rows[0]?.others === 0 || tries > 100) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await client.query('SELECT pg_stat_clear_snapshot()');
      const { rows } = await client.query<{ scans: number }>(
        `SELECT sum(seq_scan)::int AS scans FROM pg_stat_user_tables
          WHERE relname IN ('otp_requests', 'otp_deliveries')`,
      );
      return rows[0]?.scans ?? 0;
    });

  /** The CHECK constraints of otp_requests, by name. */
  const checksOfRequests = (url: string): Promise<{ name: string; definition: string }[]> =>
    withClient(
      url,
      async (client) =>
        (
          await client.query<{ name: string; definition: string }>(
            `SELECT conname AS name, pg_get_constraintdef(oid) AS definition FROM pg_constraint
              WHERE conrelid = 'otp_requests'::regclass AND contype = 'c' ORDER BY 1`,
          )
        ).rows,
    );

  /** Each rule, as a write it must refuse; `$1` is a request id. */
  const REFUSED = [
    `INSERT INTO otp_requests (id, destination, purpose, channel, code_length, max_attempts,
       expires_at, resend_available_at) VALUES ($1, 'a@example.com', 'x', 'fax', 6, 3, now(), now())`,
    `INSERT INTO otp_requests (id, destination, purpose, channel, code_length, max_attempts,
       expires_at, resend_available_at) VALUES ($1, 'a@example.com', 'x', 'sms', 3, 3, now(), now())`,
    `INSERT INTO otp_requests (id, destination, purpose, channel, code_length, max_attempts,
       expires_at, resend_available_at) VALUES ($1, 'a@example.com', 'x', 'sms', 11, 3, now(), now())`,
    `INSERT INTO otp_requests (id, destination, purpose, channel, code_length, max_attempts,
       expires_at, resend_available_at) VALUES ($1, 'a@example.com', 'x', 'sms', 6, 0, now(), now())`,
    `INSERT INTO otp_requests (id, destination, purpose, channel, code_length, max_attempts,
       expires_at, resend_available_at, delivery_status)
     VALUES ($1, 'a@example.com', 'x', 'sms', 6, 3, now(), now(), 'lost')`,
    `INSERT INTO otp_requests (id, destination, purpose, channel, code_length, max_attempts,
       attempts_used, expires_at, resend_available_at)
     VALUES ($1, 'a@example.com', 'x', 'sms', 6, 3, 4, now(), now())`,
    `INSERT INTO otp_requests (id, destination, purpose, channel, code_length, max_attempts,
       expires_at, resend_available_at, verified_at, exhausted_at)
     VALUES ($1, 'a@example.com', 'x', 'sms', 6, 3, now(), now(), now(), now())`,
    `UPDATE otp_requests SET channel = 'fax' WHERE id = (SELECT id FROM otp_requests LIMIT 1)
       AND $1::uuid IS NOT NULL`,
    ...[
      `'fax', 'sent', 'send', NULL, NULL`,
      `'sms', 'lost', 'send', NULL, NULL`,
      `'sms', 'sent', 'retry', NULL, NULL`,
      `'sms', 'sent', 'send', repeat('a', 255), NULL`,
      `'sms', 'sent', 'send', NULL, repeat('e', 33)`,
    ].map(
      (values) => `INSERT INTO otp_deliveries (request_id, seq, provider, channel, status, cause,
         delivered_to, error_code) VALUES ($1, 1, 'p', ${values})`,
    ),
  ];

  /** SQLSTATE of each write in REFUSED (none committed), and whether a valid pair of rows goes in. */
  const rulesHeld = (url: string): Promise<{ refused: unknown[]; accepted: boolean }> =>
    withClient(url, async (client) => {
      const refused: unknown[] = [];
      for (const sql of REFUSED) {
        const outcome = await client.query(sql, [randomUUID()]).then(
          () => 'accepted',
          (error: { code?: string }) => error.code,
        );
        refused.push(outcome);
      }
      const id = randomUUID();
      await client.query(
        `INSERT INTO otp_requests (id, destination, purpose, channel, code_length, max_attempts,
           expires_at, resend_available_at) VALUES ($1, $2, 'x', 'push', 10, 1, now(), now())`,
        [id, `${id}@example.com`],
      );
      const { rowCount } = await client.query(
        `INSERT INTO otp_deliveries (request_id, seq, provider, channel, status, cause,
           delivered_to, error_code) VALUES ($1, 1, 'p', 'push', 'undelivered', 'silence',
           repeat('a', 254), repeat('e', 32))`,
        [id],
      );
      return { refused, accepted: rowCount === 1 };
    });

  const everyRuleHeld = { refused: REFUSED.map(() => '23514'), accepted: true };

  it('rewrites, rebuilds and scans nothing on a table with history, and every rule still holds', async () => {
    const url = await freshDatabase();
    await runMigrations(url, before);
    await withClient(url, async (client) => {
      await client.query(`
        INSERT INTO otp_requests (id, destination, purpose, channel, code_length, max_attempts,
                                  expires_at, resend_available_at, superseded_at)
        SELECT gen_random_uuid(), 'seed-' || i, 'login', 'sms', 6, 3, now(), now(), now()
          FROM generate_series(1, 20000) AS i`);
      await client.query(`
        INSERT INTO otp_deliveries (request_id, seq, channel, provider, status, cause)
        SELECT id, 1, channel, 'webhook', 'sent', 'send' FROM otp_requests`);
    });
    expect(await rulesHeld(url)).toEqual(everyRuleHeld);
    const filesBefore = await files(url);
    const scansBefore = await scans(url);

    await runMigrations(url, through);

    expect(await files(url)).toEqual(filesBefore);
    expect(await scans(url)).toBe(scansBefore);
    expect(await rulesHeld(url)).toEqual(everyRuleHeld);
    const domains = await withClient(
      url,
      async (client) =>
        (
          await client.query<{ column: string; type: string }>(
            `SELECT table_name || '.' || column_name AS column, domain_name AS type
               FROM information_schema.columns
              WHERE table_schema = current_schema() AND domain_name IS NOT NULL ORDER BY 1`,
          )
        ).rows,
    );
    expect(domains).toEqual([
      { column: 'otp_deliveries.cause', type: 'otp_delivery_cause' },
      { column: 'otp_deliveries.channel', type: 'otp_delivery_channel' },
      { column: 'otp_deliveries.delivered_to', type: 'otp_delivered_to' },
      { column: 'otp_deliveries.error_code', type: 'otp_error_code' },
      { column: 'otp_deliveries.status', type: 'otp_delivery_status' },
      { column: 'otp_requests.channel', type: 'otp_channel' },
      { column: 'otp_requests.code_length', type: 'otp_code_length' },
    ]);

    expect(await checksOfRequests(url)).toEqual([
      { name: 'otp_requests_max_attempts_check', definition: 'CHECK ((max_attempts >= 1))' },
      {
        name: 'otp_requests_row_check',
        definition: expect.stringMatching(/ NOT VALID$/) as unknown,
      },
    ]);

    // Reverted, newest first: the table CHECKs are back, the domains gone, the rules as before.
    await withDataSource(
      url,
      async (dataSource) => {
        await dataSource.undoLastMigration({ transaction: 'each' });
        await dataSource.undoLastMigration({ transaction: 'each' });
      },
      otpMigrations,
    );
    expect((await checksOfRequests(url)).map((check) => check.name)).toEqual([
      'otp_requests_channel_push_check',
      'otp_requests_check',
      'otp_requests_check1',
      'otp_requests_code_length_check',
      'otp_requests_delivery_status_check',
      'otp_requests_max_attempts_check',
    ]);
    expect(await files(url)).toEqual(filesBefore);
    expect(await rulesHeld(url)).toEqual(everyRuleHeld);
    expect((await schemaOf(url)).domains).toEqual([]);
  }, 120_000);
});

/**
 * History as a busy service has it: `rows` sends over the last three days, to 200k destinations,
 * none still active (a third exhausted, a third verified, a third superseded), so the policy
 * indexes have a third of the table each to build from. One INSERT … SELECT.
 */
async function seedHistory(url: string, rows: number): Promise<void> {
  await withClient(url, async (client) => {
    await client.query(
      `INSERT INTO otp_requests (id, destination, purpose, channel, code_length, max_attempts,
                                 created_at, expires_at, resend_available_at, delivery_status,
                                 exhausted_at, verified_at, superseded_at)
       SELECT gen_random_uuid(), 'seed-' || (i % 200000) || '@example.com', 'login', 'sms', 6, 3,
              now() - make_interval(secs => (i % 259000) + 60), now(), now(), 'sent',
              CASE WHEN i % 3 = 0 THEN now() END, CASE WHEN i % 3 = 1 THEN now() END,
              CASE WHEN i % 3 = 2 THEN now() END
         FROM generate_series(1, $1::int) AS i`,
      [rows],
    );
    await client.query('VACUUM ANALYZE otp_requests');
  });
}

/** AddPolicyIndexes' own up / down, on a connection of their own outside any transaction. */
async function policyIndexMigration(url: string, direction: 'up' | 'down'): Promise<void> {
  const dataSource = await new DataSource({ type: 'postgres', url }).initialize();
  const runner = dataSource.createQueryRunner();
  try {
    await new AddPolicyIndexes1795300000002()[direction](runner);
  } finally {
    await runner.release();
    await dataSource.destroy();
  }
}

/** Writes what a live-traffic run measured as one JSON line to MIGRATION_LOG, when it is set. */
function recordFigures(name: string, figures: Record<string, unknown>): void {
  const file = process.env.MIGRATION_LOG;
  if (file) appendFileSync(file, `${JSON.stringify({ run: name, ...figures })}\n`);
}

const summarize = (calls: readonly TrafficCall[]) => ({
  calls: calls.length,
  maxMs: Math.round(Math.max(...calls.map((call) => call.ms))),
  p99Ms: Math.round(
    [...calls].sort((a, b) => a.ms - b.ms)[Math.floor(calls.length * 0.99)]?.ms ?? NaN,
  ),
});

// The bar: while an index migration runs on a 1M-row otp_requests, sends and verifies from
// several clients on two app instances keep answering as usual, none waiting a second. A write
// transaction held open for HOLD_MS makes the concurrent build wait (as a slow job's transaction
// would), so traffic runs all along a build that lasts seconds.
const LIVE_ROWS = 1_000_000;
const LIVE_HOLD_MS = 3_000;
const LIVE_CLIENTS = 6;

describe.each(['default', 'partitioned'] as const)(
  'AddPolicyIndexes under live HTTP traffic (%s layout, 1M rows)',
  (layout) => {
    let url: string;
    let apps: TestApp[] = [];
    beforeAll(async () => {
      url = await freshDatabase();
      if (layout === 'partitioned') {
        await runMigrations(url, otpPartitionedMigrations);
        // The seeded history spans three days back.
        await withClient(url, (client) =>
          client.query('SELECT otp_requests_create_partitions(7, 3)'),
        );
      } else {
        await runMigrations(url);
      }
      await seedHistory(url, LIVE_ROWS);
      for (let i = 0; i < 2; i += 1) {
        apps.push(await startTestApp({ throttleLimit: 1_000_000_000 }, { databaseUrl: url }));
      }
    }, 240_000);
    afterAll(async () => {
      await Promise.all(apps.map((t) => t.close()));
      apps = [];
    });

    /** Traffic before, during and after `migrate`; what it saw, and how long `migrate` took. */
    async function underTraffic(migrate: () => Promise<void>) {
      const traffic = httpTraffic(apps, LIVE_CLIENTS);
      const locks = await watchLockWaits(url).catch(async (error: unknown) => {
        await traffic.stop();
        throw error;
      });
      let start = performance.now();
      let end = start;
      let waits = { maxMs: NaN, samples: 0, waiting: 0 };
      try {
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        const { committed } = await openWriteTransaction(url, LIVE_HOLD_MS);
        try {
          start = performance.now();
          await migrate();
          end = performance.now();
          await new Promise((resolve) => setTimeout(resolve, 500));
        } finally {
          await committed;
        }
      } finally {
        await traffic.stop();
        waits = await locks.stop();
      }
      const during = traffic.calls.filter((call) => call.at >= start && call.at <= end);
      return { calls: traffic.calls, during, waits, migrationMs: end - start };
    }

    it('builds its indexes while clients send and verify: none waits 1 s, every answer as expected', async () => {
      await policyIndexMigration(url, 'down');
      expect(await policyIndexes(url)).toEqual([]);

      const run = await underTraffic(() => policyIndexMigration(url, 'up'));

      recordFigures(`AddPolicyIndexes up, ${layout} layout`, {
        rows: LIVE_ROWS,
        migrationMs: Math.round(run.migrationMs),
        all: summarize(run.calls),
        during: summarize(run.during),
        lockWaitMaxMs: Math.round(run.waits.maxMs),
      });
      // The build waited for the open transaction: traffic ran all along it.
      expect(run.migrationMs).toBeGreaterThan(LIVE_HOLD_MS / 2);
      expect(run.during.filter((call) => call.step === 'send').length).toBeGreaterThan(10);
      expect(run.during.filter((call) => call.step === 'verify').length).toBeGreaterThan(10);
      expect(run.calls.filter((call) => call.status !== call.expected)).toEqual([]);
      expect(Math.max(...run.calls.map((call) => call.ms))).toBeLessThan(1_000);
      expect(run.waits.samples).toBeGreaterThan(10);
      expect(run.waits.maxMs).toBeLessThan(1_000);
      expect(await policyIndexes(url)).toEqual(
        POLICY_INDEXES.map((name) => expect.objectContaining({ name, valid: true })),
      );
    }, 120_000);

    if (layout === 'partitioned') {
      it('drops the days past retention while clients send and verify: none waits 1 s, every answer as expected', async () => {
        const before = await withDataSource(url, (ds) => listOtpPartitions(ds));
        let result: PurgeResult | undefined;
        const run = await underTraffic(async () => {
          result = await withDataSource(url, (ds) =>
            purgeOtpRequests(ds, { olderThanSeconds: 86_400 }),
          );
        });
        recordFigures(`purge (partition drop), ${layout} layout`, {
          partitions: result?.partitionsDropped,
          rows: result?.deleted,
          migrationMs: Math.round(run.migrationMs),
          all: summarize(run.calls),
          during: summarize(run.during),
          lockWaitMaxMs: Math.round(run.waits.maxMs),
        });
        // The day two days back ended more than 24 h ago, whatever the time: a third of the seeded
        // rows at least. Each DETACH … CONCURRENTLY waited for the open transaction.
        expect(result?.partitionsDropped?.length).toBeGreaterThanOrEqual(1);
        expect(result?.deleted).toBeGreaterThan(300_000);
        expect(await withDataSource(url, (ds) => listOtpPartitions(ds))).toHaveLength(
          before.length - (result?.partitionsDropped?.length ?? 0),
        );
        expect(run.migrationMs).toBeGreaterThan(LIVE_HOLD_MS / 2);
        expect(run.calls.filter((call) => call.status !== call.expected)).toEqual([]);
        expect(Math.max(...run.calls.map((call) => call.ms))).toBeLessThan(1_000);
        expect(run.waits.maxMs).toBeLessThan(1_000);
      }, 120_000);
    }

    if (layout === 'default') {
      it('(control) a plain CREATE INDEX under the same traffic makes requests wait over 1 s', async () => {
        await policyIndexMigration(url, 'down');
        const run = await underTraffic(() =>
          withClient(url, async (client) => {
            await client.query(
              `CREATE INDEX ${POLICY_INDEXES[0]} ON otp_requests (destination, exhausted_at)
                WHERE exhausted_at IS NOT NULL`,
            );
          }),
        );
        recordFigures(`plain CREATE INDEX (control), ${layout} layout`, {
          rows: LIVE_ROWS,
          migrationMs: Math.round(run.migrationMs),
          all: summarize(run.calls),
          lockWaitMaxMs: Math.round(run.waits.maxMs),
        });
        expect(run.waits.maxMs).toBeGreaterThan(1_000);
        expect(Math.max(...run.calls.map((call) => call.ms))).toBeGreaterThan(1_000);
        await policyIndexMigration(url, 'up');
      }, 120_000);
    }
  },
);

describe('IndexLiveFlows: one live code per flow, and a delivery recorded as a HOT update', () => {
  const NEW = 'otp_requests_live_flow';
  const OLD = 'otp_requests_active_flow';

  /**
   * Whether each row of `destinations` stands as a heap-only tuple (pageinspect's
   * `HEAP_ONLY_TUPLE`), which only a HOT update writes: one that added no index entry.
   */
  const heapOnly = (url: string, destinations: string[]): Promise<boolean[]> =>
    withClient(url, async (client) => {
      await client.query('CREATE EXTENSION IF NOT EXISTS pageinspect');
      const { rows } = await client.query<{ heap_only: boolean }>(
        `SELECT ${isHeapOnly('r')} AS heap_only
           FROM otp_requests r WHERE r.destination = ANY($1::text[]) ORDER BY r.destination`,
        [destinations],
      );
      return rows.map((row) => row.heap_only);
    });

  /** Sends through the routes, one code to each of `count` new destinations. */
  const sendThroughRoutes = async (url: string, count: number): Promise<string[]> => {
    const t = await startTestApp({}, { databaseUrl: url });
    const destinations = Array.from({ length: count }, () => `hot-${randomUUID()}@example.com`);
    try {
      for (const destination of destinations) {
        const res = await t.http.post('/otp/send').send({ destination });
        expect(res.status).toBe(202);
      }
    } finally {
      await t.close();
    }
    return destinations;
  };

  /** The send's two writes as SQL: the insert of a live code, then its delivery record. */
  const sendInSql = (url: string, count: number): Promise<string[]> =>
    withClient(url, async (client) => {
      const destinations = Array.from({ length: count }, () => `sql-${randomUUID()}@example.com`);
      for (const destination of destinations) {
        const { rows } = await client.query<{ id: string }>(
          `INSERT INTO otp_requests (id, destination, purpose, channel, code_hash, code_length,
             max_attempts, expires_at, resend_available_at)
           VALUES (gen_random_uuid(), $1, 'login', 'email', 'hash', 6, 3,
             now() + interval '5 minutes', now()) RETURNING id`,
          [destination],
        );
        await client.query(
          `UPDATE otp_requests SET delivery_status = 'sent', delivered_at = now(),
             delivered_by = 'webhook', delivered_to = destination WHERE id = $1`,
          [rows[0]?.id],
        );
      }
      return destinations;
    });

  /** The flow indexes there are, each with whether it is valid. */
  const flowIndexes = (url: string): Promise<Record<string, boolean>> =>
    withClient(url, async (client) => {
      const { rows } = await client.query<{ name: string; valid: boolean }>(
        `SELECT c.relname AS name, x.indisvalid AS valid FROM pg_index x
           JOIN pg_class c ON c.oid = x.indexrelid
          WHERE x.indrelid = 'otp_requests'::regclass AND c.relname LIKE '%_flow_%'`,
      );
      return Object.fromEntries(rows.map((row) => [row.name, row.valid]));
    });

  for (const layout of ['default', 'partitioned'] as const) {
    const migrations = layout === 'default' ? otpMigrations : otpPartitionedMigrations;
    const suffix = layout === 'default' ? 'uq' : 'idx';

    it(`${layout} layout: builds over a flow's ended codes, a send's delivery record is HOT; reverted (in a transaction and outside one), the old index is back and it is not`, async () => {
      const url = await freshDatabase();
      await runMigrations(url, migrations.slice(0, -1));
      if (layout === 'partitioned') {
        await withClient(url, (client) =>
          client.query('SELECT otp_requests_create_partitions(7, 1)'),
        );
      }
      // One flow's history the old index allowed: a failed delivery (not superseded) and the live
      // code sent after it.
      await withClient(url, (client) =>
        client.query(
          `INSERT INTO otp_requests (id, destination, purpose, channel, code_hash, code_length,
             max_attempts, expires_at, resend_available_at, delivery_status, superseded_at)
           SELECT gen_random_uuid(), 'flow@example.com', 'login', 'email', h, 6, 3,
                  now() + interval '5 minutes', now(), s, NULL
             FROM (VALUES (NULL, 'failed'), ('hash', 'sent')) AS v(h, s)`,
        ),
      );
      await runMigrations(url, migrations);
      expect(await flowIndexes(url)).toEqual({ [`${NEW}_${suffix}`]: true });
      expect(await heapOnly(url, await sendThroughRoutes(url, 5))).toEqual(Array(5).fill(true));
      expect(await heapOnly(url, await sendInSql(url, 3))).toEqual(Array(3).fill(true));
      // The flow keeps one live code: a second is refused.
      await expect(
        withClient(url, (client) =>
          client.query(
            `INSERT INTO otp_requests (id, destination, purpose, channel, code_hash, code_length,
               max_attempts, expires_at, resend_available_at)
             VALUES (gen_random_uuid(), 'flow@example.com', 'login', 'email', 'hash', 6, 3,
               now() + interval '5 minutes', now())`,
          ),
        ),
      ).rejects.toMatchObject({ code: '23505', constraint: 'otp_requests_live_flow_uq' });

      for (const transaction of ['none', 'each'] as const) {
        // What the live-flow index allows and the old one would refuse: a code that expired and
        // lost its hash before the next send, not superseded by it, beside that send's live code.
        const stale = `stale-${transaction}@example.com`;
        await withClient(url, (client) =>
          client.query(
            `INSERT INTO otp_requests (id, destination, purpose, channel, code_hash, code_length,
               max_attempts, created_at, expires_at, resend_available_at, delivery_status)
             SELECT gen_random_uuid(), $1, 'login', 'email', h, 6, 3, now() - ago,
                    now() - ago + interval '5 minutes', now(), 'sent'
               FROM (VALUES (NULL, interval '10 minutes'), ('hash', interval '0 minutes'))
                 AS v(h, ago)`,
            [stale],
          ),
        );
        await withDataSource(url, (ds) => ds.undoLastMigration({ transaction }), migrations);
        expect(await flowIndexes(url)).toEqual({ [`${OLD}_${suffix}`]: true });
        // The expired one is marked superseded at its expiry; the live one is left as it was.
        const ended = await withClient(url, async (client) => {
          const { rows } = await client.query<{ hash: boolean; at_expiry: boolean | null }>(
            `SELECT code_hash IS NOT NULL AS hash, superseded_at = expires_at AS at_expiry
               FROM otp_requests WHERE destination = $1 ORDER BY created_at`,
            [stale],
          );
          return rows;
        });
        expect(ended).toEqual([
          { hash: false, at_expiry: true },
          { hash: true, at_expiry: null },
        ]);
        // The control: under the old index's predicate a delivery record is never HOT.
        expect(await heapOnly(url, await sendInSql(url, 3))).toEqual(Array(3).fill(false));
        await runMigrations(url, migrations);
        expect(await flowIndexes(url)).toEqual({ [`${NEW}_${suffix}`]: true });
      }
    }, 120_000);
  }
});
