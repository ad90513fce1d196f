import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { POLICY_WINDOW_SECONDS } from '../src/otp/policy/send-policy.js';
import { purgeOtpRequests } from '../src/otp/retention/otp-retention.js';

/**
 * `npm run otp:purge`: `purgeOtpRequests()` (the purge entry point for code outside Nest) on
 * DATABASE_URL. Deletes otp_requests rows older than OTP_RETENTION_SECONDS (default and minimum
 * 86400) in batches, drops the hashes of expired codes, and prints both counts. Safe to run from
 * cron on several hosts at once.
 */
async function main(): Promise<void> {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('Set DATABASE_URL to the database holding otp_requests.');
  const retention = Number(process.env.OTP_RETENTION_SECONDS ?? POLICY_WINDOW_SECONDS);
  if (!Number.isInteger(retention) || retention < POLICY_WINDOW_SECONDS) {
    throw new Error(`OTP_RETENTION_SECONDS must be a whole number ≥ ${POLICY_WINDOW_SECONDS}.`);
  }
  const dataSource = new DataSource({ type: 'postgres', url });
  await dataSource.initialize();
  try {
    const result = await purgeOtpRequests(dataSource, { olderThanSeconds: retention });
    process.stdout.write(
      `otp:purge removed ${result.deleted} rows older than ${retention} s and cleared ${result.hashesCleared} expired code hashes\n`,
    );
  } finally {
    await dataSource.destroy();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `otp:purge failed: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
