import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { IncomingHttpHeaders } from 'node:http';
import { PayloadTooLargeError, ValidationFailedError } from '../../errors/otp.errors.js';
import { sendOtpError } from '../../errors/send-otp-error.js';
import { toOtpError } from '../../errors/to-otp-error.js';
import { OTP_OPTIONS, OTP_ROUTE_PREFIX } from '../../otp.constants.js';
import type { OtpModuleOptions } from '../../otp.options.js';
import { ORIGINAL_TYPE_HEADER } from './delivery-receipt-body.js';

type Done = (error?: unknown) => void;
type OnRequestHook = (
  request: { headers: IncomingHttpHeaders; raw?: { headers: IncomingHttpHeaders } },
  reply: unknown,
  done: Done,
) => void;
type RouteErrorHandler = (error: unknown, request: unknown, reply: unknown) => void;
interface FastifyRouteOptions {
  url: string;
  bodyLimit?: number;
  onRequest?: OnRequestHook | OnRequestHook[];
  errorHandler?: RouteErrorHandler;
}
interface FastifyInstanceLike {
  initialConfig?: { bodyLimit?: number };
  addHook(name: 'onRoute', hook: (route: FastifyRouteOptions) => void): unknown;
}
type ExpressErrorHandler = (
  error: unknown,
  req: unknown,
  res: unknown,
  next: (e?: unknown) => void,
) => void;

const FORM_TYPE = /^application\/x-www-form-urlencoded\s*(?:;|$)/i;
const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/** The receipt routes' paths under `routePrefix`, after any global prefix or version. */
export function receiptRoutePattern(routePrefix: string, flags = ''): RegExp {
  const escaped = routePrefix.replace(/^\/+|\/+$/g, '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`/${escaped}/delivery-status/(twilio|webhook)/?$`, flags);
}

/**
 * The receipt routes' body rules, on the platform's own terms and nowhere else:
 * - Fastify: each route gets `bodyLimit` (`bodyLimitBytes`), an `onRequest` hook that refuses a
 *   body of the wrong type before it is read (form for Twilio, JSON for the webhook) and then has
 *   Fastify read it as text (the signature covers the bytes as sent; Fastify has no form parser,
 *   and none is added to the host's instance), and an error handler in the contract's shape.
 * - Express: the host's parsers (Nest's JSON and form parsers by default) run first; their errors
 *   on these routes are answered in the contract's shape by an error handler for these paths only.
 */
@Injectable()
export class DeliveryStatusRoutes implements OnModuleInit {
  constructor(
    private readonly adapterHost: HttpAdapterHost,
    @Inject(OTP_OPTIONS) private readonly options: OtpModuleOptions,
    @Inject(OTP_ROUTE_PREFIX) private readonly routePrefix: string | null,
  ) {}

  /** Installs the Fastify route options (from the module's `configure()`). */
  install(): void {
    const adapter = this.adapterHost?.httpAdapter;
    if (!adapter || adapter.getType() !== 'fastify' || this.routePrefix === null) return;
    const instance = adapter.getInstance<FastifyInstanceLike>();
    const pattern = receiptRoutePattern(this.routePrefix);
    const limit = Math.min(
      this.options.bodyLimitBytes,
      instance.initialConfig?.bodyLimit ?? Infinity,
    );
    instance.addHook('onRoute', (route) => {
      const match = pattern.exec(route.url);
      if (!match) return;
      const kind = match[1] === 'twilio' ? 'form' : 'json';
      route.bodyLimit = Math.min(limit, route.bodyLimit ?? limit);
      route.onRequest = [...[route.onRequest ?? []].flat(), this.asText(kind, limit)];
      route.errorHandler ??= (error, _request, reply) =>
        sendOtpError(
          reply as Parameters<typeof sendOtpError>[0],
          toOtpError(error, reply as never, this.options.throttleTtlSeconds),
        );
    });
  }

  onModuleInit(): void {
    const adapter = this.adapterHost?.httpAdapter;
    if (!adapter || this.routePrefix === null || adapter.getType() !== 'express') return;
    const pattern = receiptRoutePattern(this.routePrefix, 'i');
    const handler: ExpressErrorHandler = (error, req, res, next) => {
      if (!pattern.test((req as { path?: string }).path ?? '')) return next(error);
      sendOtpError(
        res as Parameters<typeof sendOtpError>[0],
        toOtpError(error, res as never, this.options.throttleTtlSeconds),
      );
    };
    adapter.getInstance<{ use(handler: ExpressErrorHandler): void }>().use(handler);
  }

  private asText(kind: 'form' | 'json', limit: number): OnRequestHook {
    return (request, _reply, done) => {
      const headers = request.raw?.headers ?? request.headers;
      const type = headers['content-type'] ?? '';
      if (Number(headers['content-length'] ?? 0) > limit) return done(new PayloadTooLargeError());
      const encoding = (headers['content-encoding'] ?? 'identity').toLowerCase();
      if (!(kind === 'form' ? FORM_TYPE : JSON_TYPE).test(type) || encoding !== 'identity') {
        return done(
          new ValidationFailedError([
            kind === 'form'
              ? 'request body must be uncompressed application/x-www-form-urlencoded'
              : 'request body must be uncompressed JSON (Content-Type: application/json)',
          ]),
        );
      }
      headers[ORIGINAL_TYPE_HEADER] = type;
      headers['content-type'] = 'text/plain; charset=utf-8';
      done();
    };
  }
}
