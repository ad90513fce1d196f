import type { DataSource, QueryRunner } from 'typeorm';
import { POLICY_WINDOW_SECONDS } from '../policy/send-policy.js';

/**
 * The partitioned layout's upkeep (`otpPartitionedMigrations`, docs/scaling.md): daily partitions
 * made ahead, and whole days dropped once older than the retention. pg_partman does both ends when
 * the database registered otp_requests with it (the migration does, when the extension is there);
 * otherwise the module does, with the SQL function its migration installed and `DETACH PARTITION
 * … CONCURRENTLY`. Called by the module at start and every hour (`OtpRetentionService`), by
 * `purgeOtpRequests()`, and by `npx nest-otp partitions` (cron).
 */

/** How otp_requests is laid out. */
export type OtpTableLayout =
  | { partitioned: false }
  | {
      partitioned: true;
      /** The schema of pg_partman when it manages otp_requests, else null (the module does). */
      partman: string | null;
      /** `schema.otp_requests`, as pg_partman names it. */
      parent: string;
    };

/** Days of partitions kept ready ahead of today (UTC). */
export const DEFAULT_PARTITION_DAYS_AHEAD = 7;

/**
 * How long a statement that queues sends behind it (pg_partman's DROP TABLE, which locks the whole
 * table; its ATTACH next to the default partition) may wait for its lock in one try; tries are a
 * second apart, so a request waits at most this long.
 */
const SHORT_LOCK_TIMEOUT = '200ms';
const SHORT_LOCK_TRIES = 60;

export async function otpTableLayout(dataSource: DataSource): Promise<OtpTableLayout> {
  const [row] = await select<{ kind: string | null; parent: string; partman: string | null }>(
    dataSource,
    `SELECT (SELECT relkind::text FROM pg_class WHERE oid = to_regclass('otp_requests')) AS kind,
            format('%s.otp_requests', quote_ident(current_schema())) AS parent,
            (SELECT extnamespace::regnamespace::text FROM pg_extension
              WHERE extname = 'pg_partman') AS partman`,
  );
  if (!row || row.kind !== 'p') return { partitioned: false };
  let partman: string | null = null;
  if (row.partman !== null) {
    const [managed] = await select<{ managed: boolean }>(
      dataSource,
      `SELECT EXISTS (SELECT 1 FROM ${row.partman}.part_config WHERE parent_table = $1) AS managed`,
      [row.parent],
    );
    if (managed?.managed) partman = row.partman;
  }
  return { partitioned: true, partman, parent: row.parent };
}

/** One partition of otp_requests. */
export interface OtpPartition {
  name: string;
  /** Its range, `[from, to)`; null for pg_partman's default partition. */
  from: Date | null;
  to: Date | null;
  /** A `DETACH … CONCURRENTLY` that did not finish (it is finalized before the drop). */
  detachPending: boolean;
}

/** The partitions of otp_requests, oldest first (pg_partman's default partition last). */
export async function listOtpPartitions(runner: DataSource | QueryRunner): Promise<OtpPartition[]> {
  const rows = await select<{ name: string; from: Date | null; to: Date | null; pending: boolean }>(
    runner,
    `SELECT c.relname AS name, i.inhdetachpending AS pending,
            (regexp_match(b.bound, 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz AS "from",
            (regexp_match(b.bound, 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS "to"
       FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid,
            LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) b
      WHERE i.inhparent = 'otp_requests'::regclass
      ORDER BY 3 NULLS LAST, 1`,
  );
  return rows.map((r) => ({ name: r.name, from: r.from, to: r.to, detachPending: r.pending }));
}

/**
 * Makes the missing daily partitions from today to `daysAhead` days ahead (UTC days); returns the
 * names made. Blocks no read or write (CREATE TABLE, then ATTACH PARTITION). On pg_partman, its
 * `run_maintenance()` for otp_requests does it, to its own `premake`.
 */
export async function createOtpPartitions(
  dataSource: DataSource,
  options: { daysAhead?: number } = {},
): Promise<string[]> {
  const daysAhead = options.daysAhead ?? DEFAULT_PARTITION_DAYS_AHEAD;
  if (!Number.isInteger(daysAhead) || daysAhead < 1) {
    throw new RangeError('daysAhead must be a whole number of at least 1.');
  }
  const layout = await requirePartitioned(dataSource);
  return withMaintenanceSession(dataSource, async (runner) => {
    if (layout.partman === null) {
      const rows = await select<{ name: string }>(
        runner,
        'SELECT otp_requests_create_partitions($1) AS name',
        [daysAhead],
      );
      return rows.map((row) => row.name);
    }
    const before = new Set((await listOtpPartitions(runner)).map((p) => p.name));
    // Attaching a day next to pg_partman's default partition locks that partition, which every
    // query planned over all partitions also needs: short lock tries, as for the drop.
    await withShortLockWaits(runner, async () => {
      // pg_partman cuts days in the session's time zone: UTC days, as at registration.
      await runner.query(`SET LOCAL timezone = 'UTC'`);
      await runner.query(
        `UPDATE ${layout.partman}.part_config SET premake = GREATEST(premake, $2)
          WHERE parent_table = $1`,
        [layout.parent, daysAhead],
      );
      await runner.query(
        `SELECT ${layout.partman}.run_maintenance(p_parent_table := $1, p_analyze := false,
                                                   p_jobmon := false)`,
        [layout.parent],
      );
    });
    return (await listOtpPartitions(runner)).map((p) => p.name).filter((name) => !before.has(name));
  });
}

export interface DropOtpPartitionsOptions {
  /**
   * Drop partitions whose whole day ended more than this many seconds ago. At least 86400 (the
   * policy window).
   */
  olderThanSeconds: number;
  /** Say what would go, change nothing. Default `false`. */
  dryRun?: boolean;
}

export interface DroppedOtpPartitions {
  /** The partitions dropped (or, on a dry run, that would be), oldest first. */
  partitions: string[];
  /** The rows they held. */
  rows: number;
}

/**
 * Drops every partition whose range ended more than `olderThanSeconds` ago: retention as a
 * catalog change instead of a DELETE of every row. Without a default partition (the module's own
 * upkeep) each goes by `DETACH PARTITION … CONCURRENTLY`, which waits for the queries reading it
 * and blocks none, then `DROP TABLE` of the detached table. Under pg_partman, its
 * `drop_partition_time()` drops them, in tries of a short lock wait (it locks the whole table for
 * a moment). `rows` counts the rows first (a read of each partition).
 */
export async function dropOtpPartitions(
  dataSource: DataSource,
  options: DropOtpPartitionsOptions,
): Promise<DroppedOtpPartitions> {
  checkOlderThan(options.olderThanSeconds);
  const layout = await requirePartitioned(dataSource);
  return withMaintenanceSession(dataSource, async (runner) => {
    const [clock] = await select<{ cutoff: Date }>(
      runner,
      'SELECT statement_timestamp() - make_interval(secs => $1) AS cutoff',
      [options.olderThanSeconds],
    );
    const cutoff = clock?.cutoff ?? new Date(0);
    const partitions = await listOtpPartitions(runner);
    // pg_partman drops a partition whose end is strictly before the cutoff; so does the module.
    const doomed = partitions.filter((p) => p.to !== null && p.to < cutoff);
    let rows = 0;
    for (const partition of doomed) {
      const [count] = await select<{ n: number }>(
        runner,
        `SELECT count(*)::int AS n FROM ${identifier(partition.name)}`,
      );
      rows += count?.n ?? 0;
    }
    if (options.dryRun || doomed.length === 0) {
      return { partitions: doomed.map((p) => p.name), rows };
    }
    if (layout.partman !== null) {
      await withShortLockWaits(runner, async () => {
        await runner.query(`SET LOCAL timezone = 'UTC'`);
        await runner.query(
          `SELECT ${layout.partman}.drop_partition_time($1, p_retention := make_interval(secs => $2),
                    p_keep_table := false, p_keep_index := false)`,
          [layout.parent, options.olderThanSeconds],
        );
      });
    } else {
      const hasDefault = partitions.some((p) => p.from === null && p.to === null);
      for (const partition of doomed) {
        const name = identifier(partition.name);
        if (hasDefault) {
          // DETACH … CONCURRENTLY refuses a table with a default partition: a plain drop, which
          // locks the whole table for a moment.
          await withShortLockWaits(runner, () => runner.query(`DROP TABLE ${name}`));
          continue;
        }
        await runner.query(
          `ALTER TABLE otp_requests DETACH PARTITION ${name} ${partition.detachPending ? 'FINALIZE' : 'CONCURRENTLY'}`,
        );
        await runner.query(`DROP TABLE ${name}`);
      }
    }
    return { partitions: doomed.map((p) => p.name), rows };
  });
}

/** True when a partition other than a default one holds the rows of `at` (default: now). */
export async function otpPartitionCovers(dataSource: DataSource, at?: Date): Promise<boolean> {
  const [clock] = await select<{ now: Date }>(dataSource, 'SELECT statement_timestamp() AS now');
  const moment = at ?? clock?.now ?? new Date();
  return (await listOtpPartitions(dataSource)).some(
    (p) => p.from !== null && p.to !== null && p.from <= moment && moment < p.to,
  );
}

function checkOlderThan(olderThanSeconds: number): void {
  if (!Number.isInteger(olderThanSeconds) || olderThanSeconds < POLICY_WINDOW_SECONDS) {
    throw new RangeError(
      `olderThanSeconds must be a whole number of at least ${POLICY_WINDOW_SECONDS} (the policy window): younger rows still decide sends.`,
    );
  }
}

async function requirePartitioned(
  dataSource: DataSource,
): Promise<Extract<OtpTableLayout, { partitioned: true }>> {
  const layout = await otpTableLayout(dataSource);
  if (!layout.partitioned) {
    throw new Error(
      'otp_requests is not partitioned: partitions belong to the partitioned layout ' +
        '(otpPartitionedMigrations, see docs/scaling.md); `nest-otp purge` deletes old rows instead.',
    );
  }
  return layout;
}

/**
 * Runs `work` on a connection of its own with maintenance timeouts (a partition's row count or
 * a concurrent detach can outlast the module's 5 s statement timeout), reset afterwards: the
 * connection goes back to a pool it shares with sends.
 */
async function withMaintenanceSession<T>(
  dataSource: DataSource,
  work: (runner: QueryRunner) => Promise<T>,
): Promise<T> {
  const runner = dataSource.createQueryRunner();
  await runner.connect();
  try {
    await runner.query(`SET statement_timeout = '10min'`);
    await runner.query(`SET lock_timeout = '1min'`);
    return await work(runner);
  } finally {
    await runner.query('RESET statement_timeout').catch(() => undefined);
    await runner.query('RESET lock_timeout').catch(() => undefined);
    await runner.release();
  }
}

/**
 * Runs `work` in a transaction whose locks are waited for in tries of `SHORT_LOCK_TIMEOUT`, a
 * second apart, so requests never queue long behind it.
 */
async function withShortLockWaits(
  runner: QueryRunner,
  work: () => Promise<unknown>,
): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    await runner.startTransaction();
    try {
      await runner.query(`SET LOCAL lock_timeout = '${SHORT_LOCK_TIMEOUT}'`);
      await work();
      await runner.commitTransaction();
      return;
    } catch (error) {
      await runner.rollbackTransaction();
      if (!isLockTimeout(error) || attempt >= SHORT_LOCK_TRIES) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function isLockTimeout(error: unknown): boolean {
  const e = error as { code?: unknown; driverError?: { code?: unknown } } | undefined;
  return (e?.driverError?.code ?? e?.code) === '55P03';
}

/** One statement's rows, typed as the caller knows them to be. */
async function select<Row>(
  runner: DataSource | QueryRunner,
  sql: string,
  parameters?: unknown[],
): Promise<Row[]> {
  return (await runner.query(sql, parameters)) as Row[];
}

function identifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
