import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { OTP_OPTIONS, OTP_PROVIDERS } from '../../otp.constants.js';
import type { OtpModuleOptions } from '../../otp.options.js';
import type { OtpChannel } from '../../otp.types.js';
import { OtpRequestRepository } from '../../persistence/otp-request.repository.js';
import { purposePoliciesOf, type PurposePolicies } from '../../policy/purpose-policy.js';
import type { CapMarks } from '../../policy/send-policy.js';
import {
  deliveryLegs,
  OtpDeliveryService,
  type DeliveryAttempt,
  type DeliveryLeg,
} from '../otp-delivery.service.js';
import type { OtpProvider } from '../otp-provider.interface.js';
import { CodeSeal, type SealedSend } from './code-seal.js';
import { adaptiveDeliveryEnabled, fallbackSecretOf } from './delivery-receipts.options.js';
import {
  OtpDeliveryLogRepository,
  type ClaimedFallback,
  type DeliveryLogEntry,
  type DeliveryCause,
  type DeliveryReceiptStatus,
  type DeliveryRecord,
  type FallbackRequest,
} from './otp-delivery-log.repository.js';

/** What a send hands over once its first delivery is over (delivered or not). */
export interface FirstDelivery {
  requestId: string;
  /** The normalized destination: which legs of the chain can reach it. */
  destination: string;
  /** The channel the send asked for (the head of its chain). */
  channel: OtpChannel;
  purpose: string;
  code: string;
  fallbackEmail?: string;
  locale?: string;
  /** The channels the purpose allows. */
  channels: readonly OtpChannel[];
  attempts: readonly DeliveryAttempt[];
}

/** Fallbacks one poll claims at most. */
const CLAIM_BATCH = 20;
/** Rounds a re-delivery may lose to concurrent sends to its destination before it gives up. */
const MAX_ROUNDS = 5;
const HOUR_SECONDS = 3_600;
const DAY_SECONDS = 86_400;

/**
 * Adaptive delivery: records each delivery attempt (otp_deliveries), keeps a sealed copy of a code
 * while a re-delivery is possible (otp_fallbacks), applies providers' receipts, and re-sends a
 * code on the next channel of its chain when a receipt says it failed or when the person stays
 * silent for the purpose's `fallbackAfterSeconds`.
 *
 * Durable and cluster-safe: the due time is a column, any instance's poll claims due rows with
 * FOR UPDATE SKIP LOCKED and a lease, so a restart loses nothing and two instances never both send;
 * the interval timer only triggers the poll. Each re-delivery is a send of its own in otp_requests
 * (counted by the send caps) and happens only while the code is live: never past its expiry.
 */
@Injectable()
export class OtpFallbackService implements OnApplicationBootstrap, OnModuleDestroy {
  /** Whether codes are sealed for re-delivery (receipts configured, or a silence fallback). */
  readonly enabled: boolean;
  private readonly logger = new Logger('OtpFallback');
  private readonly seal: CodeSeal | null;
  private readonly policies: PurposePolicies;
  private readonly leaseSeconds: number;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<unknown> | undefined;

  constructor(
    @Inject(OTP_OPTIONS) private readonly options: OtpModuleOptions,
    @Inject(OTP_PROVIDERS) private readonly providers: OtpProvider[],
    private readonly log: OtpDeliveryLogRepository,
    private readonly requests: OtpRequestRepository,
    private readonly delivery: OtpDeliveryService,
  ) {
    this.enabled = adaptiveDeliveryEnabled(options);
    const secret = fallbackSecretOf(options);
    this.seal = this.enabled && secret ? new CodeSeal(secret) : null;
    this.policies = purposePoliciesOf(options);
    // Long enough for every provider of a leg to time out, with room to spare: a lease that ends
    // while its instance still works would let another instance send too.
    this.leaseSeconds =
      Math.ceil((options.deliveryTimeoutMs * Math.max(1, providers.length) * 4) / 1000) + 30;
  }

  onApplicationBootstrap(): void {
    const every = this.options.fallbackPollIntervalMs;
    if (!this.enabled || every <= 0) return;
    this.timer = setInterval(() => this.poll(), every);
    this.timer.unref();
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.polling;
  }

  /** One poll, unless the previous one is still running: due fallbacks, then housekeeping. */
  private poll(): void {
    if (this.polling) return;
    this.polling = this.runDue()
      .then(() => this.log.sweepExpired())
      .then(() => this.log.purgeAttempts(this.options.retentionSeconds))
      .catch((error: unknown) =>
        this.logger.warn(`fallback poll failed: ${(error as Error).message}`),
      )
      .finally(() => {
        this.polling = undefined;
      });
  }

  /**
   * A send's first delivery succeeded by `delivery`: marks the request delivered and records its
   * attempts and (when a re-delivery is possible and the chain has a next channel) the sealed code
   * and the silence due time, in one statement. Throws when that fails: the send depends on it.
   */
  async recordDelivered(
    first: FirstDelivery,
    delivery: { channel: OtpChannel; provider: string; deliveredTo: string | null },
  ): Promise<void> {
    const used = uniqueChannels([first.channel, ...first.attempts.map((a) => a.channel)]);
    const remaining = this.seal
      ? deliveryLegs(
          first.destination,
          first.channel,
          this.options.channelFallback,
          first.channels,
          first.fallbackEmail,
        ).filter((leg) => !used.includes(leg.channel))
      : [];
    const policy = this.policies.of(first.purpose) ?? this.policies.fallback;
    const fallback =
      this.seal && remaining.length > 0
        ? {
            sealed: this.seal.seal(first.requestId, {
              code: first.code,
              ...(first.fallbackEmail ? { fallbackEmail: first.fallbackEmail } : {}),
              ...(first.locale ? { locale: first.locale } : {}),
            }),
            channelsUsed: used,
            dueAfterSeconds: policy.fallbackAfterSeconds,
          }
        : null;
    await this.log.recordDelivered(
      first.requestId,
      delivery,
      first.attempts.map((a) => toRecord(a)),
      fallback,
    );
  }

  /**
   * A send none of whose providers delivered: logs its attempts. Never fails the send further (it
   * answers 503 either way): a failure is logged.
   */
  async recordUndelivered(first: FirstDelivery): Promise<void> {
    try {
      await this.log.appendAttempts(
        first.requestId,
        first.attempts.map((a) => toRecord(a)),
        'send',
      );
    } catch (error) {
      this.logger.warn(
        `could not record the delivery of request ${first.requestId}: ${(error as Error).message}`,
      );
    }
  }

  /** A request's delivery attempts, oldest first (the status route shows them, masked). */
  attemptsOf(requestId: string): Promise<DeliveryLogEntry[]> {
    return this.log.list(requestId);
  }

  /**
   * A provider's receipt for one of its messages. An `undelivered` or `failed` one for the
   * request's latest attempt re-sends its code on the next channel at once (this instance claims
   * it; when it cannot, any instance's poll will). Resolves whether the message was known and its
   * status moved.
   */
  async applyReceipt(receipt: {
    provider: string;
    messageId: string;
    status: DeliveryReceiptStatus;
    errorCode: string | null;
  }): Promise<boolean> {
    const { updated, due } = await this.log.applyReceipt(receipt);
    if (due && this.seal) await this.runDue(due);
    return updated;
  }

  /**
   * Claims the fallbacks that are due (or the one of `requestId`) and re-sends each; resolves how
   * many it claimed. Safe on any number of instances at once.
   */
  async runDue(requestId: string | null = null): Promise<number> {
    if (!this.seal) return 0;
    const claimed = await this.log.claimDue(requestId, CLAIM_BATCH, this.leaseSeconds);
    for (const claim of claimed) {
      try {
        await this.fallBack(claim);
      } catch (error) {
        // The lease ends on its own: another poll takes the row up again.
        this.logger.warn(
          `fallback of request ${claim.requestId} failed: ${(error as Error).message}`,
        );
      }
    }
    return claimed.length;
  }

  /** Re-sends one claimed fallback on the next channels until one carries it. */
  private async fallBack(claim: ClaimedFallback): Promise<void> {
    const seal = this.seal as CodeSeal;
    const request = await this.log.findRequest(claim.requestId, claim.requestCreatedAt);
    if (!request?.active) return this.log.forget(claim.requestId);
    let sealed: SealedSend;
    try {
      sealed = seal.open(request.id, claim.sealed);
    } catch {
      this.logger.warn(`fallback of request ${request.id} cannot be opened (another key?)`);
      return this.log.forget(claim.requestId);
    }
    const policy = this.policies.of(request.purpose) ?? this.policies.fallback;
    const head = claim.channelsUsed[0] ?? request.channel;
    const used = [...claim.channelsUsed];
    const cause: DeliveryCause = claim.dueCause;
    const legs = deliveryLegs(
      request.destination,
      head,
      this.options.channelFallback,
      policy.channels,
      sealed.fallbackEmail,
    );
    for (const leg of legs) {
      if (used.includes(leg.channel)) continue;
      used.push(leg.channel);
      // Recorded before the send: a crash mid-send never sends on this channel twice.
      await this.log.markUsed(request.id, used);
      const outcome = await this.sendLeg(request, leg, sealed, cause);
      if (outcome !== 'failed') break;
    }
    await this.log.finishClaim(claim, used);
  }

  /** One re-delivery on one leg, as a send of its own within the caps. */
  private async sendLeg(
    request: FallbackRequest,
    leg: DeliveryLeg,
    sealed: SealedSend,
    cause: DeliveryCause,
  ): Promise<'delivered' | 'failed' | 'refused'> {
    let row: { id: string; createdAt: Date } | null = null;
    for (let round = 1; !row; round++) {
      const { now, version, history } = await this.requests.loadHistory(
        request.destination,
        request.purpose,
        null,
      );
      if (capFull(history.hourly, HOUR_SECONDS, now) || capFull(history.daily, DAY_SECONDS, now)) {
        this.logger.log(`fallback of request ${request.id} skipped: send cap reached`);
        return 'refused';
      }
      row = await this.log.insertRedelivery(request, version, randomUUID(), leg.channel);
      if (!row) {
        const again = await this.log.findRequest(request.id, request.createdAt);
        if (!again?.active || round >= MAX_ROUNDS) return 'refused';
      }
    }
    const attempts: DeliveryAttempt[] = [];
    const remaining = Math.ceil((request.expiresAt.getTime() - Date.now()) / 1000);
    const delivered = await this.delivery.deliver({
      requestId: request.id,
      channel: leg.channel,
      destination: leg.to ?? request.destination,
      purpose: request.purpose,
      code: sealed.code,
      expiresAt: request.expiresAt,
      locale: sealed.locale,
      channels: [leg.channel],
      ttlSeconds: Math.max(1, remaining),
      attempts,
      only: true,
    });
    await this.log.markRedelivery(row, {
      status: delivered ? 'sent' : 'failed',
      provider: delivered?.provider ?? null,
      deliveredTo: leg.to,
    });
    await this.log.appendAttempts(
      request.id,
      attempts.map((a) => toRecord({ ...a, deliveredTo: leg.to })),
      cause,
    );
    return delivered ? 'delivered' : 'failed';
  }
}

function toRecord(a: DeliveryAttempt): DeliveryRecord {
  return {
    channel: a.channel,
    provider: a.provider,
    messageId: a.messageId,
    deliveredTo: a.deliveredTo,
    // A provider that names its message reports on it later; one that does not, never will.
    status: !a.ok ? 'failed' : a.messageId ? 'queued' : 'sent',
  };
}

function uniqueChannels(channels: readonly OtpChannel[]): OtpChannel[] {
  return [...new Set(channels)];
}

/** A cap's window is full while its cap-th newest send is inside it. */
function capFull(marks: CapMarks, windowSeconds: number, now: Date): boolean {
  return marks.atCap !== null && marks.atCap.getTime() + windowSeconds * 1000 > now.getTime();
}
