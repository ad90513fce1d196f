import { Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { Pool } from 'pg';
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
 * QueryRunner, and parsed once a connection instead of once a call (see bench/README.md). Its
 * sessions plan every execution for its own values (`plan_cache_mode = force_custom_plan`), as
 * they did unprepared. The retention purge and the schema checks keep using `dataSource`.
 */
@Injectable()
export class OtpConnection implements OnApplicationShutdown {
  /** The pg pool behind `dataSource` (TypeORM's Postgres driver's `master`). */
  readonly pool: Pool;

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
        // The module prepares its statements (parsed once a connection); each execution is still
        // planned for its own values, as an unprepared statement is. A generic plan cannot see
        // that one destination holds 10,000 rows: on the bench's grown table it sorted them all.
        options: [
          typeof extra.options === 'string' ? extra.options : '',
          '-c plan_cache_mode=force_custom_plan',
        ]
          .filter(Boolean)
          .join(' '),
      },
    } as DataSourceOptions);
    await dataSource.initialize();
    return new OtpConnection(dataSource);
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.dataSource.isInitialized) await this.dataSource.destroy();
  }
}
