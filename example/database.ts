import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { DataSource, type MigrationInterface } from 'typeorm';
import { otpMigrations } from '../src/index.js';
import { type PostgresServer, startEmbeddedPostgres } from './embedded-postgres.js';

export {
  EmbeddedPostgresError,
  type PostgresServer,
  startEmbeddedPostgres,
} from './embedded-postgres.js';

/** True when a server answers at `url` within two seconds. */
export async function serverAnswers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * The server tests run on: DATABASE_URL if set; otherwise the one on 127.0.0.1:5432; otherwise an
 * embedded one in a temporary folder, removed on release.
 */
export async function acquireTestServer(): Promise<PostgresServer> {
  const given = process.env.DATABASE_URL;
  if (given) return { adminUrl: given, release: () => Promise.resolve() };
  const local = 'postgres://postgres@127.0.0.1:5432/postgres';
  if (await serverAnswers(local)) return { adminUrl: local, release: () => Promise.resolve() };
  const dir = mkdtempSync(join(tmpdir(), 'nest-otp-pg-'));
  const embedded = await startEmbeddedPostgres(dir, 20_000 + Math.floor(Math.random() * 20_000));
  return {
    adminUrl: embedded.adminUrl,
    release: async () => {
      await embedded.release();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The same server, another database. */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/** Creates database `name` unless it exists; returns its URL. */
export async function ensureDatabase(adminUrl: string, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    // Identifiers cannot be bound parameters; escapeIdentifier quotes it safely.
    if (found.rowCount === 0) await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
  return withDatabase(adminUrl, name);
}

/** Creates a fresh, uniquely named database and returns its URL. */
export function createUniqueDatabase(adminUrl: string, prefix = 'nest_otp_test'): Promise<string> {
  return ensureDatabase(adminUrl, `${prefix}_${Date.now()}_${randomBytes(4).toString('hex')}`);
}

/** Drops a database, closing whatever still holds it. */
export async function dropDatabase(adminUrl: string, databaseUrl: string): Promise<void> {
  const name = decodeURIComponent(new URL(databaseUrl).pathname.slice(1));
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

/**
 * Runs the module's pending migrations on a database, as a host does before starting:
 * `otpMigrations`, or another list (`otpPartitionedMigrations`, the partitioned layout).
 */
export async function runOtpMigrations(
  databaseUrl: string,
  migrations: readonly (new () => MigrationInterface)[] = otpMigrations,
): Promise<void> {
  const dataSource = new DataSource({
    type: 'postgres',
    url: databaseUrl,
    migrations: [...migrations],
  });
  await dataSource.initialize();
  try {
    // 'each': the index migration builds CONCURRENTLY, outside any transaction.
    await dataSource.runMigrations({ transaction: 'each' });
  } finally {
    await dataSource.destroy();
  }
}
