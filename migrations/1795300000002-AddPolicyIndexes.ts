import type { MigrationInterface, QueryRunner } from 'typeorm';

/** An index, as `CREATE INDEX <name> … ON otp_requests <on>`. */
interface ConcurrentIndex {
  name: string;
  on: string;
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
      up: (queryRunner) =>
        withSessionTimeouts(queryRunner, async () => {
          const invalid = await invalidIndexes(queryRunner, indexes);
          for (const index of indexes) {
            if (invalid.includes(index.name)) {
              await queryRunner.query(`DROP INDEX CONCURRENTLY IF EXISTS ${index.name}`);
            }
            await queryRunner.query(
              `CREATE INDEX CONCURRENTLY IF NOT EXISTS ${index.name}\n  ON otp_requests ${index.on}`,
            );
          }
        }),
      down: async (queryRunner) => {
        if (queryRunner.isTransactionActive) {
          // TypeORM reverts in a transaction even with `transaction = false` (typeorm/typeorm#11058),
          // where CONCURRENTLY cannot run. A plain drop only updates the catalog, but under an ACCESS
          // EXCLUSIVE lock: a short lock_timeout keeps writes from queueing behind it for long.
          await queryRunner.query(`SET LOCAL lock_timeout = '5s'`);
          await queryRunner.query(`SET LOCAL statement_timeout = '1min'`);
          await queryRunner.query(
            `DROP INDEX IF EXISTS ${indexes.map((index) => index.name).join(', ')}`,
          );
          return;
        }
        await withSessionTimeouts(queryRunner, async () => {
          for (const index of [...indexes].reverse()) {
            await queryRunner.query(`DROP INDEX CONCURRENTLY IF EXISTS ${index.name}`);
          }
        });
      },
    };
  }
}

/**
 * Runs `work` with the timeouts set for the session. Outside a transaction a SET outlives the
 * migration on a pooled connection, so they are RESET afterwards, also when `work` fails.
 */
async function withSessionTimeouts(
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
