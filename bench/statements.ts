import { createRequire } from 'node:module';
import pg from 'pg';

/**
 * Names for the SQL the app sends, by the repository method (or TypeORM call) that sends it, so
 * counter output and EXPLAIN plans read as code paths rather than SQL.
 */
/** The label of the statement that records the deliveries of several sends at once. */
export const DELIVERY_RECORDS_TOGETHER =
  'mark delivered + delivery log, sends together (recordDelivered)';

const LABELS: [RegExp, string][] = [
  [/^\s*START TRANSACTION/i, 'BEGIN (QueryRunner.startTransaction)'],
  [/^\s*BEGIN/i, 'BEGIN'],
  [/^\s*COMMIT/i, 'COMMIT (QueryRunner.commitTransaction)'],
  [/^\s*ROLLBACK/i, 'ROLLBACK'],
  [/pg_advisory_xact_lock/, 'advisory lock (inDestinationLock)'],
  [/^\s*WITH target AS/, 'request + history read (readStatus)'],
  [/json_agg/, 'history read (loadHistory / readHistory)'],
  // After the CTE that sets the statement's commit mode (`lazy`), so not at the start.
  [
    /\bclaimed AS \(\s*INSERT INTO otp_destinations \(destination, version, updated_at\)\s*SELECT/,
    'first send: claim + supersede + insert (insertFirst)',
  ],
  [
    /\bclaimed AS \(\s*INSERT INTO otp_destinations/,
    'version CAS + supersede + insert (insertIfUnchanged)',
  ],
  [/^\s*WITH delivered AS/, 'mark delivered + delivery log (recordDelivered)'],
  [/^\s*WITH sent AS/, DELIVERY_RECORDS_TOGETHER],
  [/^\s*UPDATE otp_requests SET delivery_status = 'failed'/, 'mark failed (markFailed)'],
  [/^\s*WITH reserved AS/, 'reserve attempt, verify a claimed code (reserveAttempt)'],
  [
    /^\s*UPDATE otp_requests SET code_hash = NULL\s+WHERE \(destination/,
    'drop an expired hash (dropExpiredHash)',
  ],
  [/^\s*WITH verified AS/, 'mark verified (markVerified)'],
  [/SET exhausted_at/, 'mark exhausted (markExhausted)'],
  [/ORDER BY r\.created_at DESC LIMIT 1/, 'latest in flow (findLatestInFlow)'],
  [/^\s*WITH consumed AS/, 'consume token (consumeToken)'],
  [/^\s*WITH doomed AS/, 'purge old rows (purgeOtpRequests)'],
  [/^\s*WITH expired AS/, 'drop expired hashes (purgeOtpRequests)'],
];

export function labelOf(sql: string): string {
  for (const [pattern, label] of LABELS) if (pattern.test(sql)) return label;
  return sql.replace(/\s+/g, ' ').trim().slice(0, 60);
}

/** True for statements that read or write the OTP table (the ones worth an EXPLAIN). */
export const touchesOtpTable = (sql: string): boolean => /\botp_requests\b/.test(sql);

/** How the driver writes a parameter's value as text (`Date`, arrays, `Buffer`, …). */
const { prepareValue } = createRequire(import.meta.url)('pg/lib/utils.js') as {
  prepareValue: (value: unknown) => string | Buffer | null;
};

/**
 * A captured parameter as a SQL literal, written and escaped as the driver would send it: for
 * EXECUTE, which takes no bound parameters (bench only: the app's own values, on the bench's own
 * databases).
 */
export function sqlLiteral(value: unknown): string {
  const prepared = prepareValue(value);
  if (prepared === null) return 'NULL';
  return pg.escapeLiteral(
    typeof prepared === 'string' ? prepared : `\\x${prepared.toString('hex')}`,
  );
}
