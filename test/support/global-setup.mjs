// Runs in jest's parent process, outside its ESM transform: so it uses the compiled build
// (`npm test` builds first).
import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import pg from 'pg';
import {
  acquireTestServer,
  createUniqueDatabase,
  runOtpMigrations,
} from '../../build/example/database.js';
import { otpPartitionedMigrations } from '../../build/migrations/index.js';

const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const PROBE_MS = 1_000;

/** Null when a Redis answers PING at REDIS_URL within a second, otherwise why not. */
async function probeRedis() {
  const redis = new Redis(REDIS_URL, {
    lazyConnect: true,
    connectTimeout: PROBE_MS,
    commandTimeout: PROBE_MS,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  // The probe's own failures are its answer (ECONNREFUSED says more than "Connection is closed"),
  // not an "Unhandled error event".
  let lastError;
  redis.on('error', (error) => (lastError = error));
  let timer;
  try {
    await Promise.race([
      redis.connect().then(() => redis.ping()),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out')), PROBE_MS);
      }),
    ]);
    return null;
  } catch (error) {
    const why = lastError?.message ?? error?.message ?? String(error);
    return `no Redis answered at REDIS_URL=${REDIS_URL} within 1 s (${why})`;
  } finally {
    clearTimeout(timer);
    redis.disconnect();
  }
}

/** Null when the redis-server binary runs, otherwise why not. */
function probeRedisServerBinary() {
  const run = spawnSync('redis-server', ['--version'], { timeout: 5_000 });
  if (run.error || run.status !== 0) {
    return `no redis-server binary runs here (${run.error?.message ?? `exit ${run.status}`})`;
  }
  return null;
}

/** Null when the server offers the pg_partman extension (CREATE EXTENSION can load it), else why not. */
async function probePgPartman(adminUrl) {
  const client = new pg.Client({ connectionString: adminUrl });
  try {
    await client.connect();
    const { rows } = await client.query(
      `SELECT default_version FROM pg_available_extensions WHERE name = 'pg_partman'`,
    );
    if (rows.length > 0) return null;
    const {
      rows: [server],
    } = await client.query(`SELECT current_setting('server_version') AS v`);
    return `the PostgreSQL server (${server?.v}) has no pg_partman extension (Debian: apt-get install postgresql-<major>-partman)`;
  } catch (error) {
    return `could not ask the PostgreSQL server for pg_partman (${error?.message ?? String(error)})`;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * The optional services some specs need (test/support/services.ts): found ones are '1' in the
 * workers' environment, missing ones the reason, and their specs are reported skipped. With
 * NEST_OTP_REQUIRE_SERVICES=1 (as .ci/run sets) a missing one fails the run instead.
 */
async function probeServices(adminUrl) {
  const found = {
    NEST_OTP_REDIS: await probeRedis(),
    NEST_OTP_REDIS_SERVER_BINARY: probeRedisServerBinary(),
    NEST_OTP_PG_PARTMAN: await probePgPartman(adminUrl),
  };
  const missing = Object.values(found).filter((reason) => reason !== null);
  if (missing.length > 0 && process.env.NEST_OTP_REQUIRE_SERVICES === '1') {
    throw new Error(
      `NEST_OTP_REQUIRE_SERVICES=1, but a service the tests need is missing: ${missing.join('; ')}. ` +
        'Install Redis (redis-server on PATH) and start it, or point REDIS_URL at one, and pg_partman for the PostgreSQL server (.ci/run does both on Debian); or unset NEST_OTP_REQUIRE_SERVICES to skip those tests.',
    );
  }
  for (const [variable, reason] of Object.entries(found)) process.env[variable] = reason ?? '1';
  // Example apps that specs spawn inherit the environment: a REDIS_URL nothing answers at would
  // turn their every request into a 503 (throttleStoreFailure 'closed'), failing specs that never
  // asked for Redis. They keep their counters in memory instead.
  if (found.NEST_OTP_REDIS !== null) delete process.env.REDIS_URL;
}

/**
 * A database with the partitioned layout (otpPartitionedMigrations), for the jest project that runs
 * the race and policy suites again on it (jest.config.mjs), with the partitions of the last days
 * too: the policy suite moves history up to a day into the past.
 */
async function partitionedDatabase(adminUrl) {
  const url = await createUniqueDatabase(adminUrl, 'nest_otp_test_partitioned');
  await runOtpMigrations(url, otpPartitionedMigrations);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('SELECT otp_requests_create_partitions(7, 3)');
  } finally {
    await client.end();
  }
  return url;
}

/**
 * One fresh database per test run, migrated; workers find it in TEST_DATABASE_URL (and the
 * partitioned one in TEST_PARTITIONED_DATABASE_URL).
 */
export default async function globalSetup() {
  const server = await acquireTestServer();
  globalThis.__nestOtpTestServer = server;
  try {
    await probeServices(server.adminUrl);
  } catch (error) {
    await server.release();
    throw error;
  }
  const [url, partitioned] = await Promise.all([
    createUniqueDatabase(server.adminUrl).then(async (created) => {
      await runOtpMigrations(created);
      return created;
    }),
    partitionedDatabase(server.adminUrl),
  ]);
  process.env.TEST_ADMIN_DATABASE_URL = server.adminUrl;
  process.env.TEST_DATABASE_URL = url;
  process.env.TEST_PARTITIONED_DATABASE_URL = partitioned;
}
