import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * What per-purpose policy keeps on the rows:
 * - `otp_requests.cancelled_at`: a cancelled code (it is also superseded, so every "active" check and
 *   the one-active-code-per-flow index leave it out without a change); a cancelled send starts no
 *   resend cooldown.
 * - `otp_requests.subject`: the host's account id a send was made for (per-account limits).
 * - `otp_requests.token_client_hash`: SHA-256 of the verifying client (IP and/or User-Agent) a
 *   verification token is bound to.
 * - `otp_destinations.hard_locked_at` / `unlocked_at`: a hard lockout outlives the 24 h history it was
 *   computed from, until `OtpService.unlock()`; exhausted codes before an unlock no longer count.
 *
 * Online-safe on live tables: nullable columns without a default add no table rewrite, and a short
 * lock timeout makes the migration give up rather than queue writes behind it.
 */
export class AddPurposePolicy1795300000004 implements MigrationInterface {
  name = 'AddPurposePolicy1795300000004';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`SET LOCAL lock_timeout = '5s'`);
    await queryRunner.query(`SET LOCAL statement_timeout = '1min'`);
    await queryRunner.query(
      `ALTER TABLE otp_requests ADD COLUMN IF NOT EXISTS cancelled_at timestamptz`,
    );
    await queryRunner.query(`ALTER TABLE otp_requests ADD COLUMN IF NOT EXISTS subject text`);
    await queryRunner.query(
      `ALTER TABLE otp_requests ADD COLUMN IF NOT EXISTS token_client_hash text`,
    );
    await queryRunner.query(
      `ALTER TABLE otp_destinations ADD COLUMN IF NOT EXISTS hard_locked_at timestamptz`,
    );
    await queryRunner.query(
      `ALTER TABLE otp_destinations ADD COLUMN IF NOT EXISTS unlocked_at timestamptz`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`SET LOCAL lock_timeout = '5s'`);
    await queryRunner.query(`SET LOCAL statement_timeout = '1min'`);
    await queryRunner.query(`ALTER TABLE otp_destinations DROP COLUMN IF EXISTS unlocked_at`);
    await queryRunner.query(`ALTER TABLE otp_destinations DROP COLUMN IF EXISTS hard_locked_at`);
    await queryRunner.query(`ALTER TABLE otp_requests DROP COLUMN IF EXISTS token_client_hash`);
    await queryRunner.query(`ALTER TABLE otp_requests DROP COLUMN IF EXISTS subject`);
    await queryRunner.query(`ALTER TABLE otp_requests DROP COLUMN IF EXISTS cancelled_at`);
  }
}
