import { HardLockedError, type OtpError, OtpRetryableError } from './otp.errors.js';

/** An Express or a Fastify response: the two shapes Nest's HTTP adapters hand a filter. */
interface HttpResponseLike {
  headersSent?: boolean;
  sent?: boolean;
  setHeader?(name: string, value: string): unknown;
  header?(name: string, value: string): unknown;
  status?(code: number): HttpResponseLike;
  code?(code: number): HttpResponseLike;
  json?(body: unknown): unknown;
  send?(body: unknown): unknown;
}

/**
 * Writes an `OtpError` as the contract's JSON, with `Retry-After` on every retryable error and on a
 * hard lock that has an end.
 */
export function sendOtpError(response: HttpResponseLike, error: OtpError): void {
  if (response.headersSent || response.sent) return;
  const body = error.getResponse();
  // A hard lock with an end says when, too (RFC 9110 allows Retry-After on any status).
  const retryAfter =
    error instanceof OtpRetryableError || error instanceof HardLockedError
      ? error.retryAfter
      : undefined;
  if (retryAfter !== undefined) {
    const value = String(retryAfter);
    if (response.setHeader) response.setHeader('Retry-After', value);
    else response.header?.('Retry-After', value);
  }
  if (typeof response.json === 'function' && typeof response.status === 'function') {
    response.status(error.getStatus()).json?.(body);
  } else {
    (response.code?.(error.getStatus()) ?? response).send?.(body);
  }
}
