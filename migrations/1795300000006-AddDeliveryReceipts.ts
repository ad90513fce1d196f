import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Adaptive delivery (delivery receipts, fallback on a receipt or on silence, the push channel):
 * - `otp_deliveries`: one row per delivery attempt of a request (`seq` 1, 2, …): the channel, the
 *   provider, the provider's message id (what a status callback names), where it went when not to
 *   the request's destination (`delivered_to`, the fallback email), and its status (`queued`,
 *   `sent`, `delivered`, `undelivered`, `failed`) with the time it was last reported. No foreign
 *   key: on the partitioned layout otp_requests' key is `(id, created_at)`; retention deletes old
 *   rows in batches, like otp_requests.
 * - `otp_fallbacks`: while a code may still be re-sent on another channel, its sealed copy
 *   (AES-256-GCM, SECURITY.md), the channels it went out on, and when a fallback is due
 *   (`due_at`, claimed by any instance's poller with FOR UPDATE SKIP LOCKED). A row lives at most
 *   as long as its code: a trigger deletes it the moment otp_requests drops the code's hash
 *   (verified, superseded, cancelled, exhausted, failed, or seen expired), and the poller deletes
 *   the expired ones.
 * - A CHECK that admits the `push` channel on otp_requests, added NOT VALID (no table scan under
 *   the lock); `ValidateOtpChannelPush` validates it and drops the old CHECK in its own transaction.
 *
 * Online-safe: two new tables, a trigger and a NOT VALID constraint on the live table, each taking
 * its lock for a catalog change only, under a short lock timeout.
 */
export class AddDeliveryReceipts1795300000006 implements MigrationInterface {
  name = 'AddDeliveryReceipts1795300000006';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`SET LOCAL lock_timeout = '5s'`);
    await queryRunner.query(`SET LOCAL statement_timeout = '1min'`);
    await queryRunner.query(`
      CREATE TABLE IF NOT EXISTS otp_deliveries (
        request_id uuid NOT NULL,
        seq bigint NOT NULL CHECK (seq >= 1),
        channel text NOT NULL CHECK (channel IN ('sms', 'voice', 'email', 'push')),
        provider text NOT NULL CHECK (length(provider) <= 64),
        provider_message_id text CHECK (length(provider_message_id) <= 128),
        delivered_to text CHECK (length(delivered_to) <= 254),
        status text NOT NULL
          CHECK (status IN ('queued', 'sent', 'delivered', 'undelivered', 'failed')),
        error_code text CHECK (length(error_code) <= 32),
        cause text NOT NULL CHECK (cause IN ('send', 'receipt', 'silence')),
        created_at timestamptz NOT NULL DEFAULT statement_timestamp(),
        status_at timestamptz NOT NULL DEFAULT statement_timestamp(),
        PRIMARY KEY (request_id, seq)
      )`);
    await queryRunner.query(`
      CREATE UNIQUE INDEX IF NOT EXISTS otp_deliveries_provider_message_uq
        ON otp_deliveries (provider, provider_message_id) WHERE provider_message_id IS NOT NULL`);
    await queryRunner.query(
      `CREATE INDEX IF NOT EXISTS otp_deliveries_created_at_idx ON otp_deliveries (created_at)`,
    );
    await queryRunner.query(`
      CREATE TABLE IF NOT EXISTS otp_fallbacks (
        request_id uuid PRIMARY KEY,
        request_created_at timestamptz NOT NULL,
        sealed bytea NOT NULL,
        channels_used text[] NOT NULL,
        expires_at timestamptz NOT NULL,
        due_at timestamptz,
        due_cause text CHECK (due_cause IN ('receipt', 'silence')),
        lease_until timestamptz
      )`);
    await queryRunner.query(`
      CREATE INDEX IF NOT EXISTS otp_fallbacks_due_at_idx
        ON otp_fallbacks (due_at) WHERE due_at IS NOT NULL`);
    await queryRunner.query(
      `CREATE INDEX IF NOT EXISTS otp_fallbacks_expires_at_idx ON otp_fallbacks (expires_at)`,
    );
    await queryRunner.query(`
      CREATE OR REPLACE FUNCTION otp_fallbacks_forget() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        DELETE FROM otp_fallbacks WHERE request_id = NEW.id;
        RETURN NULL;
      END $$`);
    await queryRunner.query(`DROP TRIGGER IF EXISTS otp_requests_forget_fallback ON otp_requests`);
    await queryRunner.query(`
      CREATE TRIGGER otp_requests_forget_fallback
        AFTER UPDATE OF code_hash ON otp_requests FOR EACH ROW
        WHEN (OLD.code_hash IS NOT NULL AND NEW.code_hash IS NULL)
        EXECUTE FUNCTION otp_fallbacks_forget()`);
    await queryRunner.query(
      `ALTER TABLE otp_requests DROP CONSTRAINT IF EXISTS otp_requests_channel_push_check`,
    );
    await queryRunner.query(`
      ALTER TABLE otp_requests ADD CONSTRAINT otp_requests_channel_push_check
        CHECK (channel IN ('sms', 'voice', 'email', 'push')) NOT VALID`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`SET LOCAL lock_timeout = '5s'`);
    await queryRunner.query(`SET LOCAL statement_timeout = '1min'`);
    await queryRunner.query(
      `ALTER TABLE otp_requests DROP CONSTRAINT IF EXISTS otp_requests_channel_push_check`,
    );
    await queryRunner.query(`DROP TRIGGER IF EXISTS otp_requests_forget_fallback ON otp_requests`);
    await queryRunner.query(`DROP FUNCTION IF EXISTS otp_fallbacks_forget()`);
    await queryRunner.query(`DROP TABLE IF EXISTS otp_fallbacks`);
    await queryRunner.query(`DROP TABLE IF EXISTS otp_deliveries`);
  }
}
