import { expect, it } from '@jest/globals';
import { query } from './test-app.js';

/**
 * The layout of otp_requests the run's database has: `partitioned` in the jest project of that name
 * (jest.config.mjs, test/support/partitioned-layout.cjs), `default` otherwise.
 */
export const layoutUnderTest = (): 'default' | 'partitioned' =>
  process.env.NEST_OTP_TEST_LAYOUT === 'partitioned' ? 'partitioned' : 'default';

/**
 * A test that the database under test has the layout its project names, so a spec meant to run on
 * the partitioned layout cannot pass quietly on the default one.
 */
export function itRunsOnTheLayoutUnderTest(): void {
  it(`runs on the ${layoutUnderTest()} layout of otp_requests`, async () => {
    const [row] = await query<{ kind: string }>(
      `SELECT relkind::text AS kind FROM pg_class WHERE oid = 'otp_requests'::regclass`,
    );
    expect(row?.kind).toBe(layoutUnderTest() === 'partitioned' ? 'p' : 'r');
  });
}
