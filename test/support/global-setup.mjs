// Runs in jest's parent process, outside its ESM transform: so it uses the compiled build
// (`npm test` builds first).
import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import {
  acquireTestServer,
  createUniqueDatabase,
  runOtpMigrations,
} from '../../build/example/database.js';

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

/**
 * The optional services some specs need (test/support/services.ts): found ones are '1' in the
 * workers' environment, missing ones the reason, and their specs are reported skipped. With
 * NEST_OTP_REQUIRE_SERVICES=1 (as .ci/run sets) a missing one fails the run instead.
 */
async function probeServices() {
  const found = {
    NEST_OTP_REDIS: await probeRedis(),
    NEST_OTP_REDIS_SERVER_BINARY: probeRedisServerBinary(),
  };
  const missing = Object.values(found).filter((reason) => reason !== null);
  if (missing.length > 0 && process.env.NEST_OTP_REQUIRE_SERVICES === '1') {
    throw new Error(
      `NEST_OTP_REQUIRE_SERVICES=1, but a service the tests need is missing: ${missing.join('; ')}. ` +
        'Install Redis (redis-server on PATH) and start it, or point REDIS_URL at one; or unset NEST_OTP_REQUIRE_SERVICES to skip those tests.',
    );
  }
  for (const [variable, reason] of Object.entries(found)) process.env[variable] = reason ?? '1';
  // Example apps that specs spawn inherit the environment: a REDIS_URL nothing answers at would
  // turn their every request into a 503 (throttleStoreFailure 'closed'), failing specs that never
  // asked for Redis. They keep their counters in memory instead.
  if (found.NEST_OTP_REDIS !== null) delete process.env.REDIS_URL;
}

/** One fresh database per test run, migrated; workers find it in TEST_DATABASE_URL. */
export default async function globalSetup() {
  await probeServices();
  const server = await acquireTestServer();
  globalThis.__nestOtpTestServer = server;
  const url = await createUniqueDatabase(server.adminUrl);
  await runOtpMigrations(url);
  process.env.TEST_ADMIN_DATABASE_URL = server.adminUrl;
  process.env.TEST_DATABASE_URL = url;
}
