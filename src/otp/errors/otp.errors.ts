import { HttpException, HttpStatus } from '@nestjs/common';

/**
 * Every error the module answers with, one class per row of the contract's error table. They are
 * kept in one file because each is a three-line mapping of that table; reading them side by side is
 * how a reviewer checks them against the contract.
 *
 * They extend `HttpException` with the contract's body as the response, so even a host route that
 * lacks `OtpExceptionFilter` (one guarded by `@RequireOtp`) answers `{ statusCode, code, message }`.
 */
export class OtpError extends HttpException {
  constructor(
    status: number,
    readonly code: string,
    message: string | string[],
    readonly extra: Record<string, unknown> = {},
  ) {
    super({ statusCode: status, code, message, ...extra }, status);
  }
}

/** An error that tells the client when to come back (every 429, and a 503 from a fault). */
export class OtpRetryableError extends OtpError {
  constructor(
    code: string,
    message: string,
    readonly retryAfter: number,
    extra: Record<string, unknown> = {},
    status: number = HttpStatus.TOO_MANY_REQUESTS,
  ) {
    const seconds = Math.max(1, Math.ceil(retryAfter));
    super(status, code, message, { ...extra, retryAfter: seconds });
    this.retryAfter = seconds;
  }
}

export class ValidationFailedError extends OtpError {
  constructor(message: string | string[]) {
    super(HttpStatus.BAD_REQUEST, 'VALIDATION_FAILED', message);
  }
}

export class DestinationNotAllowedError extends OtpError {
  constructor() {
    super(
      HttpStatus.BAD_REQUEST,
      'OTP_DESTINATION_NOT_ALLOWED',
      'Codes cannot be sent to this destination.',
    );
  }
}

export class ChannelNotAllowedError extends OtpError {
  constructor(channel: string) {
    super(
      HttpStatus.BAD_REQUEST,
      'OTP_CHANNEL_NOT_ALLOWED',
      `Codes cannot be sent by ${channel} here.`,
    );
  }
}

export class PayloadTooLargeError extends OtpError {
  constructor() {
    super(HttpStatus.PAYLOAD_TOO_LARGE, 'PAYLOAD_TOO_LARGE', 'The request body is too large.');
  }
}

export class IdempotencyKeyReusedError extends OtpError {
  constructor() {
    super(
      HttpStatus.UNPROCESSABLE_ENTITY,
      'IDEMPOTENCY_KEY_REUSED',
      'This Idempotency-Key was already used with a different request body.',
    );
  }
}

export class InvalidCodeError extends OtpError {
  /** `challengeRequired`: the next call for this destination needs a challenge. */
  constructor(attemptsRemaining: number, challengeRequired = false) {
    super(HttpStatus.UNAUTHORIZED, 'OTP_INVALID', 'The code is incorrect.', {
      attemptsRemaining,
      ...(challengeRequired ? { challengeRequired: true } : {}),
    });
  }
}

export class AttemptsExceededError extends OtpRetryableError {
  constructor(retryAfter: number) {
    super(
      'OTP_ATTEMPTS_EXCEEDED',
      'Too many incorrect attempts. Request a new code when the wait is over.',
      retryAfter,
    );
  }
}

export class CodeExpiredError extends OtpError {
  /** `resent`: auto-resend sent a fresh code; its request's fields go in the body. */
  constructor(resent?: Record<string, unknown>) {
    // One message whatever the reason, so it reveals neither use nor expiry time.
    super(
      HttpStatus.GONE,
      'OTP_EXPIRED',
      resent
        ? 'This code has expired. A new code was sent.'
        : 'This code is invalid or has expired. Request a new code.',
      resent ? { resent: true, ...resent } : {},
    );
  }
}

/** Hard lockout: sends stop until the lock's end, or until the host unlocks the destination. */
export class HardLockedError extends OtpError {
  /** Seconds until the lock ends; absent when only an unlock ends it. */
  readonly retryAfter?: number;

  constructor(retryAfter: number | null) {
    const seconds = retryAfter === null ? undefined : Math.max(1, Math.ceil(retryAfter));
    super(
      HttpStatus.LOCKED,
      'OTP_HARD_LOCKED',
      'Too many incorrect codes. Sending codes here is locked; contact support to unlock it.',
      seconds === undefined ? {} : { retryAfter: seconds },
    );
    if (seconds !== undefined) this.retryAfter = seconds;
  }
}

/** Challenge escalation: this call needs a `challenge` (a CAPTCHA token) that the host accepts. */
export class ChallengeRequiredError extends OtpError {
  constructor() {
    super(
      HttpStatus.PRECONDITION_REQUIRED,
      'OTP_CHALLENGE_REQUIRED',
      'Complete the challenge and try again.',
      { challengeRequired: true },
    );
  }
}

export class RequestNotFoundError extends OtpError {
  constructor() {
    super(HttpStatus.NOT_FOUND, 'OTP_REQUEST_NOT_FOUND', 'No such OTP request.');
  }
}

export class TokenInvalidError extends OtpError {
  constructor() {
    super(
      HttpStatus.UNAUTHORIZED,
      'OTP_TOKEN_INVALID',
      'A valid X-OTP-Token from a successful verification is required.',
    );
  }
}

/** The send-policy limits, by the code each answers with. */
export type SendLimitCode = 'OTP_RESEND_COOLDOWN' | 'OTP_LOCKED' | 'OTP_SEND_LIMIT';

const SEND_LIMIT_MESSAGES: Record<SendLimitCode, string> = {
  OTP_RESEND_COOLDOWN: 'A code was sent recently. Wait before requesting another.',
  OTP_LOCKED: 'Too many incorrect codes. Wait before requesting another.',
  OTP_SEND_LIMIT: 'Too many codes were requested for this destination. Try again later.',
};

export class SendLimitedError extends OtpRetryableError {
  constructor(code: SendLimitCode, retryAfter: number) {
    super(code, SEND_LIMIT_MESSAGES[code], retryAfter);
  }
}

export class RateLimitedError extends OtpRetryableError {
  constructor(retryAfter: number) {
    super('RATE_LIMITED', 'Too many requests. Slow down.', retryAfter);
  }
}

export class DeliveryFailedError extends OtpError {
  constructor() {
    super(
      HttpStatus.SERVICE_UNAVAILABLE,
      'OTP_DELIVERY_FAILED',
      'The code could not be delivered. Try again later.',
    );
  }
}

/** Seconds a client is asked to wait after a 503: the bounds that caused it are a few seconds. */
export const SERVICE_UNAVAILABLE_RETRY_AFTER_SECONDS = 5;

export class ServiceUnavailableError extends OtpRetryableError {
  constructor(options?: { cause?: unknown; retryAfter?: number }) {
    super(
      'SERVICE_UNAVAILABLE',
      'The service is temporarily unavailable. Try again shortly.',
      options?.retryAfter ?? SERVICE_UNAVAILABLE_RETRY_AFTER_SECONDS,
      {},
      HttpStatus.SERVICE_UNAVAILABLE,
    );
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}
