/**
 * jest runs the suite as CommonJS: NestJS 12 ships ESM only, and on Node 20 jest cannot let a CJS
 * package (@nestjs/throttler) require an ESM one. See test/support/jest-transform.cjs.
 */
const esmPackages = ['@nestjs', 'uid', 'load-esm', 'file-type'];

export default {
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
