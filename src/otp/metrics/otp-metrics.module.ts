import { type DynamicModule, Module } from '@nestjs/common';
import { OTP_OBSERVER } from '../events/otp-observer.js';
import { OtpMetrics, type OtpMetricsOptions } from './otp-metrics.js';

/** Injection token of the prom-client `Registry` the OTP metrics are in (to serve `/metrics`). */
export const OTP_METRICS_REGISTRY = Symbol('OTP_METRICS_REGISTRY');

/**
 * Prometheus metrics of every `OtpModule` in the app (see `OtpMetrics` for the list): import
 * `OtpMetricsModule.forRoot()` next to `OtpModule`, and serve the registry
 * (`OTP_METRICS_REGISTRY`, prom-client's global `register` by default) at `/metrics`.
 * Needs `prom-client`, an optional peer loaded only from `nest-otp/metrics`.
 */
@Module({})
export class OtpMetricsModule {
  static forRoot(options: OtpMetricsOptions = {}): DynamicModule {
    return {
      module: OtpMetricsModule,
      providers: [
        { provide: OtpMetrics, useFactory: () => new OtpMetrics(options) },
        // How OtpModule finds it: any provider under OTP_OBSERVER, in any module.
        { provide: OTP_OBSERVER, useExisting: OtpMetrics },
        {
          provide: OTP_METRICS_REGISTRY,
          useFactory: (metrics: OtpMetrics) => metrics.registry,
          inject: [OtpMetrics],
        },
      ],
      exports: [OtpMetrics, OTP_METRICS_REGISTRY],
    };
  }
}
