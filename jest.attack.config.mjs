import base from './jest.config.mjs';

/** The attack suite (npm run test:attack): long e2e attack runs kept out of `npm test`. */
export default {
  ...base,
  roots: ['<rootDir>/test/attack'],
  testMatch: ['**/*.attack-spec.ts'],
  testTimeout: 300_000,
};
