import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The CHECKs of otp_requests it merges, each as `CreateOtpRequests` wrote it. */
const MERGED = [
  ['otp_requests_check', 'attempts_used BETWEEN 0 AND max_attempts'],
  ['otp_requests_check1', 'verified_at IS NULL OR exhausted_at IS NULL'],
  ['otp_requests_delivery_status_check', "delivery_status IN ('pending', 'sent', 'failed')"],
] as const;

/**
 * The three CHECKs of otp_requests that `MoveChecksToDomains` could not make domains (two name two
 * columns; `delivery_status` is in the one-active-code index's predicate) become one, written in
 * the form Postgres stores shortest: it reads every CHECK of the table back from its stored text
 * and plans it on every INSERT and UPDATE, and `= ANY ('{…}'::text[])` is stored in half the
 * characters of `IN (…)`. Same rules, the same writes refused (SQLSTATE 23514), for 18-33k fewer
 * Postgres instructions a write: 7% of a verify, 2% of a send (bench/README.md, round 5).
 *
 * Online-safe: a catalog change under a short lock timeout. The new CHECK is added NOT VALID (it
 * checks every write from then on, and scans nothing under the lock); the rows already there passed
 * the three it replaces, dropped in the same transaction.
 */
export class MergeOtpRequestsChecks1795300000009 implements MigrationInterface {
  name = 'MergeOtpRequestsChecks1795300000009';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`SET LOCAL lock_timeout = '5s'`);
    await queryRunner.query(`SET LOCAL statement_timeout = '1min'`);
    await queryRunner.query(`
      ALTER TABLE otp_requests
        ${MERGED.map(([name]) => `DROP CONSTRAINT ${name}`).join(',\n        ')},
        ADD CONSTRAINT otp_requests_row_check CHECK (
          attempts_used BETWEEN 0 AND max_attempts
          AND (verified_at IS NULL OR exhausted_at IS NULL)
          AND delivery_status::text = ANY ('{pending,sent,failed}'::text[])) NOT VALID`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`SET LOCAL lock_timeout = '5s'`);
    await queryRunner.query(`SET LOCAL statement_timeout = '1min'`);
    await queryRunner.query(`
      ALTER TABLE otp_requests
        DROP CONSTRAINT otp_requests_row_check,
        ${MERGED.map(([name, rule]) => `ADD CONSTRAINT ${name} CHECK (${rule}) NOT VALID`).join(',\n        ')}`);
  }
}
