import { type ExecutionContext, Injectable } from '@nestjs/common';
import { ThrottlerGuard, type ThrottlerLimitDetail } from '@nestjs/throttler';
import { RateLimitedError } from '../errors/otp.errors.js';

/**
 * Per-IP throttling of the OTP routes (@nestjs/throttler): `throttleLimit` requests per window over
 * send, verify and status together, answering the contract's 429
 * `RATE_LIMITED`. Behind a proxy, set Express's `trust proxy` so `req.ip` is the client's; or
 * subclass and override `getTracker`.
 */
@Injectable()
export class OtpThrottlerGuard extends ThrottlerGuard {
  /** One budget per client over all the OTP routes together, not one per route. */
  protected override generateKey(
    _context: ExecutionContext,
    tracker: string,
    name: string,
  ): string {
    return `nest-otp:${name}:${tracker}`;
  }

  protected override throwThrottlingException(
    _context: ExecutionContext,
    detail: ThrottlerLimitDetail,
  ): Promise<void> {
    throw new RateLimitedError(detail.timeToBlockExpire);
  }
}
