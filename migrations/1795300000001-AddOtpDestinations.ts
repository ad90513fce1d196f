import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * otp_destinations: one small row per destination seen in the retention window, holding a version
 * that every send bumps with a compare-and-set. It serializes sends to one destination (any
 * purpose, any instance) without holding a lock across round trips: a send reads the history and
 * the version, decides, and inserts only if the version has not moved.
 */
export class AddOtpDestinations1795300000001 implements MigrationInterface {
  name = 'AddOtpDestinations1795300000001';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE otp_destinations (
        destination varchar(254) PRIMARY KEY,
        version bigint NOT NULL CHECK (version >= 1),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await queryRunner.query(
      `CREATE INDEX otp_destinations_updated_at_idx ON otp_destinations (updated_at)`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE otp_destinations`);
  }
}
