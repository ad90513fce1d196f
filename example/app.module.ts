import { type DynamicModule, Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Registry } from 'prom-client';
import { otpMigrations, OtpModule, type OtpModuleOptionsInput } from '../src/index.js';
import { OtpHealthIndicator } from '../src/otp/health/index.js';
import { OtpMetricsModule } from '../src/otp/metrics/index.js';
import { HealthController } from './health.controller.js';
import { MetricsController } from './metrics.controller.js';
import { PageModule } from './page/page.module.js';
import { ProtectedController } from './protected.controller.js';

export interface ExampleAppOptions {
  databaseUrl: string;
  otp: OtpModuleOptionsInput;
  /** Pool size of the app's DataSource. Default 10. */
  poolSize?: number;
}

/**
 * The example host app: its own TypeORM connection, the OTP module, one guarded route, and the
 * integrations a NestJS team expects: `GET /health` (terminus) and `GET /metrics` (prom-client).
 */
@Module({})
export class AppModule {
  static register(options: ExampleAppOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [
        PageModule.register({ appName: options.otp.appName }),
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: options.databaseUrl,
          migrations: otpMigrations,
          migrationsRun: true,
          // One transaction per migration: the index migration builds CONCURRENTLY, outside one.
          migrationsTransactionMode: 'each',
          poolSize: options.poolSize ?? 10,
          // Fail fast instead of queueing forever when the database is gone.
          extra: { connectionTimeoutMillis: 3000 },
          retryAttempts: 3,
        }),
        OtpModule.forRoot(options.otp),
        TerminusModule.forRoot(),
        // A registry per app, so several apps in one process (the tests) keep their own counts.
        OtpMetricsModule.forRoot({ registry: new Registry() }),
      ],
      controllers: [ProtectedController, HealthController, MetricsController],
      providers: [OtpHealthIndicator],
    };
  }
}
