import { describe } from '@jest/globals';

/**
 * Optional services some specs need, as test/support/global-setup.mjs found them: a spec that needs
 * one runs when it is there, and is reported skipped with a one-line reason when it is not (unless
 * NEST_OTP_REQUIRE_SERVICES=1, which makes global setup fail the run instead, as .ci/run does).
 */
interface Service {
  /** Set by global setup: '1' when the service answered, otherwise why not. */
  readonly variable: string;
  readonly name: string;
}

const REDIS: Service = { variable: 'NEST_OTP_REDIS', name: 'Redis' };
const REDIS_SERVER_BINARY: Service = { variable: 'NEST_OTP_REDIS_SERVER_BINARY', name: 'Redis' };
const PG_PARTMAN: Service = { variable: 'NEST_OTP_PG_PARTMAN', name: 'pg_partman' };

/** Why a service cannot be used, or null when it can (or when global setup did not look). */
function missing(service: Service): string | null {
  const found = process.env[service.variable];
  return found === undefined || found === '1' ? null : found;
}

function describeWith(service: Service, name: string, fn: () => void): void {
  const reason = missing(service);
  if (reason === null) {
    describe(name, fn);
    return;
  }
  process.stderr.write(`${service.name} tests skipped ("${name}"): ${reason}\n`);
  const skipped = describe.skip;
  skipped(name, fn);
}

/** A describe that needs the shared Redis at REDIS_URL (default redis://127.0.0.1:6379). */
export function describeWithRedis(name: string, fn: () => void): void {
  describeWith(REDIS, name, fn);
}

/** A describe that starts Redis servers of its own, so needs the `redis-server` binary. */
export function describeWithRedisServer(name: string, fn: () => void): void {
  describeWith(REDIS_SERVER_BINARY, name, fn);
}

/** A describe that creates the pg_partman extension in a database of its own. */
export function describeWithPgPartman(name: string, fn: () => void): void {
  describeWith(PG_PARTMAN, name, fn);
}
