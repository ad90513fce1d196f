import { base } from './jest.config.mjs';

/** The attack suite (npm run test:attack): long e2e attack runs kept out of `npm test`. */
export default {
  ...base,
  roots: ['<rootDir>/test/attack'],
  testMatch: ['**/*.attack-spec.ts'],
  testTimeout: 300_000,
  // One file at a time: the enumeration timings compare medians, and a second worker hashing
  // bcrypt on the other core would only add noise to them.
  maxWorkers: 1,
};
