import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The otp_requests table: one row per send, the history every policy decision is computed from.
 *
 * Indexes, each serving one query:
 * - (destination, created_at): the send-history scan (last 24 h of one destination).
 * - unique (destination, purpose) over active rows: at most one active code per flow, enforced by
 *   the database itself; also the verify lookup.
 * - unique idempotency_key, unique token_hash: idempotent replays and token consumption.
 * - created_at: retention purge; expires_at over rows still holding a hash: dropping expired hashes.
 */
export class CreateOtpRequests1795300000000 implements MigrationInterface {
  name = 'CreateOtpRequests1795300000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE otp_requests (
        id uuid PRIMARY KEY,
        destination varchar(254) NOT NULL,
        purpose varchar(64) NOT NULL,
        channel varchar(8) NOT NULL CHECK (channel IN ('sms', 'voice', 'email')),
        code_hash varchar(100),
        code_length smallint NOT NULL CHECK (code_length BETWEEN 4 AND 10),
        max_attempts smallint NOT NULL CHECK (max_attempts >= 1),
        attempts_used smallint NOT NULL DEFAULT 0 CHECK (attempts_used BETWEEN 0 AND max_attempts),
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        resend_available_at timestamptz NOT NULL,
        delivery_status varchar(8) NOT NULL DEFAULT 'pending'
          CHECK (delivery_status IN ('pending', 'sent', 'failed')),
        delivered_at timestamptz,
        verified_at timestamptz,
        exhausted_at timestamptz,
        superseded_at timestamptz,
        idempotency_key varchar(255),
        request_fingerprint char(64),
        token_hash char(64),
        token_expires_at timestamptz,
        token_used_at timestamptz,
        CHECK (verified_at IS NULL OR exhausted_at IS NULL)
      )`);
    await queryRunner.query(
      `CREATE INDEX otp_requests_destination_created_at_idx ON otp_requests (destination, created_at)`,
    );
    await queryRunner.query(`
      CREATE UNIQUE INDEX otp_requests_active_flow_uq ON otp_requests (destination, purpose)
      WHERE verified_at IS NULL AND exhausted_at IS NULL AND superseded_at IS NULL
        AND delivery_status <> 'failed'`);
    await queryRunner.query(`
      CREATE UNIQUE INDEX otp_requests_idempotency_key_uq ON otp_requests (idempotency_key)
      WHERE idempotency_key IS NOT NULL`);
    await queryRunner.query(`
      CREATE UNIQUE INDEX otp_requests_token_hash_uq ON otp_requests (token_hash)
      WHERE token_hash IS NOT NULL`);
    await queryRunner.query(
      `CREATE INDEX otp_requests_created_at_idx ON otp_requests (created_at)`,
    );
    await queryRunner.query(`
      CREATE INDEX otp_requests_live_hash_expires_at_idx ON otp_requests (expires_at)
      WHERE code_hash IS NOT NULL`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE otp_requests`);
  }
}
