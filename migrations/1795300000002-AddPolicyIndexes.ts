import { createHash } from 'node:crypto';
import type { MigrationInterface, QueryRunner } from 'typeorm';

/** An index, as `CREATE [UNIQUE] INDEX <name> … ON otp_requests <on>`. */
export interface ConcurrentIndex {
  name: string;
  on: string;
  /**
   * Unique on the unpartitioned table. On the partitioned layout it is a plain index named `…_idx`
   * instead of `…_uq` (Postgres requires the partition key in a unique index there; the layout's
   * trigger enforces it), as `PartitionOtpRequests` converts the unique indexes it finds.
   */
  unique?: boolean;
}

/** The index's name on the partitioned layout (see `ConcurrentIndex.unique`). */
function partitionedName(index: ConcurrentIndex): string {
  return index.unique ? index.name.replace(/_uq$/, '_idx') : index.name;
}

const POLICY_INDEXES: readonly ConcurrentIndex[] = [
  {
    name: 'otp_requests_destination_exhausted_at_idx',
    on: '(destination, exhausted_at) WHERE exhausted_at IS NOT NULL',
  },
  {
    name: 'otp_requests_destination_purpose_verified_at_idx',
    on: '(destination, verified_at, purpose) WHERE verified_at IS NOT NULL',
  },
];

/**
 * A concurrent build blocks no write while it waits (its SHARE UPDATE EXCLUSIVE lock conflicts
 * with no INSERT, UPDATE or DELETE), but it waits for every transaction older than it to end: a
 * minute lets ordinary traffic drain, and gives up on a session left idle in a transaction.
 */
const LOCK_TIMEOUT = '1min';
/** Bounds one index build; a build stopped here leaves an INVALID index, which a rerun replaces. */
const STATEMENT_TIMEOUT = '30min';

/**
 * Indexes that keep a send's history read bounded however many rows a destination has: the policy
 * reads the newest exhausted codes and the newest verified code of a destination (and of one
 * purpose), each an index scan with a LIMIT on one of these.
 *
 * Online-safe on a live otp_requests: built CONCURRENTLY, so writes go on during the build. That
 * cannot run in a transaction, hence `transaction = false` (TypeORM refuses to run it with
 * `transaction: 'all'`, its default: run migrations with `migrationsTransactionMode: 'each'`).
 * Rerunnable after a failure: IF NOT EXISTS / IF EXISTS, and an INVALID index that a failed
 * concurrent build left behind is dropped and built again.
 */
export class AddPolicyIndexes1795300000002 implements MigrationInterface {
  name = 'AddPolicyIndexes1795300000002';
  transaction = false;

  private readonly build = AddPolicyIndexes1795300000002.concurrentIndexes(POLICY_INDEXES);

  up(queryRunner: QueryRunner): Promise<void> {
    return this.build.up(queryRunner);
  }

  down(queryRunner: QueryRunner): Promise<void> {
    return this.build.down(queryRunner);
  }

  /**
   * The up and down of a migration that builds `indexes` on the live otp_requests CONCURRENTLY:
   * shared with later index migrations, so each is held to the same timeouts and reruns.
   */
  static concurrentIndexes(indexes: readonly ConcurrentIndex[]): {
    up(queryRunner: QueryRunner): Promise<void>;
    down(queryRunner: QueryRunner): Promise<void>;
  } {
    return {
      up: async (queryRunner) => {
        if (queryRunner.isTransactionActive) {
          // Only a revert builds in a transaction (typeorm/typeorm#11058, see `down`), where
          // CONCURRENTLY cannot run: a plain build, which blocks writes to the table until it ends.
          await queryRunner.query(`SET LOCAL lock_timeout = '5s'`);
          await queryRunner.query(`SET LOCAL statement_timeout = '${STATEMENT_TIMEOUT}'`);
          const partitioned = await isPartitioned(queryRunner);
          for (const index of indexes) {
            const create = partitioned
              ? `CREATE INDEX IF NOT EXISTS ${partitionedName(index)}`
              : `CREATE ${index.unique ? 'UNIQUE ' : ''}INDEX IF NOT EXISTS ${index.name}`;
            await queryRunner.query(`${create}\n  ON otp_requests ${index.on}`);
          }
          return;
        }
        await withSessionTimeouts(queryRunner, async () => {
          if (await isPartitioned(queryRunner)) return buildOnPartitions(queryRunner, indexes);
          const invalid = await invalidIndexes(queryRunner, indexes);
          for (const index of indexes) {
            if (invalid.includes(index.name)) {
              await queryRunner.query(`DROP INDEX CONCURRENTLY IF EXISTS ${index.name}`);
            }
            const create = `CREATE ${index.unique ? 'UNIQUE ' : ''}INDEX CONCURRENTLY IF NOT EXISTS`;
            await queryRunner.query(`${create} ${index.name}\n  ON otp_requests ${index.on}`);
          }
        });
      },
      down: async (queryRunner) => {
        if (queryRunner.isTransactionActive) {
          // TypeORM reverts in a transaction even with `transaction = false` (typeorm/typeorm#11058),
          // where CONCURRENTLY cannot run. A plain drop only updates the catalog, but under an ACCESS
          // EXCLUSIVE lock: a short lock_timeout keeps writes from queueing behind it for long.
          await queryRunner.query(`SET LOCAL lock_timeout = '5s'`);
          await queryRunner.query(`SET LOCAL statement_timeout = '1min'`);
          const names = (await isPartitioned(queryRunner))
            ? indexes.map(partitionedName)
            : indexes.map((index) => index.name);
          await queryRunner.query(`DROP INDEX IF EXISTS ${names.join(', ')}`);
          return;
        }
        await withSessionTimeouts(queryRunner, async () => {
          if (await isPartitioned(queryRunner)) {
            // A partitioned index cannot be dropped CONCURRENTLY: a plain drop only updates the
            // catalog, and waits for its lock in short tries so no write queues long behind it.
            const names = indexes.map(partitionedName).join(', ');
            return withShortLockWaits(queryRunner, `DROP INDEX IF EXISTS ${names}`);
          }
          for (const index of [...indexes].reverse()) {
            await queryRunner.query(`DROP INDEX CONCURRENTLY IF EXISTS ${index.name}`);
          }
        });
      },
    };
  }
}

/**
 * How long one try of a statement that queues reads or writes behind it (a partitioned index's
 * catalog changes) may wait for its lock, and how many tries it gets, a second apart. A request
 * arriving meanwhile waits at most this long.
 */
const SHORT_LOCK_TIMEOUT = '200ms';
const SHORT_LOCK_TRIES = 120;

/**
 * Runs `work` with the timeouts set for the session. Outside a transaction a SET outlives the
 * migration on a pooled connection, so they are RESET afterwards, also when `work` fails.
 */
export async function withSessionTimeouts(
  queryRunner: QueryRunner,
  work: () => Promise<void>,
): Promise<void> {
  const reset = async () => {
    await queryRunner.query('RESET statement_timeout');
    await queryRunner.query('RESET lock_timeout');
  };
  await queryRunner.query(`SET lock_timeout = '${LOCK_TIMEOUT}'`);
  await queryRunner.query(`SET statement_timeout = '${STATEMENT_TIMEOUT}'`);
  try {
    await work();
  } catch (error) {
    // The migration's own error says what went wrong, not a failed RESET on a broken connection.
    await reset().catch(() => undefined);
    throw error;
  }
  await reset();
}

/** Names of this migration's indexes that exist but are INVALID (pg_index.indisvalid). */
async function invalidIndexes(
  queryRunner: QueryRunner,
  indexes: readonly ConcurrentIndex[],
): Promise<string[]> {
  const names = indexes.map((index) => `to_regclass('${index.name}')`).join(',\n    ');
  const rows = (await queryRunner.query(
    `-- An INVALID index, left by a failed CREATE INDEX CONCURRENTLY, would be kept by IF NOT EXISTS:
-- the migration drops it (DROP INDEX CONCURRENTLY) first. Rerunning by hand: drop what this lists.
SELECT c.relname AS name
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE NOT i.indisvalid AND i.indexrelid IN (
    ${names})`,
  )) as { name: string }[];
  return rows.map((row) => row.name);
}

/**
 * True when otp_requests is partitioned (the layout of `otpPartitionedMigrations`). A plain SQL
 * file is written for the unpartitioned table: there, this read finds no row.
 */
export async function isPartitioned(queryRunner: QueryRunner): Promise<boolean> {
  const rows = (await queryRunner.query(
    `-- On a partitioned otp_requests (otpPartitionedMigrations) Postgres cannot build an index
-- CONCURRENTLY on the table itself: the migration builds each partition's index CONCURRENTLY and
-- attaches it to an index made ON ONLY the table. Run it through TypeORM there, not as this file.
SELECT 1 AS partitioned FROM pg_class WHERE oid = to_regclass('otp_requests') AND relkind = 'p'`,
  )) as { partitioned: number }[];
  return rows.length > 0;
}

/**
 * Builds `indexes` on a partitioned otp_requests without blocking writes for longer than a short
 * lock wait: the index ON ONLY the table (catalog only, invalid until complete), then each
 * partition's index CONCURRENTLY, attached to it. A partition created meanwhile gets its index
 * when attached; the loop ends when every partition has one, and the index turns valid. Rerunnable:
 * a partition's INVALID index (a failed concurrent build) is dropped and built again.
 */
async function buildOnPartitions(
  queryRunner: QueryRunner,
  indexes: readonly ConcurrentIndex[],
): Promise<void> {
  for (const { name, on } of indexes.map((index) => ({ ...index, name: partitionedName(index) }))) {
    await withShortLockWaits(
      queryRunner,
      `CREATE INDEX IF NOT EXISTS ${name}\n  ON ONLY otp_requests ${on}`,
    );
    for (;;) {
      const missing = (await queryRunner.query(
        `SELECT c.relname AS partition
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'otp_requests'::regclass AND NOT i.inhdetachpending
   AND NOT EXISTS (
     SELECT 1 FROM pg_inherits ii JOIN pg_index x ON x.indexrelid = ii.inhrelid
      WHERE ii.inhparent = ${literal(name)}::regclass AND x.indrelid = c.oid)
 ORDER BY c.relname`,
      )) as { partition: string }[];
      if (missing.length === 0) break;
      for (const { partition } of missing) {
        const child = childIndexName(partition, name);
        const [state] = (await queryRunner.query(
          `SELECT x.indisvalid AS valid FROM pg_index x
  WHERE x.indexrelid = to_regclass(quote_ident(${literal(child)}))`,
        )) as { valid: boolean }[];
        if (state && !state.valid) {
          await queryRunner.query(`DROP INDEX CONCURRENTLY IF EXISTS ${identifier(child)}`);
        }
        await queryRunner.query(
          `CREATE INDEX CONCURRENTLY IF NOT EXISTS ${identifier(child)}\n  ON ${identifier(partition)} ${on}`,
        );
        await withShortLockWaits(
          queryRunner,
          `ALTER INDEX ${name} ATTACH PARTITION ${identifier(child)}`,
        );
      }
    }
  }
}

/**
 * Runs one statement whose lock queues other sessions behind it while it waits: in tries of
 * `SHORT_LOCK_TIMEOUT`, a second apart, giving up after `SHORT_LOCK_TRIES`.
 */
export async function withShortLockWaits(queryRunner: QueryRunner, sql: string): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    await queryRunner.query(`SET lock_timeout = '${SHORT_LOCK_TIMEOUT}'`);
    try {
      await queryRunner.query(sql);
      return;
    } catch (error) {
      if (!isLockTimeout(error) || attempt >= SHORT_LOCK_TRIES) throw error;
    } finally {
      await queryRunner.query(`SET lock_timeout = '${LOCK_TIMEOUT}'`);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function isLockTimeout(error: unknown): boolean {
  const e = error as { code?: unknown; driverError?: { code?: unknown } } | undefined;
  return (e?.driverError?.code ?? e?.code) === '55P03';
}

/** `<partition>_<index without its otp_requests_ prefix>`, hashed down to Postgres's 63 bytes. */
function childIndexName(partition: string, index: string): string {
  const name = `${partition}_${index.replace(/^otp_requests_/, '')}`;
  if (name.length <= 63) return name;
  return `${name.slice(0, 54)}_${createHash('sha256').update(name).digest('hex').slice(0, 8)}`;
}

function identifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}
