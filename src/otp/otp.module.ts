import {
  Inject,
  Logger,
  type MiddlewareConsumer,
  Module,
  type NestModule,
  type Type,
} from '@nestjs/common';
import { ThrottlerStorageService, type ThrottlerModuleOptions } from '@nestjs/throttler';
import { DataSource } from 'typeorm';
import { createCodeHasher } from './crypto/code-hasher.js';
import { ConsoleOtpProvider } from './delivery/console.provider.js';
import { OtpDeliveryService } from './delivery/otp-delivery.service.js';
import { OtpProvidersLifecycle } from './delivery/otp-providers.lifecycle.js';
import { DeliveryStatusRoutes } from './delivery/receipts/delivery-status.routes.js';
import { OtpDeliveryLogRepository } from './delivery/receipts/otp-delivery-log.repository.js';
import { OtpFallbackService } from './delivery/receipts/otp-fallback.service.js';
import { OtpRoutesExceptionFilter } from './errors/otp-routes-exception.filter.js';
import { OtpObservers } from './events/otp-observers.js';
import { OtpHealthProbe } from './health/otp-health.probe.js';
import { OtpTokenGuard } from './guards/otp-token.guard.js';
import { OtpBodyMiddleware } from './http/otp-body.middleware.js';
import { OtpFastifyRoutes } from './http/otp-fastify-routes.js';
import { OtpRoutesErrorHandler } from './http/otp-routes-error-handler.js';
import {
  OTP_DATA_SOURCE,
  OTP_HASHER,
  OTP_OPTIONS,
  OTP_PROVIDERS,
  OTP_THROTTLER_OPTIONS,
  OTP_THROTTLER_STORAGE,
} from './otp.constants.js';
import {
  OTP_CONTROLLER,
  OTP_MODULE_INPUT,
  OtpConfigurableModule,
} from './otp.module-definition.js';
import {
  resolveOtpOptions,
  type OtpModuleOptions,
  type OtpModuleOptionsInput,
} from './otp.options.js';
import { OtpService } from './otp.service.js';
import { OtpRequestRepository } from './persistence/otp-request.repository.js';
import { OtpConnection } from './persistence/otp-connection.js';
import { OtpSchemaCheck } from './persistence/otp-schema.check.js';
import { OtpRetentionService } from './retention/otp-retention.service.js';
import { OtpThrottlerGuard } from './throttler/otp-throttler.guard.js';

/**
 * One-time-passcode verification: `OtpService`, the OTP routes (`OtpController`, under the
 * `routePrefix`), per-IP throttling and `@RequireOtp`. Uses the host's TypeORM DataSource (run
 * `otpMigrations` on it), and opens a small pool of its own from its connection options, so its
 * statements carry their own timeouts without touching the host's connections.
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
      useFactory: (options: OtpModuleOptions) => {
        const providers = options.providers ?? [new ConsoleOtpProvider()];
        if (
          process.env.NODE_ENV === 'production' &&
          // By name: a host may wrap it (e.g. to limit its channels).
          providers.some((p) => p instanceof ConsoleOtpProvider || p.name === 'console')
        ) {
          new Logger('OtpModule').warn(
            'The console provider prints every code to stdout and delivers nothing: ' +
              'configure real `providers` for production.',
          );
        }
        return providers;
      },
      inject: [OTP_OPTIONS],
    },
    // The OTP throttler's own tokens, apart from @nestjs/throttler's, so its limits never clash
    // with a ThrottlerModule the host configures for its own routes.
    {
      provide: OTP_THROTTLER_OPTIONS,
      useFactory: (options: OtpModuleOptions): ThrottlerModuleOptions => ({
        throttlers: [
          { name: 'default', limit: options.throttleLimit, ttl: options.throttleTtlSeconds * 1000 },
        ],
        // No X-RateLimit-* headers: they count only this per-IP budget, not the caps and
        // cooldowns that refuse most sends, and tell a script its exact budget. A 429 carries
        // Retry-After (the contract's error filter), which is all a client needs.
        setHeaders: false,
      }),
      inject: [OTP_OPTIONS],
    },
    {
      provide: OTP_THROTTLER_STORAGE,
      useFactory: (options: OtpModuleOptions) =>
        options.throttleStorage ?? new ThrottlerStorageService(),
      inject: [OTP_OPTIONS],
    },
    {
      provide: OtpConnection,
      useFactory: (host: DataSource, options: OtpModuleOptions) =>
        OtpConnection.open(host, options),
      inject: [OTP_DATA_SOURCE, OTP_OPTIONS],
    },
    OtpRequestRepository,
    OtpSchemaCheck,
    // Events (when the host has @nestjs/event-emitter) and `OTP_OBSERVER`s such as metrics.
    OtpObservers,
    OtpHealthProbe,
    OtpRetentionService,
    OtpDeliveryService,
    OtpDeliveryLogRepository,
    OtpFallbackService,
    DeliveryStatusRoutes,
    OtpProvidersLifecycle,
    OtpService,
    OtpThrottlerGuard,
    OtpTokenGuard,
    OtpRoutesExceptionFilter,
    OtpRoutesErrorHandler,
    OtpFastifyRoutes,
  ],
  exports: [
    OTP_OPTIONS,
    OTP_THROTTLER_OPTIONS,
    OTP_THROTTLER_STORAGE,
    OtpService,
    OtpFallbackService,
    OtpTokenGuard,
    OtpThrottlerGuard,
    // For `OtpHealthIndicator` (nest-otp/health) in the host's own module.
    OtpHealthProbe,
  ],
})
export class OtpModule extends OtpConfigurableModule implements NestModule {
  constructor(
    @Inject(OTP_CONTROLLER) private readonly controller: Type | null,
    private readonly fastifyRoutes: OtpFastifyRoutes,
    private readonly receiptRoutes: DeliveryStatusRoutes,
  ) {
    super();
  }

  /**
   * The body limit and JSON-only rule apply to the OTP routes only: a middleware on Express; on
   * Fastify, where middleware runs before the body is read, the routes' own options and hooks.
   */
  configure(consumer: MiddlewareConsumer): void {
    this.receiptRoutes.install();
    if (!this.controller || this.fastifyRoutes.install()) return;
    consumer.apply(OtpBodyMiddleware).forRoutes(this.controller);
  }
}
