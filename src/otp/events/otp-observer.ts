import type { OtpChannel } from '../otp.types.js';

/**
 * Internal: what the flows report as they finish, so events and metrics hang off one hook instead
 * of the service knowing either. Observers must not throw (`OtpObservers` guards each call anyway)
 * and never see a code, a token or an unmasked destination.
 */
export interface OtpObserver {
  /**
   * Set when the observer reads `subject.channel` of verify observations: the channel a code went
   * out on is not part of the attempt, so the service looks it up (one query) only when asked.
   */
  readonly needsVerifyChannel?: boolean;
  sendFinished?(observation: OtpSendObservation): void;
  verifyFinished?(observation: OtpVerifyObservation): void;
  deliveryAttempted?(observation: OtpDeliveryObservation): void;
}

/**
 * Registers an observer with every `OtpModule` of the app: provide an `OtpObserver` under this
 * token in any module (`nest-otp/metrics` does).
 */
export const OTP_OBSERVER = Symbol('OTP_OBSERVER');

/** How a send ended. */
export type OtpSendOutcome =
  /** A new code went out. */
  | 'sent'
  /** A repeated idempotency key: the first answer, nothing sent. */
  | 'replayed'
  /** Refused by a cooldown or a send cap (429). */
  | 'limited'
  /** Refused by the lockout that follows exhausted codes (429 `OTP_LOCKED`). */
  | 'locked'
  /** No provider carried it (503). */
  | 'delivery_failed'
  /** Invalid input, a channel or country not allowed, a reused idempotency key (4xx). */
  | 'rejected'
  /** The database could not serve it (503). */
  | 'unavailable'
  /** Anything else (500). */
  | 'error';

/** How a verify ended. */
export type OtpVerifyOutcome =
  | 'verified'
  /** A wrong guess, attempts left (401). */
  | 'invalid'
  /** A wrong guess that used the code's last attempt (429). */
  | 'exhausted'
  /** The code had no attempt left before this guess (429). */
  | 'attempts_exceeded'
  /** No active code: expired, superseded, verified or never sent (410). */
  | 'expired'
  | 'rejected'
  | 'unavailable'
  | 'error';

/** Which request a flow was about, as far as it got; the destination is masked. */
export interface OtpSubject {
  /** Null for a send refused before a request was written. */
  requestId: string | null;
  purpose: string;
  channel: OtpChannel;
  /** Masked, e.g. `a•••@example.com`. */
  destination: string;
}

export interface OtpSendObservation {
  outcome: OtpSendOutcome;
  /** Null when the input was refused before a destination and channel were known. */
  subject: OtpSubject | null;
  /** Whole-flow time, hashing, queries and delivery included. */
  durationMs: number;
  /** Seconds the client must wait, for `limited` and `locked`. */
  retryAfterSeconds?: number;
  at: Date;
}

export interface OtpVerifyObservation {
  outcome: OtpVerifyOutcome;
  /**
   * Set once an attempt was reserved (`verified`, `invalid`, `exhausted`); `channel` is only
   * looked up when an observer sets `needsVerifyChannel`, and is the destination's default
   * channel otherwise.
   */
  subject: OtpSubject | null;
  /** For `invalid`. */
  attemptsRemaining?: number;
  /** For `exhausted` and `attempts_exceeded`: seconds until the next send is allowed. */
  retryAfterSeconds?: number;
  durationMs: number;
  at: Date;
}

/** One provider's attempt at carrying a code. */
export interface OtpDeliveryObservation {
  requestId: string;
  purpose: string;
  /** The channel of this attempt (a fallback leg may differ from the request's). */
  channel: OtpChannel;
  /** Masked; the fallback email for that leg. */
  destination: string;
  provider: string;
  ok: boolean;
  durationMs: number;
  at: Date;
}
