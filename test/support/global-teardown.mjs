import { dropDatabase } from '../../build/example/database.js';

/** Drops the run's databases, and stops the embedded server if one was started. */
export default async function globalTeardown() {
  const adminUrl = process.env.TEST_ADMIN_DATABASE_URL;
  for (const url of [process.env.TEST_DATABASE_URL, process.env.TEST_PARTITIONED_DATABASE_URL]) {
    if (adminUrl && url) await dropDatabase(adminUrl, url);
  }
  await globalThis.__nestOtpTestServer?.release();
}
