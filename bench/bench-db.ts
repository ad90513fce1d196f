import pg from 'pg';
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
  private constructor(
    private readonly server: PostgresServer,
    readonly url: string,
    private readonly client: pg.Client,
  ) {}

  static async create(): Promise<BenchDb> {
    const server = await acquireTestServer();
    const url = await createUniqueDatabase(server.adminUrl, 'nest_otp_bench');
    await runOtpMigrations(url);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    return new BenchDb(server, url, client);
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

  async drop(): Promise<void> {
    await this.client.end().catch(() => undefined);
    await dropDatabase(this.server.adminUrl, this.url);
    await this.server.release();
  }
}
