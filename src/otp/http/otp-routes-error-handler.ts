import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { OTP_OPTIONS, OTP_ROUTE_PREFIX } from '../otp.constants.js';
import type { OtpModuleOptions } from '../otp.options.js';
import { sendOtpError } from '../errors/send-otp-error.js';
import { toOtpError } from '../errors/to-otp-error.js';
import { RequestNotFoundError } from '../errors/otp.errors.js';
import { otpRoutePattern } from './otp-route-pattern.js';

type ExpressErrorHandler = (
  error: unknown,
  req: unknown,
  res: unknown,
  next: (e?: unknown) => void,
) => void;

/**
 * A host's body parser runs before any route, so its errors on the OTP routes (malformed JSON, a
 * body over the host's own limit) never reach the controller's filter; Express hands them to its
 * error handlers instead. This adds one, after the routes and before Nest's own, that answers such
 * errors in the contract's shape on the OTP routes only and passes every other request on, so the
 * host's errors stay the host's.
 */
@Injectable()
export class OtpRoutesErrorHandler implements OnModuleInit {
  constructor(
    private readonly adapterHost: HttpAdapterHost,
    @Inject(OTP_OPTIONS) private readonly options: OtpModuleOptions,
    @Inject(OTP_ROUTE_PREFIX) private readonly routePrefix: string | null,
  ) {}

  onModuleInit(): void {
    const adapter = this.adapterHost?.httpAdapter;
    if (!adapter || this.routePrefix === null || adapter.getType() !== 'express') return;
    // Case-insensitive, as Express matches routes.
    const otpRoute = otpRoutePattern(this.routePrefix, 'i');
    const handler: ExpressErrorHandler = (error, req, res, next) => {
      const path = (req as { path?: string }).path ?? '';
      if (!otpRoute.test(path)) return next(error);
      sendOtpError(
        res as Parameters<typeof sendOtpError>[0],
        undecodableParam(error)
          ? new RequestNotFoundError()
          : toOtpError(error, res as never, this.options.throttleTtlSeconds),
      );
    };
    adapter.getInstance<{ use(handler: ExpressErrorHandler): void }>().use(handler);
  }
}

/**
 * Express's router could not percent-decode a path parameter (a URIError it gave status 400):
 * on the OTP routes the only one is the request id, and an id that is not even text is a
 * malformed id, which the contract answers 404 `OTP_REQUEST_NOT_FOUND`, not a body's 400.
 */
function undecodableParam(error: unknown): boolean {
  return error instanceof URIError && (error as { status?: unknown }).status === 400;
}
