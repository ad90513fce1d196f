import type { DataSource } from 'typeorm';
import { dropOtpPartitions, otpTableLayout } from '../partitioning/otp-partitions.js';
import { POLICY_WINDOW_SECONDS } from '../policy/send-policy.js';

export interface PurgeOptions {
  /**
   * Delete rows created more than this many seconds ago. At least 86400 (the policy window): younger
   * history still decides cooldowns, caps and lockouts.
   */
  olderThanSeconds: number;
  /** Rows per DELETE statement, so no statement holds many locks or runs long. Default `1000`. */
  batchSize?: number;
  /** Count what would go, change nothing. Default `false`. */
  dryRun?: boolean;
}

export interface PurgeResult {
  /** Rows deleted (on the partitioned layout: the rows of the partitions dropped). */
  deleted: number;
  /** Expired codes whose hash was dropped (they can never verify again). */
  hashesCleared: number;
  /**
   * On the partitioned layout only: the daily partitions dropped (or, on a dry run, that would be),
   * oldest first. Rows go a whole day at a time, once the day ended `olderThanSeconds` ago.
   */
  partitionsDropped?: string[];
}

/**
 * The one way to purge: deletes old history in batches (on the partitioned layout: drops the daily
 * partitions that ended `olderThanSeconds` ago, see `dropOtpPartitions`) and drops the hashes of
 * expired codes. Code
 * outside Nest (cron jobs, `npm run otp:purge`) calls it with its own DataSource; inside Nest,
 * `OtpService.purge()` calls it with the module's `retentionSeconds`. Each batch claims its rows
 * with `FOR UPDATE SKIP LOCKED`, so any number of instances can purge at once without waiting on
 * each other or deleting a row twice.
 */
export async function purgeOtpRequests(
  dataSource: DataSource,
  options: PurgeOptions,
): Promise<PurgeResult> {
  const batchSize = options.batchSize ?? 1000;
  if (
    !Number.isInteger(options.olderThanSeconds) ||
    options.olderThanSeconds < POLICY_WINDOW_SECONDS
  ) {
    throw new RangeError(
      `olderThanSeconds must be a whole number of at least ${POLICY_WINDOW_SECONDS} (the policy window): younger rows still decide sends.`,
    );
  }
  // A batch of 0 would never finish: each loop ends on a batch smaller than this.
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError('batchSize must be a positive whole number.');
  }
  const layout = await otpTableLayout(dataSource);
  if (layout.partitioned) {
    const dropped = await dropOtpPartitions(dataSource, {
      olderThanSeconds: options.olderThanSeconds,
      dryRun: options.dryRun,
    });
    const rest = options.dryRun
      ? {
          hashesCleared: (await countPurgeable(dataSource, options.olderThanSeconds)).hashesCleared,
        }
      : await clearHashesAndVersions(dataSource, options.olderThanSeconds, batchSize);
    if (!options.dryRun) await refreshStatistics(dataSource, dropped.rows);
    return { deleted: dropped.rows, ...rest, partitionsDropped: dropped.partitions };
  }
  if (options.dryRun) return countPurgeable(dataSource, options.olderThanSeconds);
  let deleted = 0;
  for (;;) {
    const [row] = await dataSource.query<{ n: number }[]>(
      `WITH doomed AS (
         SELECT id FROM otp_requests
          WHERE created_at < statement_timestamp() - make_interval(secs => $1)
          ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED),
       gone AS (DELETE FROM otp_requests r USING doomed WHERE r.id = doomed.id RETURNING 1)
       SELECT count(*)::int AS n FROM gone`,
      [options.olderThanSeconds, batchSize],
    );
    const n = row?.n ?? 0;
    deleted += n;
    if (n < batchSize) break;
  }
  await refreshStatistics(dataSource, deleted);
  return {
    deleted,
    ...(await clearHashesAndVersions(dataSource, options.olderThanSeconds, batchSize)),
  };
}

/** Rows a purge must remove before it refreshes the planner's statistics itself. */
const ANALYZE_AFTER_ROWS = 10_000;

/**
 * After a large purge the planner still sees the table as it was (autovacuum analyzes it later, at
 * its own pace), and may pick a plan for the old size: the bench saw the verify's reservation take
 * the live-hash index and cost 7-9 ms instead of well under one. An ANALYZE samples the table, takes
 * no lock that blocks reads or writes, and makes the next plans fit the table as it is now.
 */
async function refreshStatistics(dataSource: DataSource, deleted: number): Promise<void> {
  if (deleted >= ANALYZE_AFTER_ROWS) await dataSource.query('ANALYZE otp_requests');
}

/**
 * What a purge does on both layouts besides removing old rows: drops the hashes of expired codes,
 * the version rows of destinations with no send in the window, old delivery-log rows and the
 * sealed codes of expired fallbacks.
 */
async function clearHashesAndVersions(
  dataSource: DataSource,
  olderThanSeconds: number,
  batchSize: number,
): Promise<{ hashesCleared: number }> {
  let hashesCleared = 0;
  for (;;) {
    const [row] = await dataSource.query<{ n: number }[]>(
      `WITH expired AS (
         SELECT id FROM otp_requests
          WHERE code_hash IS NOT NULL AND expires_at < statement_timestamp()
          LIMIT $1 FOR UPDATE SKIP LOCKED),
       cleared AS (UPDATE otp_requests r SET code_hash = NULL FROM expired
          WHERE r.id = expired.id RETURNING 1)
       SELECT count(*)::int AS n FROM cleared`,
      [batchSize],
    );
    const n = row?.n ?? 0;
    hashesCleared += n;
    if (n < batchSize) break;
  }
  // Version rows of destinations with no send in the window: a later send starts a new one. A
  // hard-locked destination keeps its row: the lock outlives the history it was computed from.
  for (;;) {
    const [row] = await dataSource.query<{ n: number }[]>(
      `WITH doomed AS (
         SELECT destination FROM otp_destinations
          WHERE updated_at < statement_timestamp() - make_interval(secs => $1)
            AND hard_locked_at IS NULL
          LIMIT $2 FOR UPDATE SKIP LOCKED),
       gone AS (DELETE FROM otp_destinations d USING doomed
          WHERE d.destination = doomed.destination RETURNING 1)
       SELECT count(*)::int AS n FROM gone`,
      [olderThanSeconds, batchSize],
    );
    if ((row?.n ?? 0) < batchSize) break;
  }
  // The delivery log (one row per attempt, for the status route and receipts) ages with the
  // history it describes; a sealed code for fallback never outlives its code.
  for (;;) {
    const [row] = await dataSource.query<{ n: number }[]>(
      `WITH doomed AS (
         SELECT request_id, seq FROM otp_deliveries
          WHERE created_at < statement_timestamp() - make_interval(secs => $1)
          LIMIT $2 FOR UPDATE SKIP LOCKED),
       gone AS (DELETE FROM otp_deliveries d USING doomed
          WHERE d.request_id = doomed.request_id AND d.seq = doomed.seq RETURNING 1)
       SELECT count(*)::int AS n FROM gone`,
      [olderThanSeconds, batchSize],
    );
    if ((row?.n ?? 0) < batchSize) break;
  }
  await dataSource.query(`DELETE FROM otp_fallbacks WHERE expires_at < statement_timestamp()`);
  return { hashesCleared };
}

/** What a purge would do now: the rows it would delete and the hashes it would drop. */
async function countPurgeable(
  dataSource: DataSource,
  olderThanSeconds: number,
): Promise<PurgeResult> {
  const [row] = await dataSource.query<{ deleted: number; hashes: number }[]>(
    `SELECT
       (SELECT count(*)::int FROM otp_requests
         WHERE created_at < statement_timestamp() - make_interval(secs => $1)) AS deleted,
       (SELECT count(*)::int FROM otp_requests
         WHERE code_hash IS NOT NULL AND expires_at < statement_timestamp()
           AND created_at >= statement_timestamp() - make_interval(secs => $1)) AS hashes`,
    [olderThanSeconds],
  );
  return { deleted: row?.deleted ?? 0, hashesCleared: row?.hashes ?? 0 };
}
