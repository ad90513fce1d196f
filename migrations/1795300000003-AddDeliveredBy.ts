import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Which provider carried each code (`delivered_by`), and where, when a send fell back to an address
 * other than the destination (`delivered_to`, the account's fallback email). Online-safe on a live
 * table: nullable columns without a default add no table rewrite, and a short lock timeout makes the
 * migration give up rather than queue writes behind it (a statement timeout bounds the rest).
 */
export class AddDeliveredBy1795300000003 implements MigrationInterface {
  name = 'AddDeliveredBy1795300000003';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`SET LOCAL lock_timeout = '5s'`);
    await queryRunner.query(`SET LOCAL statement_timeout = '1min'`);
    await queryRunner.query(
      `ALTER TABLE otp_requests ADD COLUMN IF NOT EXISTS delivered_by varchar(64)`,
    );
    await queryRunner.query(
      `ALTER TABLE otp_requests ADD COLUMN IF NOT EXISTS delivered_to varchar(254)`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`SET LOCAL lock_timeout = '5s'`);
    await queryRunner.query(`SET LOCAL statement_timeout = '1min'`);
    await queryRunner.query(`ALTER TABLE otp_requests DROP COLUMN IF EXISTS delivered_to`);
    await queryRunner.query(`ALTER TABLE otp_requests DROP COLUMN IF EXISTS delivered_by`);
  }
}
