import { type ExecutionContext, HttpException, Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import {
  ThrottlerGuard,
  type ThrottlerLimitDetail,
  type ThrottlerModuleOptions,
  type ThrottlerStorage,
} from '@nestjs/throttler';
import { RateLimitedError, ServiceUnavailableError } from '../errors/otp.errors.js';
import { OTP_THROTTLER_OPTIONS, OTP_THROTTLER_STORAGE } from '../otp.constants.js';

/**
 * Per-IP throttling of the OTP routes (@nestjs/throttler): `throttleLimit` requests per window over
 * send, verify and status together, answering the contract's 429 `RATE_LIMITED`. It takes its
 * options and storage from the module's own tokens, never from a `ThrottlerModule` the host
 * configures, so the two limits never mix. Usable on a host's own routes too:
 * `@UseGuards(OtpThrottlerGuard)` (they then share the OTP routes' budget). Behind a proxy, set
 * Express's `trust proxy` so `req.ip` is the client's; or subclass and override `getTracker`.
 */
@Injectable()
export class OtpThrottlerGuard extends ThrottlerGuard {
  constructor(
    @Inject(OTP_THROTTLER_OPTIONS) options: ThrottlerModuleOptions,
    @Inject(OTP_THROTTLER_STORAGE) storage: ThrottlerStorage,
    reflector: Reflector,
  ) {
    super(options, storage, reflector);
  }

  override async canActivate(context: ExecutionContext): Promise<boolean> {
    try {
      return await super.canActivate(context);
    } catch (error) {
      if (error instanceof HttpException) throw error;
      // The storage (e.g. Redis) failed: refuse rather than let every request through unlimited.
      this.logger.warn(`throttler storage failed: ${(error as Error)?.message ?? String(error)}`);
      throw new ServiceUnavailableError({ cause: error });
    }
  }

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
