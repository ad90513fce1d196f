import { Inject, Injectable } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { IncomingHttpHeaders } from 'node:http';
import { sendOtpError } from '../errors/send-otp-error.js';
import { toOtpError } from '../errors/to-otp-error.js';
import { OTP_OPTIONS, OTP_ROUTE_PREFIX } from '../otp.constants.js';
import type { OtpModuleOptions } from '../otp.options.js';
import { checkBodyEncoding, checkBodyHeaders, declaredLength } from './otp-body-rules.js';
import { otpRoutePattern } from './otp-route-pattern.js';

// Fastify's shapes as far as they matter here, so the package does not depend on its types.
type Done = (error?: unknown) => void;
type OnRequestHook = (
  request: { headers: IncomingHttpHeaders },
  reply: unknown,
  done: Done,
) => void;
type RouteErrorHandler = (error: unknown, request: unknown, reply: unknown) => void;

interface FastifyRouteOptions {
  method: string | string[];
  url: string;
  bodyLimit?: number;
  onRequest?: OnRequestHook | OnRequestHook[];
  errorHandler?: RouteErrorHandler;
}

interface FastifyInstanceLike {
  initialConfig?: { bodyLimit?: number };
  addHook(name: 'onRoute', hook: (route: FastifyRouteOptions) => void): unknown;
}

/**
 * The OTP routes' body rules on `@nestjs/platform-fastify`, where Nest middleware runs on the raw
 * request before Fastify reads the body, and where Fastify's own parser errors (a body over the
 * limit, malformed JSON, a type it has no parser for) go to the instance's error handler, that is
 * to the host's global filters, never to the controller's. So each OTP route gets, as Fastify
 * route options, and nothing else of the host's instance changes:
 * - `bodyLimit`: `bodyLimitBytes` (or the host's own, when lower), enforced by Fastify as it reads;
 * - an `onRequest` hook refusing what the headers show (over the limit, not JSON, compressed or
 *   not UTF-8) before the body is read, the guards run or the throttle budget is spent;
 * - an `errorHandler` that answers those errors in the contract's shape.
 * The routes are recognised by path (`/<routePrefix>/send`, `verify`, `requests/:requestId`,
 * after any global prefix or version), as the Express error handler recognises them.
 */
@Injectable()
export class OtpFastifyRoutes {
  constructor(
    private readonly adapterHost: HttpAdapterHost,
    @Inject(OTP_OPTIONS) private readonly options: OtpModuleOptions,
    @Inject(OTP_ROUTE_PREFIX) private readonly routePrefix: string | null,
  ) {}

  /**
   * Installs the route options on a Fastify app (to be called before its routes are registered,
   * i.e. from the module's `configure()`); false on any other platform.
   */
  install(): boolean {
    const adapter = this.adapterHost?.httpAdapter;
    if (!adapter || adapter.getType() !== 'fastify') return false;
    if (this.routePrefix === null) return true;
    const instance = adapter.getInstance<FastifyInstanceLike>();
    const otpRoute = otpRoutePattern(this.routePrefix);
    const hostLimit = instance.initialConfig?.bodyLimit ?? Infinity;
    const limit = Math.min(this.options.bodyLimitBytes, hostLimit);
    instance.addHook('onRoute', (route) => {
      if (!otpRoute.test(route.url)) return;
      route.bodyLimit = Math.min(limit, route.bodyLimit ?? limit);
      route.onRequest = [...[route.onRequest ?? []].flat(), this.checkHeaders(limit)];
      route.errorHandler ??= (error, _request, reply) =>
        sendOtpError(
          reply as Parameters<typeof sendOtpError>[0],
          toOtpError(error, reply as never, this.options.throttleTtlSeconds),
        );
    });
    return true;
  }

  private checkHeaders(limit: number): OnRequestHook {
    return (request, _reply, done) => {
      const { headers } = request;
      const hasBody = declaredLength(headers) > 0 || headers['transfer-encoding'] !== undefined;
      done(
        checkBodyHeaders(headers, limit) ??
          (hasBody ? checkBodyEncoding(headers) : null) ??
          undefined,
      );
    };
  }
}
