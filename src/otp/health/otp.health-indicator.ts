import { Injectable, Logger } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { OtpHealthProbe } from './otp-health.probe.js';

export interface OtpHealthCheckOptions {
  /** Longest the check waits for the database, in ms. Default `3000`. */
  timeoutMs?: number;
}

/**
 * A `@nestjs/terminus` indicator: up when the database answers through the module's own pool and
 * every nest-otp migration has been applied (the tables, indexes and columns the start-up check
 * looks for). List it in the `providers` of a module that imports `TerminusModule` and
 * `OtpModule`:
 *
 * ```ts
 * @Get('health')
 * @HealthCheck()
 * check() {
 *   return this.health.check([() => this.otp.isHealthy('otp')]);
 * }
 * ```
 *
 * Down, it says why (`database: 'unreachable'`, or `migrations: 'missing'` with the missing
 * objects), never the driver's message: health routes are often public.
 */
@Injectable()
export class OtpHealthIndicator {
  private readonly logger = new Logger('OtpHealthIndicator');

  constructor(
    private readonly health: HealthIndicatorService,
    private readonly probe: OtpHealthProbe,
  ) {}

  async isHealthy<const Key extends string = 'otp'>(
    key: Key = 'otp' as Key,
    options: OtpHealthCheckOptions = {},
  ): Promise<HealthIndicatorResult<Key>> {
    const indicator = this.health.check(key);
    let missing: string[];
    try {
      missing = await within(this.probe.missingSchema(), options.timeoutMs ?? 3_000);
    } catch (error) {
      this.logger.warn(
        `database check failed: ${error instanceof Error ? error.message : String(error)}`,
      );
      return indicator.down({ database: 'unreachable' });
    }
    if (missing.length > 0) {
      return indicator.down({ database: 'up', migrations: 'missing', missing });
    }
    return indicator.up({ database: 'up', migrations: 'applied' });
  }
}

/** The promise's outcome, or a rejection once `ms` passed; a late outcome is dropped. */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  promise.catch(() => undefined);
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
