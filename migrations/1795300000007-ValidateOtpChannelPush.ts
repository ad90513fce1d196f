import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The second half of admitting the `push` channel on otp_requests (`AddDeliveryReceipts` added the
 * new CHECK NOT VALID): validates it, which scans the table under a SHARE UPDATE EXCLUSIVE lock
 * (reads and writes go on), then drops the old CHECK, a catalog change. Its own transaction, so the
 * validation holds no lock taken by the ADD.
 */
export class ValidateOtpChannelPush1795300000007 implements MigrationInterface {
  name = 'ValidateOtpChannelPush1795300000007';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`SET LOCAL lock_timeout = '5s'`);
    await queryRunner.query(`SET LOCAL statement_timeout = '30min'`);
    await queryRunner.query(
      `ALTER TABLE otp_requests VALIDATE CONSTRAINT otp_requests_channel_push_check`,
    );
    await queryRunner.query(
      `ALTER TABLE otp_requests DROP CONSTRAINT IF EXISTS otp_requests_channel_check`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`SET LOCAL lock_timeout = '5s'`);
    await queryRunner.query(`SET LOCAL statement_timeout = '1min'`);
    // Rows on the push channel would fail the old CHECK: they are history; the down keeps them and
    // restores the old rule for new rows only.
    await queryRunner.query(`
      ALTER TABLE otp_requests ADD CONSTRAINT otp_requests_channel_check
        CHECK (channel IN ('sms', 'voice', 'email')) NOT VALID`);
  }
}
