import { expect, it } from '@jest/globals';
import { createUniqueDatabase, dropDatabase, runOtpMigrations } from '../../example/database.js';
import { otpMigrations, otpPartitionedMigrations } from '../../migrations/index.js';
import { queryDatabase } from './coexistence-host.js';
import { query } from './test-app.js';

/**
 * The layout of otp_requests the run's database has: `partitioned` in the jest project of that name
 * (jest.config.mjs, test/support/partitioned-layout.cjs), `default` otherwise.
 */
export const layoutUnderTest = (): 'default' | 'partitioned' =>
  process.env.NEST_OTP_TEST_LAYOUT === 'partitioned' ? 'partitioned' : 'default';

/**
 * A test that the database under test has the layout its project names, so a spec meant to run on
 * the partitioned layout cannot pass quietly on the default one. `url`: a database of the spec's
 * own (`databaseWithTheLayoutUnderTest`) instead of the run's.
 */
export function itRunsOnTheLayoutUnderTest(url?: () => string): void {
  it(`runs on the ${layoutUnderTest()} layout of otp_requests`, async () => {
    const text = `SELECT relkind::text AS kind FROM pg_class WHERE oid = 'otp_requests'::regclass`;
    const [row] = url
      ? await queryDatabase<{ kind: string }>(url(), text)
      : await query<{ kind: string }>(text);
    expect(row?.kind).toBe(layoutUnderTest() === 'partitioned' ? 'p' : 'r');
  });
}

/**
 * A database of the spec's own with the layout under test, migrated as the run's is, for a spec
 * that changes the schema while it runs (a trigger). On the run's database, which the other
 * worker's suites use at the same time, such DDL can deadlock their statements: a trigger dropped
 * from a partitioned table locks the table and its partitions one by one, while a send locks them
 * in another order (seen once in a `.ci/run`: a send answered 500).
 */
export async function databaseWithTheLayoutUnderTest(
  prefix: string,
): Promise<{ url: string; drop: () => Promise<void> }> {
  const adminUrl = process.env.TEST_ADMIN_DATABASE_URL;
  if (!adminUrl) throw new Error('TEST_ADMIN_DATABASE_URL is not set: run the tests through jest.');
  const url = await createUniqueDatabase(adminUrl, prefix);
  const partitioned = layoutUnderTest() === 'partitioned';
  await runOtpMigrations(url, partitioned ? otpPartitionedMigrations : otpMigrations);
  if (partitioned) await queryDatabase(url, 'SELECT otp_requests_create_partitions(7, 3)');
  return { url, drop: () => dropDatabase(adminUrl, url) };
}
