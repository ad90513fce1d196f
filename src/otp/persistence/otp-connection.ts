import { Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { sha256Hex } from '../crypto/sha256.js';
import type { Pool, QueryResult, QueryResultRow } from 'pg';
import { DataSource, type DataSourceOptions } from 'typeorm';
import type { OtpModuleOptions } from '../otp.options.js';

/**
 * The module's own small pool, opened from the host DataSource's connection options (same server,
 * same credentials, same schema). Its sessions carry the module's `statement_timeout` and
 * `lock_timeout`, and waiting for one of its connections is bounded by `acquireTimeoutMs`: a stuck
 * migration, a long lock or a saturated pool turns into a 503 within those bounds, and none of it
 * touches the host's own connections or their settings.
 *
 * The module's hand-written statements go to the DataSource's `pg` pool directly (`pool`), as
 * prepared statements: the same connections and session settings, without TypeORM's per-query
 * QueryRunner, parsed once a connection instead of once a call and, for the request paths, planned
 * once too (see `open`, and bench/README.md). The retention purge and the schema checks keep using
 * `dataSource`.
 */
@Injectable()
export class OtpConnection implements OnApplicationShutdown {
  /** The pg pool behind `dataSource` (TypeORM's Postgres driver's `master`). */
  readonly pool: Pool;
  /** Statements go prepared (named) until the server side refuses one. */
  private prepare = true;
  private readonly logger = new Logger('OtpConnection');

  private constructor(readonly dataSource: DataSource) {
    const pool = (dataSource.driver as unknown as { master?: Pool }).master;
    if (!pool || typeof pool.query !== 'function') {
      throw new Error('OtpModule: the Postgres driver did not open a pg pool.');
    }
    this.pool = pool;
  }

  static async open(host: DataSource, options: OtpModuleOptions): Promise<OtpConnection> {
    if (host.options.type !== 'postgres') {
      throw new Error(`OtpModule needs a Postgres DataSource; this one is '${host.options.type}'.`);
    }
    const extra = (host.options.extra ?? {}) as Record<string, unknown>;
    const dataSource = new DataSource({
      ...host.options,
      name: 'nest-otp',
      entities: [],
      subscribers: [],
      migrations: [],
      migrationsRun: false,
      synchronize: false,
      dropSchema: false,
      poolSize: options.poolSize,
      extra: {
        ...extra,
        max: options.poolSize,
        statement_timeout: options.statementTimeoutMs,
        lock_timeout: options.lockTimeoutMs,
        connectionTimeoutMillis: options.acquireTimeoutMs,
        application_name: 'nest-otp',
        // The module prepares its statements; Postgres's default plan choice (`auto`, set here
        // whatever the server's default) plans the first five executions of each for their
        // values, then keeps one generic plan unless that plan is estimated to cost more: the
        // request paths' statements settle on generic plans (planning the send's history read
        // on every call cost Postgres more than executing it), while the purges' batches, whose
        // LIMIT a generic plan cannot see, stay planned per call. The statements are written so
        // that the generic plan is right for every destination, however many rows one holds
        // (bench section 3b shows the plan each one settles on, on a grown table).
        options: [typeof extra.options === 'string' ? extra.options : '', '-c plan_cache_mode=auto']
          .filter(Boolean)
          .join(' '),
      },
    } as DataSourceOptions);
    await dataSource.initialize();
    return new OtpConnection(dataSource);
  }

  /**
   * Runs one of the module's statements on the pool, prepared under its `name` on each connection.
   * A server that refuses prepared statements (a transaction-mode pooler such as PgBouncer before
   * 1.21 hands each statement to any backend) turns them off for good: every statement then goes
   * unnamed, parsed and planned each call, as plain `pool.query` would.
   */
  async run<Row extends QueryResultRow>(
    statement: PreparedStatement,
    values: unknown[],
  ): Promise<QueryResult<Row>> {
    if (this.prepare) {
      try {
        return await this.pool.query<Row>({ name: statement.name, text: statement.text, values });
      } catch (error) {
        if (!refusesPreparedStatements(error)) throw error;
        this.prepare = false;
        this.logger.warn(
          `prepared statements refused (${(error as Error).message}): running them unnamed from now on`,
        );
      }
    }
    return this.pool.query<Row>(statement.text, values);
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.dataSource.isInitialized) await this.dataSource.destroy();
  }
}

/** SQL text and the name it is prepared under (see `prepared`). */
export interface PreparedStatement {
  readonly text: string;
  readonly name: string;
}

/**
 * A statement to run with `OtpConnection.run`, named by a digest of its text: two texts never
 * share a name, and the same text always gets the same one.
 */
export function prepared(text: string): PreparedStatement {
  return { text, name: `nest-otp-${sha256Hex(text).slice(0, 24)}` };
}

/**
 * Errors meaning the server side does not keep this connection's prepared statements: one the
 * client prepared is missing (26000: a pooler handed the session another server connection) or
 * already there (42P05), or its cached plan no longer fits (a column change under a running app).
 * Each is raised before the statement runs.
 */
function refusesPreparedStatements(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === '26000' || code === '42P05') return true;
  return (
    code === '0A000' &&
    /cached plan must not change result type/.test(String((error as Error).message))
  );
}
