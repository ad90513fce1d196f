import { type ExecutionContext, Injectable } from '@nestjs/common';
import { ThrottlerGuard, type ThrottlerLimitDetail } from '@nestjs/throttler';
import { RateLimitedError } from '../errors/otp.errors.js';

/**
 * Per-IP throttling of the OTP routes (@nestjs/throttler), answering the contract's 429
 * `RATE_LIMITED`. Behind a proxy, set Express's `trust proxy` so `req.ip` is the client's; or
 * subclass and override `getTracker`.
 */
@Injectable()
export class OtpThrottlerGuard extends ThrottlerGuard {
  protected override throwThrottlingException(
    _context: ExecutionContext,
    detail: ThrottlerLimitDetail,
  ): Promise<void> {
    throw new RateLimitedError(detail.timeToBlockExpire);
  }
}
