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
interface ReplyLike {
  callNotFound(): void;
}
type RouteHandler = (this: unknown, request: { params: unknown }, reply: ReplyLike) => unknown;

interface FastifyRouteOptions {
  method: string | string[];
  url: string;
  bodyLimit?: number;
  onRequest?: OnRequestHook | OnRequestHook[];
  errorHandler?: RouteErrorHandler;
  handler?: RouteHandler;
}

interface FastifyInstanceLike {
  initialConfig?: { bodyLimit?: number };
  addHook(name: 'onRoute', hook: (route: FastifyRouteOptions) => void): unknown;
  route(route: FastifyRouteOptions & { handler: RouteHandler }): unknown;
}

/** A structured-syntax `+json` media type, without its parameters. */
const JSON_SUFFIX_TYPE = /^application\/[\w.+-]+\+json(?=\s*(?:;|$))/i;

/** The id parameter of the routes under `requests/`, and what may follow it (`/cancel`). */
const REQUEST_ID_PARAM = /\/:requestId(\/[^/]*)?$/;

/**
 * The OTP routes' body rules on `@nestjs/platform-fastify`, where Nest middleware runs on the raw
 * request before Fastify reads the body, and where Fastify's own parser errors (a body over the
 * limit, malformed JSON, a type it has no parser for) go to the instance's error handler, that is
 * to the host's global filters, never to the controller's. So each OTP route gets, as Fastify
 * route options, and nothing else of the host's instance changes:
 * - `bodyLimit`: `bodyLimitBytes` (or the host's own, when lower), enforced by Fastify as it reads;
 * - an `onRequest` hook refusing what the headers show (over the limit, not JSON, compressed or
 *   not UTF-8) before the body is read, the guards run or the throttle budget is spent, and
 *   naming a `+json` type `application/json` for Fastify's parser;
 * - an `errorHandler` that answers those errors in the contract's shape.
 * The routes are recognised by path (`/<routePrefix>/send`, `verify`, `requests/:requestId`,
 * after any global prefix or version), as the Express error handler recognises them.
 *
 * One more difference is the router's: Fastify's refuses a path parameter longer than its
 * `maxParamLength` (100 by default) before any route or hook runs (414 `FST_ERR_MAX_PARAM_LENGTH`
 * in Fastify's own shape), where Express hands it to the route. So each route with a `:requestId`
 * gets a wildcard sibling (`requests/*`, same method), which the router tries only when the
 * route's own pattern failed: a path of the route's shape (an id without a slash, then the route's
 * suffix, `/cancel`) got there only for its over-long id, and goes to the route's own handler
 * (throttle, validation, service: 404 `OTP_REQUEST_NOT_FOUND`, as on Express); any other path it
 * catches (`requests/a/b`) goes to the host's not-found handler, as without it.
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
    /** `METHOD base/*` → the handler of each route it backs, by what follows the id (`/cancel`). */
    const overlongIdRoutes = new Map<string, Map<string, RouteHandler>>();
    instance.addHook('onRoute', (route) => {
      if (!otpRoute.test(route.url)) return;
      route.bodyLimit = Math.min(limit, route.bodyLimit ?? limit);
      route.onRequest = [...[route.onRequest ?? []].flat(), this.checkHeaders(limit)];
      route.errorHandler ??= (error, _request, reply) =>
        sendOtpError(
          reply as Parameters<typeof sendOtpError>[0],
          toOtpError(error, reply as never, this.options.throttleTtlSeconds),
        );
      const id = REQUEST_ID_PARAM.exec(route.url);
      if (!id || !route.handler) return;
      const base = `${route.url.slice(0, id.index)}/*`;
      for (const method of [route.method].flat()) {
        // Fastify adds a HEAD route to every GET one, the sibling's too.
        if (method === 'HEAD' && overlongIdRoutes.has(`GET ${base}`)) continue;
        const key = `${method} ${base}`;
        const known = overlongIdRoutes.get(key);
        if (known) {
          known.set(id[1] ?? '', route.handler);
          continue;
        }
        const handlers = new Map([[id[1] ?? '', route.handler]]);
        overlongIdRoutes.set(key, handlers);
        // Registered from this hook, it passes through it too: the same body rules and errors.
        instance.route({ method, url: base, handler: overlongId(handlers) });
      }
    });
    return true;
  }

  private checkHeaders(limit: number): OnRequestHook {
    return (request, _reply, done) => {
      const { headers } = request;
      const hasBody = declaredLength(headers) > 0 || headers['transfer-encoding'] !== undefined;
      const refused =
        checkBodyHeaders(headers, limit) ?? (hasBody ? checkBodyEncoding(headers) : null);
      // The rules take JSON under a `+json` type too (`application/vnd.api+json`), as the Express
      // side reads it; Fastify parses `application/json` only, so the type is named that here.
      const type = headers['content-type'];
      if (!refused && type && JSON_SUFFIX_TYPE.test(type)) {
        headers['content-type'] = type.replace(JSON_SUFFIX_TYPE, 'application/json');
      }
      done(refused ?? undefined);
    };
  }
}

/**
 * The wildcard sibling's handler: a path of one of the routes' shape (`<id><suffix>`, the id
 * non-empty and without a slash) goes to that route's handler with its `requestId`; anything else
 * is no OTP route at all.
 */
function overlongId(handlers: ReadonlyMap<string, RouteHandler>): RouteHandler {
  return function (this: unknown, request, reply) {
    const rest = (request.params as Record<string, string | undefined>)['*'] ?? '';
    for (const [suffix, handler] of handlers) {
      if (!rest.endsWith(suffix)) continue;
      const requestId = rest.slice(0, rest.length - suffix.length);
      if (requestId === '' || requestId.includes('/')) continue;
      request.params = { requestId };
      return handler.call(this, request, reply);
    }
    return reply.callNotFound();
  };
}
