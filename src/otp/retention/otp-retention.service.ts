import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { OTP_DATA_SOURCE, OTP_OPTIONS } from '../otp.constants.js';
import type { OtpModuleOptions } from '../otp.options.js';
import { purgeOtpRequests, type PurgeResult } from './otp-retention.js';

/**
 * Retention: deletes history no decision can need any more (older than `retentionSeconds`), on
 * demand or, when `purgeIntervalSeconds` is set, on a schedule in every instance (safe: batches
 * skip rows another instance is deleting).
 */
@Injectable()
export class OtpRetentionService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('OtpRetention');
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(
    @Inject(OTP_OPTIONS) private readonly options: OtpModuleOptions,
    @Inject(OTP_DATA_SOURCE) private readonly dataSource: DataSource,
  ) {}

  /** Rows older than this are deleted: never less than what a live code or token needs. */
  get retentionSeconds(): number {
    return Math.max(
      this.options.retentionSeconds,
      this.options.ttlSeconds,
      this.options.tokenTtlSeconds,
    );
  }

  purge(batchSize?: number): Promise<PurgeResult> {
    return purgeOtpRequests(this.dataSource, {
      olderThanSeconds: this.retentionSeconds,
      batchSize,
    });
  }

  onApplicationBootstrap(): void {
    const every = this.options.purgeIntervalSeconds;
    if (!every) return;
    this.timer = setInterval(() => {
      if (this.running) return; // a slow purge is not stacked on itself
      this.running = this.purge()
        .then(({ deleted }) => deleted > 0 && this.logger.log(`purged ${deleted} old OTP requests`))
        .catch((error: unknown) =>
          this.logger.warn(
            `purge failed: ${error instanceof Error ? error.message : String(error)}`,
          ),
        )
        .finally(() => (this.running = undefined));
    }, every * 1000);
    this.timer.unref();
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
