/**
 * jest runs the suite as CommonJS: NestJS 12 ships ESM only, and on Node 20 jest cannot let a CJS
 * package (@nestjs/throttler) require an ESM one. See test/support/jest-transform.cjs.
 */
const esmPackages = ['@nestjs', 'uid', 'load-esm', 'file-type'];

/** One project's settings (and, with the global ones, the attack suite's: jest.attack.config.mjs). */
export const base = {
  testEnvironment: 'node',
  rootDir: '.',
  roots: ['<rootDir>/src', '<rootDir>/example', '<rootDir>/test'],
  testMatch: ['**/*.spec.ts', '**/*.e2e-spec.ts'],
  transform: { '^.+\\.[cm]?[tj]s$': '<rootDir>/test/support/jest-transform.cjs' },
  transformIgnorePatterns: [`/node_modules/(?!(${esmPackages.join('|')})/)`],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  globalSetup: '<rootDir>/test/support/global-setup.mjs',
  globalTeardown: '<rootDir>/test/support/global-teardown.mjs',
  testTimeout: 60_000,
  maxWorkers: 2,
};

// Run-wide settings stay at the top; jest reads testTimeout there only.
const { globalSetup, globalTeardown, maxWorkers, testTimeout, ...project } = base;

export default {
  globalSetup,
  globalTeardown,
  maxWorkers,
  testTimeout,
  projects: [
    { ...project, displayName: 'default' },
    // The race, policy, one-statement verify, first-send and delivery-batch suites again,
    // unchanged, on a database with the partitioned layout (otpPartitionedMigrations; global setup
    // makes it): the one-active-code, idempotency, limit and attempt guarantees must hold there
    // too. test/support/partitioned-layout.cjs points TEST_DATABASE_URL at it.
    {
      ...project,
      displayName: 'partitioned',
      testMatch: [
        '<rootDir>/test/races.e2e-spec.ts',
        '<rootDir>/test/policy.e2e-spec.ts',
        '<rootDir>/test/verify-one-statement.e2e-spec.ts',
        '<rootDir>/test/send-first.e2e-spec.ts',
        '<rootDir>/test/delivery-batch.e2e-spec.ts',
      ],
      setupFiles: ['<rootDir>/test/support/partitioned-layout.cjs'],
    },
  ],
};
