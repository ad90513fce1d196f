import pg from 'pg';
import type { MigrationInterface } from 'typeorm';
import {
  acquireTestServer,
  createUniqueDatabase,
  dropDatabase,
  type PostgresServer,
  runOtpMigrations,
} from '../example/database.js';

/**
 * The bench's own database: created fresh (DATABASE_URL's server, else 127.0.0.1:5432, else an
 * embedded Postgres), migrated like a host would, dropped at the end.
 */
export class BenchDb {
  /** The peers' database (Better Auth's tables, the bare service's), once asked for. */
  private peers: string | undefined;

  private constructor(
    private readonly server: PostgresServer,
    readonly url: string,
    private readonly client: pg.Client,
    /** False for a `sibling`: the server is released with the first database, not this one. */
    private readonly ownsServer = true,
  ) {}

  static async create(): Promise<BenchDb> {
    const server = await acquireTestServer();
    const url = await createUniqueDatabase(server.adminUrl, 'nest_otp_bench');
    await runOtpMigrations(url);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    return new BenchDb(server, url, client);
  }

  /**
   * Another database on the same server, freshly migrated: a table with no history and no
   * statistics from earlier sections (after a TRUNCATE, Postgres keeps the grown table's
   * statistics and plans for it). Dropped on its own `drop()`. `migrations`: the default layout's
   * unless given (section 7 also makes the partitioned layout's).
   */
  async sibling(
    prefix: string,
    migrations?: readonly (new () => MigrationInterface)[],
  ): Promise<BenchDb> {
    const url = await createUniqueDatabase(this.server.adminUrl, prefix);
    await runOtpMigrations(url, migrations);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    return new BenchDb(this.server, url, client, false);
  }

  /** Where the server is, without credentials. */
  describe(): string {
    const parsed = new URL(this.url);
    return `${parsed.hostname}:${parsed.port || '5432'}${parsed.pathname}`;
  }

  async query<T extends pg.QueryResultRow = Record<string, unknown>>(
    sql: string,
    params: unknown[] = [],
  ): Promise<T[]> {
    return (await this.client.query<T>(sql, params)).rows;
  }

  /**
   * A second database on the same server, for the peer services (Better Auth creates its own
   * `user`, `session`, `account` and `verification` tables), dropped with this one.
   */
  async peersUrl(): Promise<string> {
    this.peers ??= await createUniqueDatabase(this.server.adminUrl, 'nest_otp_bench_peers');
    return this.peers;
  }

  async drop(): Promise<void> {
    await this.client.end().catch(() => undefined);
    if (this.peers) await dropDatabase(this.server.adminUrl, this.peers);
    await dropDatabase(this.server.adminUrl, this.url);
    if (this.ownsServer) await this.server.release();
  }
}
