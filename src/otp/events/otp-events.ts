import type { OtpChannel } from '../otp.types.js';

/**
 * The events the module emits on the host's `@nestjs/event-emitter` bus, when the host has one
 * (`EventEmitterModule.forRoot()`); without it nothing is emitted. Listen with
 * `@OnEvent(OTP_EVENTS.verified)`. No payload carries a code, a token or an unmasked destination.
 */
export const OTP_EVENTS = {
  /** A new code went out (`OtpEventPayload`). */
  sent: 'otp.sent',
  /** A code was verified (`OtpEventPayload`). */
  verified: 'otp.verified',
  /** A wrong guess, attempts left (`OtpFailedEventPayload`). */
  failed: 'otp.failed',
  /** A wrong guess used the code's last attempt (`OtpExhaustedEventPayload`). */
  exhausted: 'otp.exhausted',
  /** A send refused by the lockout after exhausted codes (`OtpLockedEventPayload`). */
  locked: 'otp.locked',
  /**
   * One provider failed to carry a code (`OtpDeliveryFailedEventPayload`), once per failed attempt:
   * a fallback provider or channel may still carry it (then `otp.sent` follows); when none does,
   * the send answers 503 and no `otp.sent` is emitted.
   */
  deliveryFailed: 'otp.delivery_failed',
} as const;

export type OtpEventName = (typeof OTP_EVENTS)[keyof typeof OTP_EVENTS];

/** What every OTP event carries. */
export interface OtpEventPayload {
  requestId: string;
  purpose: string;
  /** The channel the code went out on (for `otp.delivery_failed`, the failed attempt's). */
  channel: OtpChannel;
  /** Masked, e.g. `a•••@example.com` or `+1•••••••67`. */
  destination: string;
  at: Date;
}

export interface OtpFailedEventPayload extends OtpEventPayload {
  attemptsRemaining: number;
}

export interface OtpExhaustedEventPayload extends OtpEventPayload {
  /** Seconds until the destination may be sent a new code. */
  retryAfterSeconds: number;
}

/** A refused send has no request of its own: `requestId` is null, `channel` the requested one. */
export interface OtpLockedEventPayload extends Omit<OtpEventPayload, 'requestId'> {
  requestId: null;
  retryAfterSeconds: number;
}

export interface OtpDeliveryFailedEventPayload extends OtpEventPayload {
  /** The provider's `name`. */
  provider: string;
}

/** The payload of each event, by name: `OtpEventPayloads['otp.failed']`. */
export interface OtpEventPayloads {
  'otp.sent': OtpEventPayload;
  'otp.verified': OtpEventPayload;
  'otp.failed': OtpFailedEventPayload;
  'otp.exhausted': OtpExhaustedEventPayload;
  'otp.locked': OtpLockedEventPayload;
  'otp.delivery_failed': OtpDeliveryFailedEventPayload;
}
