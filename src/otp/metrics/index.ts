/** `nest-otp/metrics`: Prometheus metrics with `prom-client` (an optional peer, loaded only from here). */
export { OTP_METRICS_REGISTRY, OtpMetricsModule } from './otp-metrics.module.js';
export { OtpMetrics, type OtpMetricsOptions } from './otp-metrics.js';
