import { Controller, Get, Header, Inject } from '@nestjs/common';
import { Registry } from 'prom-client';
import { OTP_METRICS_REGISTRY } from '../src/otp/metrics/index.js';

/** `GET /metrics`: the app's Prometheus metrics (the OTP module's among them), in text format. */
@Controller('metrics')
export class MetricsController {
  constructor(@Inject(OTP_METRICS_REGISTRY) private readonly registry: Registry) {}

  @Get()
  @Header('Content-Type', Registry.PROMETHEUS_CONTENT_TYPE)
  metrics(): Promise<string> {
    return this.registry.metrics();
  }
}
