import { Controller, Get, Inject, Optional } from '@nestjs/common';
import {
  HealthCheck,
  type HealthCheckAttempt,
  HealthCheckService,
  HealthIndicatorService,
  type HealthCheckResult,
  type HealthIndicatorFunction,
} from '@nestjs/terminus';
import type { ThrottlerStorage } from '@nestjs/throttler';
import { OTP_THROTTLER_STORAGE, RedisThrottlerStorage } from '../src/index.js';
import { OtpHealthIndicator } from '../src/otp/health/index.js';

/**
 * `GET /health`: 200 `{ status: 'ok', info, ... }` while the OTP database answers with its
 * migrations applied (and Redis, when the throttle counters are kept there), 503 otherwise.
 */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly otp: OtpHealthIndicator,
    @Optional() @Inject(OTP_THROTTLER_STORAGE) private readonly throttle?: ThrottlerStorage,
  ) {}

  @Get()
  @HealthCheck()
  check(): Promise<HealthCheckResult> {
    const checks: HealthIndicatorFunction[] = [() => this.otp.isHealthy('otp')];
    const redis = this.throttle instanceof RedisThrottlerStorage ? this.throttle : undefined;
    if (redis) checks.push(() => this.redisHealthy(redis));
    return this.health.check(checks);
  }

  /**
   * A round trip through the throttle storage itself (REDIS_URL): the same client, timeouts and
   * script the OTP routes depend on. Its key expires after a second.
   */
  private redisHealthy(storage: RedisThrottlerStorage): HealthCheckAttempt<'redis'> {
    return this.indicators
      .check('redis')
      .attempt(async () => {
        await storage.increment('health', 1_000, Number.MAX_SAFE_INTEGER, 1_000, 'health');
      })
      .withTimeout(1_000);
  }
}
