import { type ExecutionContext, HttpException, Inject, Injectable, Logger } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import {
  ThrottlerGuard,
  type ThrottlerLimitDetail,
  type ThrottlerModuleOptions,
  type ThrottlerStorage,
} from '@nestjs/throttler';
import { RateLimitedError, ServiceUnavailableError } from '../errors/otp.errors.js';
import { OTP_OPTIONS, OTP_THROTTLER_OPTIONS, OTP_THROTTLER_STORAGE } from '../otp.constants.js';
import type { OtpModuleOptions } from '../otp.options.js';

/** At most one warning a minute about a failing storage, whatever the request rate. */
const FAILURE_LOG_INTERVAL_MS = 60_000;

interface StorageHealth {
  /** When the last warning was logged (ms since the epoch). */
  lastLoggedAt: number;
  /** Failures since then, counted into the next warning. */
  unlogged: number;
  /** A warning was logged and no request has succeeded since. */
  warned: boolean;
}

// Keyed by the storage, not the guard: the module's routes and every host route under
// `@UseGuards(OtpThrottlerGuard)` each get a guard instance, and one outage must not warn once per
// instance.
const health = new WeakMap<ThrottlerStorage, StorageHealth>();

/**
 * Per-IP throttling of the OTP routes (@nestjs/throttler): `throttleLimit` requests per window over
 * send, verify and status together, answering the contract's 429 `RATE_LIMITED`. It takes its
 * options and storage from the module's own tokens, never from a `ThrottlerModule` the host
 * configures, so the two limits never mix. Usable on a host's own routes too:
 * `@UseGuards(OtpThrottlerGuard)` (they then share the OTP routes' budget). Behind a proxy, set
 * Express's `trust proxy` so `req.ip` is the client's; or subclass and override `getTracker`.
 *
 * When the storage fails (Redis gone), `throttleStoreFailure` decides: `'closed'` answers 503
 * `SERVICE_UNAVAILABLE` with `Retry-After`, `'open'` lets the request on; either way a warning is
 * logged at most once a minute, and the next request that the storage answers is throttled again.
 * How fast a failure shows is the storage's bound (`RedisThrottlerStorage`'s `timeoutMs`).
 */
@Injectable()
export class OtpThrottlerGuard extends ThrottlerGuard {
  private readonly storeLogger = new Logger(OtpThrottlerGuard.name);

  constructor(
    @Inject(OTP_THROTTLER_OPTIONS) options: ThrottlerModuleOptions,
    @Inject(OTP_THROTTLER_STORAGE) storage: ThrottlerStorage,
    reflector: Reflector,
    @Inject(OTP_OPTIONS) protected readonly otpOptions: OtpModuleOptions,
  ) {
    super(options, storage, reflector);
  }

  override async canActivate(context: ExecutionContext): Promise<boolean> {
    let allowed: boolean;
    try {
      allowed = await super.canActivate(context);
    } catch (error) {
      if (!(error instanceof HttpException)) return this.onStorageFailure(context, error);
      this.onStorageAnswered();
      throw error;
    }
    this.onStorageAnswered();
    return allowed;
  }

  /**
   * The storage failed or timed out: `'open'` lets the request on (the Postgres limits still
   * hold), `'closed'` refuses it rather than let every request through unlimited.
   */
  protected onStorageFailure(_context: ExecutionContext, error: unknown): boolean {
    const open = this.otpOptions.throttleStoreFailure === 'open';
    const state = this.health();
    state.unlogged += 1;
    const now = Date.now();
    if (now - state.lastLoggedAt >= FAILURE_LOG_INTERVAL_MS) {
      const reason = error instanceof Error ? error.message : String(error);
      const more = state.unlogged > 1 ? ` (and ${state.unlogged - 1} failures since the last)` : '';
      const effect = open
        ? 'requests go on without the per-IP limit; the Postgres limits still hold'
        : 'requests are refused with 503';
      this.storeLogger.warn(
        `throttle storage failed: ${reason}${more}. throttleStoreFailure '${open ? 'open' : 'closed'}': ` +
          `${effect}. At most one such warning a minute.`,
      );
      state.lastLoggedAt = now;
      state.unlogged = 0;
      state.warned = true;
    }
    if (open) return true;
    // A 503 with Retry-After: a store back a few seconds later lets the client straight through.
    throw new ServiceUnavailableError({ cause: error });
  }

  private onStorageAnswered(): void {
    const state = health.get(this.storageService);
    // Only an outage that was warned about is announced over, so a flapping store logs at most a
    // warning and a recovery a minute.
    if (!state?.warned) return;
    state.warned = false;
    this.storeLogger.log('throttle storage answers again: per-IP throttling is back');
  }

  private health(): StorageHealth {
    let state = health.get(this.storageService);
    if (!state) {
      state = { lastLoggedAt: 0, unlogged: 0, warned: false };
      health.set(this.storageService, state);
    }
    return state;
  }

  /** One budget per client over all the OTP routes together, not one per route. */
  protected override generateKey(
    _context: ExecutionContext,
    tracker: string,
    name: string,
  ): string {
    return `nest-otp:${name}:${tracker}`;
  }

  /**
   * The 429 carries Retry-After whoever answers it: the module's filter sets it too, but a host
   * route under `@UseGuards(OtpThrottlerGuard)` may be answered by the host's own filter.
   */
  protected override throwThrottlingException(
    context: ExecutionContext,
    detail: ThrottlerLimitDetail,
  ): Promise<void> {
    const error = new RateLimitedError(detail.timeToBlockExpire);
    const { res } = this.getRequestResponse(context);
    this.setResponseHeader(res, 'Retry-After', String(error.retryAfter));
    throw error;
  }
}
