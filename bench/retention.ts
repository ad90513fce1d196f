import { performance } from 'node:perf_hooks';
import { DataSource } from 'typeorm';
import { otpPartitionedMigrations } from '../migrations/index.js';
import { purgeOtpRequests } from '../src/otp/retention/otp-retention.js';
import type { BenchDb } from './bench-db.js';
import { settings } from './config.js';
import type { Figures } from './figures.js';
import { mb, round } from './stats.js';

/** What the partition drop must beat the batched DELETE by (docs/scaling.md's claims). */
export const RETENTION_CHECKS = { fasterAtLeast: 5, lessWalAtLeast: 20 } as const;

/** Retention keeps two days; the rows are three days old, all of one UTC day. */
const RETENTION_SECONDS = 2 * 86_400;

const threeDaysAgoUtc = (): Date => {
  const day = new Date();
  day.setUTCHours(0, 0, 0, 0);
  return new Date(day.getTime() - 3 * 86_400_000);
};

const SEED = `
  INSERT INTO otp_requests (id, destination, purpose, channel, code_length, max_attempts,
                            created_at, expires_at, resend_available_at, delivery_status, verified_at)
  SELECT gen_random_uuid(), 'old-' || (g % 100000) || '@bench.example', 'login', 'sms', 6, 3,
         $1::timestamptz + make_interval(secs => g % 86000), now(), now(), 'sent', now()
    FROM generate_series(1, $2::int) g`;

interface PurgeCost {
  ms: number;
  walBytes: number;
  deleted: number;
}

/**
 * One purge of the seeded day, timed, with the WAL the server wrote meanwhile. The WAL position is
 * the whole server's: nothing else of the bench runs during this section, and the data source is
 * open before the first reading, so the window holds the purge alone. A CHECKPOINT first, so each
 * layout starts from the same state: rows three days old were checkpointed long ago, and the
 * DELETEs pay the full-page images that follow.
 */
async function purgeCost(db: BenchDb): Promise<PurgeCost> {
  const dataSource = await new DataSource({ type: 'postgres', url: db.url }).initialize();
  try {
    // CHECKPOINT needs a superuser or pg_checkpoint; without it the figures still hold, less evenly.
    await dataSource.query('CHECKPOINT').catch((error: unknown) => {
      console.log(`(no CHECKPOINT before this purge: ${(error as Error).message})`);
    });
    const lsn = async () =>
      (await dataSource.query<{ lsn: string }[]>('SELECT pg_current_wal_lsn()::text AS lsn'))[0]
        ?.lsn;
    const from = await lsn();
    const start = performance.now();
    const result = await purgeOtpRequests(dataSource, { olderThanSeconds: RETENTION_SECONDS });
    const ms = performance.now() - start;
    const to = await lsn();
    const [wal] = await dataSource.query<{ bytes: string }[]>(
      'SELECT pg_wal_lsn_diff($1, $2)::text AS bytes',
      [to, from],
    );
    return { ms, walBytes: Number(wal?.bytes), deleted: result.deleted };
  } finally {
    await dataSource.destroy();
  }
}

/**
 * Section 7, retention: the same day of rows (BENCH_RETENTION_ROWS, all created three days ago)
 * removed by the default layout's batched DELETEs and by the partitioned layout's partition drop,
 * each in a database of its own; wall time and WAL written, against RETENTION_CHECKS.
 */
export async function retentionSection(db: BenchDb, figures: Figures): Promise<void> {
  const rows = settings.retentionRows;
  console.log(`\n== 7. retention: ${rows} rows of one day, batched DELETE vs partition drop ==`);
  const plain = await db.sibling('nest_otp_bench_retention');
  const partitioned = await db.sibling('nest_otp_bench_retention_parts', otpPartitionedMigrations);
  try {
    await partitioned.query('SELECT otp_requests_create_partitions(7, 3)');
    for (const target of [plain, partitioned]) {
      await target.query(SEED, [threeDaysAgoUtc(), rows]);
      await target.query('VACUUM ANALYZE otp_requests');
    }
    const deleted = await purgeCost(plain);
    const dropped = await purgeCost(partitioned);
    for (const [name, cost] of [
      ['batched DELETE', deleted],
      ['partition drop', dropped],
    ] as const) {
      if (cost.deleted !== rows) throw new Error(`${name} removed ${cost.deleted} of ${rows} rows`);
    }
    const faster = deleted.ms / dropped.ms;
    const lessWal = deleted.walBytes / dropped.walBytes;
    console.table([
      {
        layout: 'default: batched DELETE',
        ms: round(deleted.ms, 0),
        'WAL MiB': mb(deleted.walBytes),
      },
      {
        layout: 'partitioned: partition drop',
        ms: round(dropped.ms, 0),
        'WAL MiB': mb(dropped.walBytes),
      },
    ]);
    console.table([
      {
        check: 'partition drop faster',
        ratio: round(faster, 1),
        'at least': RETENTION_CHECKS.fasterAtLeast,
        met: faster >= RETENTION_CHECKS.fasterAtLeast ? 'yes' : 'NO',
      },
      {
        check: 'partition drop writes less WAL',
        ratio: round(lessWal, 1),
        'at least': RETENTION_CHECKS.lessWalAtLeast,
        met: lessWal >= RETENTION_CHECKS.lessWalAtLeast ? 'yes' : 'NO',
      },
    ]);
    figures.add('retention-rows', rows, 0);
    figures.add('retention-batched-delete-ms', deleted.ms, 0);
    figures.add('retention-batched-delete-wal-mib', deleted.walBytes / 1024 / 1024, 1);
    figures.add('retention-partition-drop-ms', dropped.ms, 0);
    figures.add('retention-partition-drop-wal-mib', dropped.walBytes / 1024 / 1024, 3);
    figures.add('retention-partition-drop-faster-x', faster, 1);
    figures.add('retention-partition-drop-less-wal-x', lessWal, 1);
  } finally {
    await plain.drop();
    await partitioned.drop();
  }
}
