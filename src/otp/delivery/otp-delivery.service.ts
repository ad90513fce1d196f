import { Inject, Injectable, Logger } from '@nestjs/common';
import { channelFits, maskDestination } from '../destination/destination.js';
import { OtpObservers } from '../events/otp-observers.js';
import { OTP_OPTIONS, OTP_PROVIDERS } from '../otp.constants.js';
import type { OtpModuleOptions } from '../otp.options.js';
import type { OtpChannel } from '../otp.types.js';
import { composeOtpMessage } from './otp-message.js';
import type { OtpMessage, OtpProvider } from './otp-provider.interface.js';

export interface DeliveryRequest {
  requestId: string;
  channel: OtpChannel;
  destination: string;
  purpose: string;
  code: string;
  expiresAt: Date;
  /** The locale of the texts; English when none or unknown. */
  locale?: string;
  /**
   * The account's other contact (server-side only): when every phone channel fails, the same code
   * goes by email to this address.
   */
  fallbackEmail?: string;
  /** Channels the purpose allows (within the module's); default: the module's `channels`. */
  channels?: readonly OtpChannel[];
  /** The code's lifetime, for the texts; default: the module's `ttlSeconds`. */
  ttlSeconds?: number;
  /** Filled with every attempt, in order (delivery receipts record them). */
  attempts?: DeliveryAttempt[];
  /** Try this channel only: no fallback channel, no fallback email (a re-delivery). */
  only?: boolean;
}

/** One provider's attempt at one channel. */
export interface DeliveryAttempt {
  channel: OtpChannel;
  provider: string;
  /** The fallback email it went to, or null for the destination. */
  deliveredTo: string | null;
  ok: boolean;
  /** The provider's message id, when it reported one. */
  messageId: string | null;
}

/** Who carried a code, over which channel, and where (when not to the destination). */
export interface Delivery {
  channel: OtpChannel;
  provider: string;
  /** The fallback email the code went to, or null when it went to the destination. */
  deliveredTo: string | null;
  /** The provider's message id, when it reported one. */
  messageId?: string | null;
}

/**
 * Carries a code: tries each provider that supports the channel, then the channel's fallbacks, then
 * (for a phone, when the host gave one) the account's fallback email, each attempt bounded by the
 * delivery timeout. Resolves with who carried it, or null when every attempt failed.
 */
@Injectable()
export class OtpDeliveryService {
  private readonly logger = new Logger('OtpDelivery');

  constructor(
    @Inject(OTP_OPTIONS) private readonly options: OtpModuleOptions,
    @Inject(OTP_PROVIDERS) private readonly providers: OtpProvider[],
    private readonly observers: OtpObservers,
  ) {}

  async deliver(request: DeliveryRequest): Promise<Delivery | null> {
    const legs = request.only
      ? deliveryLegs(
          request.destination,
          request.channel,
          {},
          request.channels ?? this.options.channels,
        )
      : deliveryLegs(
          request.destination,
          request.channel,
          this.options.channelFallback,
          request.channels ?? this.options.channels,
          request.fallbackEmail,
        );
    for (const { channel, to } of legs) {
      for (const provider of this.providers.filter((p) => p.supports(channel))) {
        const message: OtpMessage = {
          requestId: request.requestId,
          purpose: request.purpose,
          code: request.code,
          expiresAt: request.expiresAt,
          locale: request.locale,
          destination: to ?? request.destination,
          channel,
          appName: this.options.appName,
          ...composeOtpMessage({
            appName: this.options.appName,
            code: request.code,
            channel,
            ttlSeconds: request.ttlSeconds ?? this.options.ttlSeconds,
            purpose: request.purpose,
            locale: request.locale,
            messages: this.options.messages,
            webOtpDomain: this.options.webOtpDomain,
          }),
        };
        const { ok, messageId } = await this.attempt(provider, message);
        request.attempts?.push({
          channel,
          provider: provider.name,
          deliveredTo: to,
          ok,
          messageId,
        });
        if (ok) return { channel, provider: provider.name, deliveredTo: to, messageId };
      }
    }
    return null;
  }

  private async attempt(
    provider: OtpProvider,
    message: OtpMessage,
  ): Promise<{ ok: boolean; messageId: string | null }> {
    const started = performance.now();
    const outcome = await this.boundedAttempt(provider, message);
    const ok = outcome !== false;
    if (this.observers.active) {
      this.observers.deliveryAttempted({
        requestId: message.requestId,
        purpose: message.purpose,
        channel: message.channel,
        destination: maskDestination(message.destination),
        provider: provider.name,
        ok,
        durationMs: performance.now() - started,
        at: new Date(),
      });
    }
    return { ok, messageId: outcome === false ? null : outcome };
  }

  /** The provider's message id (or null) when it accepted the message, false when it failed. */
  private async boundedAttempt(
    provider: OtpProvider,
    message: OtpMessage,
  ): Promise<string | null | false> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject(new Error(`no answer within ${this.options.deliveryTimeoutMs} ms`));
      }, this.options.deliveryTimeoutMs);
    });
    try {
      // The race bounds the wait even for a provider that ignores its abort signal.
      const accepted = await Promise.race([provider.deliver(message, controller.signal), timeout]);
      const id = accepted?.messageId;
      return typeof id === 'string' && id.length > 0 && id.length <= 128 ? id : null;
    } catch (error) {
      // A provider's error text is not ours: strip the code from it before it reaches a log.
      const reason = (error instanceof Error ? error.message : 'unknown error')
        .split(message.code)
        .join('[code]');
      this.logger.warn(
        `delivery of request ${message.requestId} by ${provider.name} over ${message.channel} failed: ${reason}`,
      );
      return false;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** One step of a delivery chain: a channel, and the fallback email it goes to (null: the destination). */
export interface DeliveryLeg {
  channel: OtpChannel;
  to: string | null;
}

/**
 * A send's chain: the channel, its fallbacks (`chains`) within `allowed`, and, after every phone
 * channel, the account's fallback email when the host gave one. A chain may mix kinds (push → sms):
 * a leg that cannot reach this destination is skipped.
 */
export function deliveryLegs(
  destination: string,
  channel: OtpChannel,
  chains: Partial<Record<OtpChannel, readonly OtpChannel[]>>,
  allowed: readonly OtpChannel[],
  fallbackEmail?: string,
): DeliveryLeg[] {
  const kind = destination.includes('@') ? 'email' : 'phone';
  const legs: DeliveryLeg[] = [channel, ...(chains[channel] ?? [])]
    .filter((c) => allowed.includes(c) && channelFits(kind, c))
    .map((c) => ({ channel: c, to: null }));
  if (fallbackEmail && channel !== 'email' && allowed.includes('email')) {
    legs.push({ channel: 'email', to: fallbackEmail });
  }
  return legs;
}
