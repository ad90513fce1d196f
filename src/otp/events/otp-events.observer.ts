import {
  OTP_EVENTS,
  type OtpEventName,
  type OtpEventPayload,
  type OtpEventPayloads,
} from './otp-events.js';
import type {
  OtpDeliveryObservation,
  OtpObserver,
  OtpSendObservation,
  OtpSubject,
  OtpVerifyObservation,
} from './otp-observer.js';

/** The one method used of `EventEmitter2`, typed structurally so nothing loads the package. */
export interface OtpEventEmitter {
  emit(event: string, ...values: unknown[]): unknown;
}

/** Turns the flows' observations into the public `OTP_EVENTS` on the host's event bus. */
export class OtpEventsObserver implements OtpObserver {
  readonly needsVerifyChannel = true;

  constructor(private readonly emitter: OtpEventEmitter) {}

  sendFinished({ outcome, subject, retryAfterSeconds = 1, at }: OtpSendObservation): void {
    if (!subject) return;
    if (outcome === 'sent' && subject.requestId) {
      this.emit(OTP_EVENTS.sent, payload(subject.requestId, subject, at));
    } else if (outcome === 'locked') {
      this.emit(OTP_EVENTS.locked, { ...payload(null, subject, at), retryAfterSeconds });
    }
  }

  verifyFinished(observation: OtpVerifyObservation): void {
    const { outcome, subject, at } = observation;
    if (!subject?.requestId) return;
    const base = payload(subject.requestId, subject, at);
    if (outcome === 'verified') {
      this.emit(OTP_EVENTS.verified, base);
    } else if (outcome === 'invalid') {
      this.emit(OTP_EVENTS.failed, {
        ...base,
        attemptsRemaining: observation.attemptsRemaining ?? 0,
      });
    } else if (outcome === 'exhausted') {
      this.emit(OTP_EVENTS.exhausted, {
        ...base,
        retryAfterSeconds: observation.retryAfterSeconds ?? 1,
      });
    }
  }

  deliveryAttempted(attempt: OtpDeliveryObservation): void {
    if (attempt.ok) return;
    this.emit(OTP_EVENTS.deliveryFailed, {
      requestId: attempt.requestId,
      purpose: attempt.purpose,
      channel: attempt.channel,
      destination: attempt.destination,
      provider: attempt.provider,
      at: attempt.at,
    });
  }

  private emit<E extends OtpEventName>(event: E, body: OtpEventPayloads[E]): void {
    this.emitter.emit(event, body);
  }
}

/** The fields every payload shares, listed one by one so nothing else slips in. */
function payload<Id extends string | null>(
  requestId: Id,
  subject: OtpSubject,
  at: Date,
): Omit<OtpEventPayload, 'requestId'> & { requestId: Id } {
  return {
    requestId,
    purpose: subject.purpose,
    channel: subject.channel,
    destination: subject.destination,
    at,
  };
}
