import { HttpException, HttpStatus, Logger } from '@nestjs/common';
import { JSON_ONLY_MESSAGE } from '../http/otp-body-rules.js';
import { isDatabaseUnavailable } from './database-unavailable.js';
import {
  OtpError,
  PayloadTooLargeError,
  RateLimitedError,
  ServiceUnavailableError,
  ValidationFailedError,
} from './otp.errors.js';

const logger = new Logger('OtpRoutes');

/** The response as far as it matters here: Express and Fastify both have `getHeader`. */
export interface ResponseHeaders {
  getHeader?(name: string): unknown;
  getHeaders?(): Record<string, unknown>;
}

/** body-parser's errors carry a `type` such as `entity.parse.failed` or `entity.too.large`. */
export function fromBodyParser(error: unknown): OtpError | null {
  const e = error as { type?: unknown; status?: unknown } | null;
  if (e?.type === 'entity.too.large') return new PayloadTooLargeError();
  if (e?.type === 'entity.parse.failed') {
    return new ValidationFailedError(['request body is not valid JSON']);
  }
  if (typeof e?.type === 'string' && /^(entity|encoding|charset|request)\./.test(e.type)) {
    return new ValidationFailedError([`request body could not be read (${e.type})`]);
  }
  // Some parser errors carry only an http-errors status (a body that fails to gunzip, say).
  if (!(error instanceof HttpException) && typeof e?.status === 'number') {
    if (e.status === 413) return new PayloadTooLargeError();
    if (e.status >= 400 && e.status < 500) {
      return new ValidationFailedError(['request body could not be read']);
    }
  }
  return null;
}

/**
 * Fastify's errors while it reads a body (`@fastify/error`s with a `FST_ERR_CTP_*` code and a 4xx
 * `statusCode`, or a stream error it gave a 400): they reach the OTP routes' own Fastify error
 * handler unmapped.
 */
export function fromFastify(error: unknown): OtpError | null {
  const e = error as { code?: unknown; statusCode?: unknown; name?: unknown } | null;
  if (error instanceof HttpException || typeof e?.statusCode !== 'number') return null;
  const code = typeof e.code === 'string' ? e.code : '';
  if (!code.startsWith('FST_') && e.name !== 'FastifyError') return null;
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new PayloadTooLargeError();
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ValidationFailedError(['request body is not valid JSON']);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ValidationFailedError(['request body is empty']);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ValidationFailedError([JSON_ONLY_MESSAGE]);
  }
  if (e.statusCode === 413) return new PayloadTooLargeError();
  if (e.statusCode >= 400 && e.statusCode < 500) {
    return new ValidationFailedError([`request body could not be read (${code || 'error'})`]);
  }
  return null;
}

/**
 * Seconds a throttler that is not ours asked the client to wait: @nestjs/throttler sets
 * `Retry-After` (or `Retry-After-<name>` for a named throttler) on the response before it throws.
 */
function retryAfterFrom(response: ResponseHeaders | undefined): number | null {
  const headers = response?.getHeaders?.() ?? {};
  const values = Object.entries(headers)
    .filter(([name]) => /^retry-after(-.+)?$/i.test(name))
    .map(([, value]) => Number(value))
    .filter((n) => Number.isFinite(n) && n > 0);
  const single = Number(response?.getHeader?.('Retry-After'));
  if (Number.isFinite(single) && single > 0) values.push(single);
  return values.length > 0 ? Math.max(...values) : null;
}

/**
 * Maps whatever reached the OTP routes to the contract: typed `OtpError`s as they are, anything a
 * host or framework threw (its throttler's 429, its pipes' 400s, body-parser or Fastify parser
 * errors) to the contract's code for that status, an unreachable database to 503, and anything
 * else to a bare 500 that reveals nothing.
 */
export function toOtpError(
  exception: unknown,
  response: ResponseHeaders | undefined,
  fallbackRetryAfterSeconds: number,
): OtpError {
  if (exception instanceof OtpError) return exception;
  const fromParser = fromBodyParser(exception) ?? fromFastify(exception);
  if (fromParser) return fromParser;
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    const body = exception.getResponse();
    const message =
      typeof body === 'object' && body !== null && 'message' in body
        ? (body as { message: string | string[] }).message
        : exception.message;
    if (status === Number(HttpStatus.TOO_MANY_REQUESTS)) {
      return new RateLimitedError(retryAfterFrom(response) ?? fallbackRetryAfterSeconds);
    }
    if (status === Number(HttpStatus.PAYLOAD_TOO_LARGE)) return new PayloadTooLargeError();
    if (status === Number(HttpStatus.BAD_REQUEST)) return new ValidationFailedError(message);
    return new OtpError(status, HttpStatus[status] ?? 'HTTP_ERROR', message);
  }
  if (isDatabaseUnavailable(exception)) {
    logger.warn(`database unavailable: ${(exception as Error).message}`);
    return new ServiceUnavailableError({ cause: exception });
  }
  logger.error('unhandled error', exception instanceof Error ? exception.stack : String(exception));
  return new OtpError(HttpStatus.INTERNAL_SERVER_ERROR, 'INTERNAL_ERROR', 'Internal server error.');
}
