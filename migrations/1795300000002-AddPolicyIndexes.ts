import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Indexes that keep a send's history read bounded however many rows a destination has: the policy
 * reads the newest exhausted codes and the newest verified code of a destination (and of one
 * purpose), each an index scan with a LIMIT on one of these.
 */
export class AddPolicyIndexes1795300000002 implements MigrationInterface {
  name = 'AddPolicyIndexes1795300000002';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE INDEX otp_requests_destination_exhausted_at_idx
        ON otp_requests (destination, exhausted_at) WHERE exhausted_at IS NOT NULL`);
    await queryRunner.query(`
      CREATE INDEX otp_requests_destination_purpose_verified_at_idx
        ON otp_requests (destination, verified_at, purpose) WHERE verified_at IS NOT NULL`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX otp_requests_destination_purpose_verified_at_idx`);
    await queryRunner.query(`DROP INDEX otp_requests_destination_exhausted_at_idx`);
  }
}
