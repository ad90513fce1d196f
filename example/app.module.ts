import { type DynamicModule, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { otpMigrations, OtpModule, type OtpModuleOptionsInput } from '../src/index.js';
import { ProtectedController } from './protected.controller.js';

export interface ExampleAppOptions {
  databaseUrl: string;
  otp: OtpModuleOptionsInput;
  /** Pool size of the app's DataSource. Default 10. */
  poolSize?: number;
}

/** The example host app: its own TypeORM connection, the OTP module, one guarded route. */
@Module({})
export class AppModule {
  static register(options: ExampleAppOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: options.databaseUrl,
          migrations: otpMigrations,
          migrationsRun: true,
          poolSize: options.poolSize ?? 10,
          // Fail fast instead of queueing forever when the database is gone.
          extra: { connectionTimeoutMillis: 3000 },
          retryAttempts: 3,
        }),
        OtpModule.forRoot(options.otp),
      ],
      controllers: [ProtectedController],
    };
  }
}
