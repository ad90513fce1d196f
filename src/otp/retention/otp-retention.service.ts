import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { OTP_OPTIONS } from '../otp.constants.js';
import { OtpConnection } from '../persistence/otp-connection.js';
import type { OtpModuleOptions } from '../otp.options.js';
import {
  createOtpPartitions,
  otpPartitionCovers,
  otpTableLayout,
} from '../partitioning/otp-partitions.js';
import { POLICY_WINDOW_SECONDS } from '../policy/send-policy.js';
import { purgeOtpRequests, type PurgeResult } from './otp-retention.js';

/** How often each instance makes sure the days ahead have their partitions (partitioned layout). */
const PARTITION_UPKEEP_MS = 60 * 60 * 1000;

/**
 * Internal to the module, not public API: the Nest glue around `purgeOtpRequests()`, which does
 * all the work. It only schedules (every `purgeIntervalSeconds` in each instance, when set; safe,
 * since batches skip rows another instance is deleting) and delegates with the retention the
 * options allow. Hosts call `OtpService.purge()` inside Nest, and `purgeOtpRequests()` outside it.
 *
 * On the partitioned layout it also keeps the days ahead partitioned (`createOtpPartitions()`:
 * pg_partman's maintenance, or the module's own): at start, where a failure stops the app only if
 * today has no partition (no send could be written), and every hour in each instance (they take
 * turns on an advisory lock; a day ahead already made is skipped).
 */
@Injectable()
export class OtpRetentionService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('OtpRetention');
  /** Rows older than this are deleted: never less than what a live code or token needs. */
  private readonly retentionSeconds: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private partitionTimer: NodeJS.Timeout | undefined;
  private partitioning: Promise<unknown> | undefined;

  constructor(
    @Inject(OTP_OPTIONS) private readonly options: OtpModuleOptions,
    private readonly connection: OtpConnection,
  ) {
    // The history read looks back a day plus a code's lifetime (a code sent just inside the day
    // can be exhausted after it), so nothing younger than that may go.
    this.retentionSeconds = Math.max(
      options.retentionSeconds,
      POLICY_WINDOW_SECONDS + options.ttlSeconds,
      options.tokenTtlSeconds,
    );
  }

  /** What `OtpService.purge()` runs: `purgeOtpRequests()` with the module's retention. */
  purge(): Promise<PurgeResult> {
    return purgeOtpRequests(this.connection.dataSource, {
      olderThanSeconds: this.retentionSeconds,
    });
  }

  async onApplicationBootstrap(): Promise<void> {
    this.schedulePurge();
    const layout = await otpTableLayout(this.connection.dataSource);
    if (!layout.partitioned) return;
    await this.makePartitions(true);
    this.partitionTimer = setInterval(() => {
      this.partitioning ??= this.makePartitions(false).finally(
        () => (this.partitioning = undefined),
      );
    }, PARTITION_UPKEEP_MS);
    this.partitionTimer.unref();
  }

  /** Makes the missing partitions ahead; at start, throws when today has none to write to. */
  private async makePartitions(atStart: boolean): Promise<void> {
    const dataSource = this.connection.dataSource;
    try {
      const made = await createOtpPartitions(dataSource);
      if (made.length > 0) this.logger.log(`made OTP partitions ${made.join(', ')}`);
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      if (atStart && !(await otpPartitionCovers(dataSource).catch(() => false))) {
        throw new Error(
          `OtpModule: otp_requests has no partition for today and making one failed (${why}). ` +
            'Run `npx nest-otp partitions`, or see docs/scaling.md.',
        );
      }
      this.logger.warn(`making OTP partitions failed: ${why}`);
    }
  }

  private schedulePurge(): void {
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
    // The schedule alone never keeps the process alive.
    this.timer.unref();
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.partitionTimer);
    await this.running;
    await this.partitioning;
  }
}
