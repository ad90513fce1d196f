import type { MigrationInterface, QueryRunner } from 'typeorm';
import {
  AddPolicyIndexes1795300000002,
  type ConcurrentIndex,
  isPartitioned,
  withSessionTimeouts,
  withShortLockWaits,
} from './1795300000002-AddPolicyIndexes.js';

/** A live code, as the index below has it: each way a code ends drops its hash. */
const LIVE = [
  'verified_at IS NULL',
  'exhausted_at IS NULL',
  'superseded_at IS NULL',
  'code_hash IS NOT NULL',
] as const;

/** An active code, as `CreateOtpRequests`'s index had it. */
const ACTIVE = [
  'verified_at IS NULL',
  'exhausted_at IS NULL',
  'superseded_at IS NULL',
  "delivery_status <> 'failed'",
] as const;

/** `rule`'s conditions, each on the row `row` names (`NEW.`, `r.`; none for the table's own). */
const conditions = (rule: readonly string[], row = ''): string =>
  rule.map((condition) => `${row}${condition}`).join(' AND ');

const LIVE_FLOW: ConcurrentIndex = {
  name: 'otp_requests_live_flow_uq',
  on: `(destination, purpose) WHERE ${conditions(LIVE)}`,
  unique: true,
};

const ACTIVE_FLOW: ConcurrentIndex = {
  name: 'otp_requests_active_flow_uq',
  on: `(destination, purpose) WHERE ${conditions(ACTIVE)}`,
  unique: true,
};

/**
 * Before the old index is built again: a send supersedes the flow's live code only, so a flow may
 * hold, besides it, codes that expired and lost their hash before the next send, none superseded.
 * The old index allows one such row a flow: every one with a newer row the old predicate holds is
 * marked superseded, at its expiry (it ended then). A scan of the table, holding no lock but the
 * rows'; a revert only.
 */
const SUPERSEDE_ENDED = `UPDATE otp_requests r SET superseded_at = r.expires_at
 WHERE ${conditions(ACTIVE, 'r.')} AND r.code_hash IS NULL
   AND EXISTS (SELECT 1 FROM otp_requests n
                WHERE n.destination = r.destination AND n.purpose = r.purpose
                  AND n.created_at > r.created_at AND ${conditions(ACTIVE, 'n.')})`;

/**
 * One live code per flow, by an index whose predicate names no column a delivery changes. The old
 * index's predicate named `delivery_status`, so recording a delivery (`pending` to `sent`, the second
 * statement of every send) could never be a HOT update: Postgres wrote a new entry into each of the
 * row's indexes for it. Its columns are now ones only a code's end changes, and every end (verified,
 * exhausted, superseded, cancelled, failed, expired) drops the hash, so `code_hash IS NOT NULL`
 * keeps a failed delivery's row out as `delivery_status <> 'failed'` did. A code whose hash was
 * dropped at its expiry leaves the index too; it could not verify anyway.
 *
 * Online-safe, as `AddPolicyIndexes`: the new unique index is built CONCURRENTLY while the old one
 * still holds, then the old one is dropped CONCURRENTLY. On the partitioned layout both are plain
 * indexes (`…_idx`) and the trigger that keeps them unique changes its rule in one statement,
 * under short lock waits. A failed delivery's hash has been dropped with it since the first
 * release, so no row the old index allowed collides in the new one.
 */
export class IndexLiveFlows1795300000010 implements MigrationInterface {
  name = 'IndexLiveFlows1795300000010';
  transaction = false;

  async up(queryRunner: QueryRunner): Promise<void> {
    await AddPolicyIndexes1795300000002.concurrentIndexes([LIVE_FLOW]).up(queryRunner);
    await replaceFlowCheck(queryRunner, LIVE, 'code_hash', LIVE_FLOW.name);
    await AddPolicyIndexes1795300000002.concurrentIndexes([ACTIVE_FLOW]).down(queryRunner);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    if (queryRunner.isTransactionActive) await queryRunner.query(SUPERSEDE_ENDED);
    else await withSessionTimeouts(queryRunner, () => queryRunner.query(SUPERSEDE_ENDED));
    await AddPolicyIndexes1795300000002.concurrentIndexes([ACTIVE_FLOW]).up(queryRunner);
    await replaceFlowCheck(queryRunner, ACTIVE, 'delivery_status', ACTIVE_FLOW.name);
    await AddPolicyIndexes1795300000002.concurrentIndexes([LIVE_FLOW]).down(queryRunner);
  }
}

/**
 * On the partitioned layout: `PartitionOtpRequests`'s trigger function with `rule` as its one-code-
 * per-flow condition, raising on `constraint`, and fired by updates of `column` (the condition's
 * last column) instead of the other rule's. Function and trigger change in one statement.
 */
async function replaceFlowCheck(
  queryRunner: QueryRunner,
  rule: readonly string[],
  column: 'code_hash' | 'delivery_status',
  constraint: string,
): Promise<void> {
  if (!(await isPartitioned(queryRunner))) return;
  const sql = `DO $do$
BEGIN
  CREATE OR REPLACE FUNCTION otp_requests_check_unique() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF NEW.idempotency_key IS NOT NULL
       AND (TG_OP = 'INSERT' OR NEW.idempotency_key IS DISTINCT FROM OLD.idempotency_key) THEN
      PERFORM pg_advisory_xact_lock(
        hashtextextended('nest-otp:idempotency-key:' || NEW.idempotency_key, 0));
      IF EXISTS (SELECT 1 FROM otp_requests
                  WHERE idempotency_key = NEW.idempotency_key AND id <> NEW.id) THEN
        RAISE unique_violation USING
          MESSAGE = 'duplicate key value violates unique constraint "otp_requests_idempotency_key_uq"',
          CONSTRAINT = 'otp_requests_idempotency_key_uq', TABLE = 'otp_requests';
      END IF;
    END IF;
    IF ${conditions(rule, 'NEW.')}
       AND (TG_OP = 'INSERT' OR NEW.destination <> OLD.destination OR NEW.purpose <> OLD.purpose
            OR NOT (${conditions(rule, 'OLD.')})) THEN
      PERFORM 1 FROM otp_destinations WHERE destination = NEW.destination FOR UPDATE;
      IF EXISTS (SELECT 1 FROM otp_requests
                  WHERE destination = NEW.destination AND purpose = NEW.purpose
                    AND ${conditions(rule)} AND id <> NEW.id) THEN
        RAISE unique_violation USING
          MESSAGE = 'duplicate key value violates unique constraint "${constraint}"',
          CONSTRAINT = '${constraint}', TABLE = 'otp_requests';
      END IF;
    END IF;
    RETURN NEW;
  END $$;
  DROP TRIGGER otp_requests_check_unique ON otp_requests;
  CREATE TRIGGER otp_requests_check_unique
    BEFORE INSERT OR UPDATE OF idempotency_key, destination, purpose, verified_at, exhausted_at,
      superseded_at, ${column}
    ON otp_requests FOR EACH ROW EXECUTE FUNCTION otp_requests_check_unique();
END $do$`;
  if (queryRunner.isTransactionActive) {
    await queryRunner.query(sql);
    return;
  }
  await withSessionTimeouts(queryRunner, () => withShortLockWaits(queryRunner, sql));
}
