import { Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { DataSource, type DataSourceOptions } from 'typeorm';
import type { OtpModuleOptions } from '../otp.options.js';

/**
 * The module's own small pool, opened from the host DataSource's connection options (same server,
 * same credentials, same schema). Its sessions carry the module's `statement_timeout` and
 * `lock_timeout`, and waiting for one of its connections is bounded by `acquireTimeoutMs`: a stuck
 * migration, a long lock or a saturated pool turns into a 503 within those bounds, and none of it
 * touches the host's own connections or their settings.
 */
@Injectable()
export class OtpConnection implements OnApplicationShutdown {
  private constructor(readonly dataSource: DataSource) {}

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
      },
    } as DataSourceOptions);
    await dataSource.initialize();
    return new OtpConnection(dataSource);
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.dataSource.isInitialized) await this.dataSource.destroy();
  }
}
