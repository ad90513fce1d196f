import type { IncomingHttpHeaders } from 'node:http';
import {
  type OtpError,
  PayloadTooLargeError,
  ValidationFailedError,
} from '../errors/otp.errors.js';

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

export const JSON_ONLY_MESSAGE = 'request body must be JSON (Content-Type: application/json)';

/** The declared `Content-Length`, NaN when there is none (a chunked body). */
export function declaredLength(headers: IncomingHttpHeaders): number {
  return Number(headers['content-length'] ?? NaN);
}

/**
 * What the OTP routes refuse from the headers alone, before any body is read, on Express and on
 * Fastify alike: a declared length over `limit` (413), and a body that is not JSON (400). JSON
 * only, because a form post (which any web page can make cross-site) must never reach the routes,
 * even where the host parses forms for its own.
 */
export function checkBodyHeaders(headers: IncomingHttpHeaders, limit: number): OtpError | null {
  const declared = declaredLength(headers);
  if (declared > limit) return new PayloadTooLargeError();
  const hasBody = declared > 0 || headers['transfer-encoding'] !== undefined;
  if (hasBody && !JSON_TYPE.test(headers['content-type'] ?? '')) {
    return new ValidationFailedError([JSON_ONLY_MESSAGE]);
  }
  return null;
}

/**
 * A body the module reads as it is must be plain UTF-8, as JSON is (RFC 8259), never compressed:
 * used where no parser of the host's decodes it first (Express without a body parser; Fastify,
 * which never decompresses).
 */
export function checkBodyEncoding(headers: IncomingHttpHeaders): OtpError | null {
  const encoding = (headers['content-encoding'] ?? 'identity').toLowerCase();
  const charset = /;\s*charset\s*=\s*"?([\w-]+)/i.exec(headers['content-type'] ?? '')?.[1];
  if (encoding !== 'identity' || (charset && !/^utf-?8$/i.test(charset))) {
    return new ValidationFailedError(['request body must be uncompressed UTF-8 JSON']);
  }
  return null;
}
