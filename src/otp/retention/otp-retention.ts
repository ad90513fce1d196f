import type { DataSource } from 'typeorm';
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
  /** Rows deleted. */
  deleted: number;
  /** Expired codes whose hash was dropped (they can never verify again). */
  hashesCleared: number;
}

/**
 * The one way to purge: deletes old history in batches and drops the hashes of expired codes. Code
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
      [options.olderThanSeconds, batchSize],
    );
    if ((row?.n ?? 0) < batchSize) break;
  }
  return { deleted, hashesCleared };
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
