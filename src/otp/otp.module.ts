import { Module } from '@nestjs/common';
import {
  getOptionsToken,
  getStorageToken,
  ThrottlerStorageService,
  type ThrottlerModuleOptions,
} from '@nestjs/throttler';
import { DataSource } from 'typeorm';
import { createCodeHasher } from './crypto/code-hasher.js';
import { ConsoleOtpProvider } from './delivery/console.provider.js';
import { OtpDeliveryService } from './delivery/otp-delivery.service.js';
import { OtpThrottlerGuard } from './throttler/otp-throttler.guard.js';
import { OtpTokenGuard } from './guards/otp-token.guard.js';
import { OTP_DATA_SOURCE, OTP_HASHER, OTP_OPTIONS, OTP_PROVIDERS } from './otp.constants.js';
import { OTP_MODULE_INPUT, OtpConfigurableModule } from './otp.module-definition.js';
import {
  resolveOtpOptions,
  type OtpModuleOptions,
  type OtpModuleOptionsInput,
} from './otp.options.js';
import { OtpService } from './otp.service.js';
import { OtpRequestRepository } from './persistence/otp-request.repository.js';
import { OtpRetentionService } from './retention/otp-retention.service.js';

/**
 * One-time-passcode verification: `OtpService`, the OTP routes (`OtpController`, under the
 * `routePrefix`), per-IP throttling and `@RequireOtp`. Uses the host's TypeORM DataSource (run
 * `otpMigrations` on it); opens no connection of its own.
 *
 * ```ts
 * OtpModule.forRoot({ hasher: 'hmac', hmacSecret: process.env.OTP_SECRET })
 * OtpModule.forRootAsync({ inject: [ConfigService], useFactory: (c) => ({ ... }), routePrefix: 'auth/otp' })
 * ```
 */
@Module({
  providers: [
    {
      provide: OTP_OPTIONS,
      useFactory: (input: OtpModuleOptionsInput) => resolveOtpOptions(input),
      inject: [OTP_MODULE_INPUT],
    },
    {
      provide: OTP_DATA_SOURCE,
      useFactory: (options: OtpModuleOptions, hostDataSource?: DataSource): DataSource => {
        const dataSource = options.dataSource ?? hostDataSource;
        if (!dataSource) {
          throw new Error(
            'OtpModule needs a TypeORM DataSource: import TypeOrmModule.forRoot(...) in your app, ' +
              'or pass `dataSource` in the OtpModule options.',
          );
        }
        return dataSource;
      },
      inject: [OTP_OPTIONS, { token: DataSource, optional: true }],
    },
    {
      provide: OTP_HASHER,
      useFactory: (options: OtpModuleOptions) => createCodeHasher(options),
      inject: [OTP_OPTIONS],
    },
    {
      provide: OTP_PROVIDERS,
      useFactory: (options: OtpModuleOptions) => options.providers ?? [new ConsoleOtpProvider()],
      inject: [OTP_OPTIONS],
    },
    // @nestjs/throttler's tokens, provided here rather than through its (global) module, so the
    // OTP limits never clash with a throttler the host configures for its own routes.
    {
      provide: getOptionsToken(),
      useFactory: (options: OtpModuleOptions): ThrottlerModuleOptions => ({
        throttlers: [
          { name: 'default', limit: options.throttleLimit, ttl: options.throttleTtlSeconds * 1000 },
        ],
      }),
      inject: [OTP_OPTIONS],
    },
    {
      provide: getStorageToken(),
      useFactory: (options: OtpModuleOptions) =>
        options.throttleStorage ?? new ThrottlerStorageService(),
      inject: [OTP_OPTIONS],
    },
    OtpRequestRepository,
    OtpRetentionService,
    OtpDeliveryService,
    OtpService,
    OtpThrottlerGuard,
    OtpTokenGuard,
  ],
  exports: [OTP_OPTIONS, OtpService, OtpTokenGuard, OtpRetentionService],
})
export class OtpModule extends OtpConfigurableModule {}
