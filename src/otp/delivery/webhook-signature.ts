import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The header the webhook provider signs each POST with, lowercased as Node's `req.headers` keys
 * are. Its value is `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, the scheme Stripe and
 * Svix receivers know.
 */
export const OTP_WEBHOOK_SIGNATURE_HEADER = 'x-otp-signature';

/** Default for `toleranceSeconds`: how far a signature's timestamp may be from the receiver's clock. */
export const OTP_WEBHOOK_TOLERANCE_SECONDS = 300;

/** A webhook secret shorter than this many bytes (UTF-8) is refused: it could be guessed offline. */
export const OTP_WEBHOOK_SECRET_MIN_BYTES = 32;

/** Why a signature was refused; `valid: true` when it was accepted. */
export type OtpWebhookSignatureCheck =
  | { valid: true }
  | {
      valid: false;
      /**
       * - `missing-header`: no header at all.
       * - `malformed-header`: not `t=<digits>,v1=<64 hex>[,v1=<64 hex>…]` (an empty header, no or
       *   several `t`, no `v1`, a `v1` that is not 64 hex digits, a part without `=`).
       * - `timestamp-out-of-tolerance`: `t` is more than `toleranceSeconds` in the past (a replay)
       *   or in the future.
       * - `signature-mismatch`: no `v1` is the HMAC of `"<t>.<body>"` under this secret (a
       *   tampered body or timestamp, or another secret).
       */
      reason:
        'missing-header' | 'malformed-header' | 'timestamp-out-of-tolerance' | 'signature-mismatch';
    };

/**
 * Throws when a webhook secret is too short to sign with. `name` is what the message calls it, so
 * the host knows which setting to fix; the secret itself is never part of the message.
 */
export function assertOtpWebhookSecret(secret: unknown, name: string): asserts secret is string {
  if (
    typeof secret !== 'string' ||
    Buffer.byteLength(secret, 'utf8') < OTP_WEBHOOK_SECRET_MIN_BYTES
  ) {
    throw new Error(
      `${name} must be a string of at least ${OTP_WEBHOOK_SECRET_MIN_BYTES} bytes ` +
        '(generate one with `openssl rand -hex 32`).',
    );
  }
}

function hmac(secret: string, timestamp: string, body: string | Buffer): Buffer {
  return createHmac('sha256', secret)
    .update(`${timestamp}.`, 'utf8')
    .update(typeof body === 'string' ? Buffer.from(body, 'utf8') : body)
    .digest();
}

/**
 * The `X-OTP-Signature` value for `body` signed at `timestamp` (unix seconds): what the webhook
 * provider sends. Exported so a receiver's own tests can sign a body the way the provider does.
 */
export function signOtpWebhookPayload(
  body: string | Buffer,
  secret: string,
  timestamp: number = Math.floor(Date.now() / 1000),
): string {
  assertOtpWebhookSecret(secret, 'The webhook secret');
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new RangeError(
      'The webhook signature timestamp must be a non-negative integer (seconds).',
    );
  }
  const t = String(timestamp);
  return `t=${t},v1=${hmac(secret, t, body).toString('hex')}`;
}

const TIMESTAMP = /^[0-9]{1,15}$/;
const SIGNATURE = /^[0-9a-fA-F]{64}$/;

/** `t` and every `v1` of a header, or null when it is malformed. Other schemes (`v0`…) are ignored. */
function parseHeader(header: string): { t: string; v1: string[] } | null {
  let t: string | undefined;
  const v1: string[] = [];
  for (const part of header.split(',')) {
    const at = part.indexOf('=');
    if (at < 1) return null;
    const key = part.slice(0, at).trim();
    const value = part.slice(at + 1).trim();
    if (key === 't') {
      if (t !== undefined || !TIMESTAMP.test(value)) return null;
      t = value;
    } else if (key === 'v1') {
      if (!SIGNATURE.test(value)) return null;
      v1.push(value);
    }
  }
  return t === undefined || v1.length === 0 ? null : { t, v1 };
}

/**
 * Checks a webhook request's `X-OTP-Signature` against its raw body, and says why it failed.
 *
 * `body` must be the exact bytes received (the raw body, before any JSON parsing: re-serializing
 * a parsed object does not give the same bytes). Several `v1=` values are accepted, so a sender can
 * sign with a new and an old secret while the secret rotates; one match is enough. Comparisons run
 * in constant time. `now` is in milliseconds, as `Date.now()`.
 *
 * Throws (a programming error, not a bad request) when `secret` is shorter than 32 bytes, e.g. an
 * unset environment variable, which would otherwise let anyone sign with an empty key, or when
 * `toleranceSeconds` is negative or not a number.
 */
export function checkOtpWebhookSignature(
  body: string | Buffer,
  header: string | undefined,
  secret: string,
  toleranceSeconds: number = OTP_WEBHOOK_TOLERANCE_SECONDS,
  now: number = Date.now(),
): OtpWebhookSignatureCheck {
  assertOtpWebhookSecret(secret, 'The webhook secret');
  if (!Number.isFinite(toleranceSeconds) || toleranceSeconds < 0) {
    throw new RangeError('toleranceSeconds must be a non-negative number of seconds.');
  }
  if (header === undefined) return { valid: false, reason: 'missing-header' };
  // Typed out, yet a JavaScript caller may pass Node's string[] for a repeated header.
  if (typeof header !== 'string') return { valid: false, reason: 'malformed-header' };
  const parsed = parseHeader(header);
  if (!parsed) return { valid: false, reason: 'malformed-header' };

  if (Math.abs(now / 1000 - Number(parsed.t)) > toleranceSeconds) {
    return { valid: false, reason: 'timestamp-out-of-tolerance' };
  }

  // Signed over the timestamp exactly as sent, not a re-formatted number.
  const expected = hmac(secret, parsed.t, body);
  let matched = false;
  for (const candidate of parsed.v1) {
    const given = Buffer.from(candidate, 'hex');
    // No early exit: every candidate is compared, so timing says nothing about which one matched.
    if (given.length === expected.length && timingSafeEqual(given, expected)) matched = true;
  }
  return matched ? { valid: true } : { valid: false, reason: 'signature-mismatch' };
}

/**
 * True when `header` (the request's `X-OTP-Signature`) is a valid signature of `body` (its raw
 * bytes) under `secret`, made within `toleranceSeconds` (default 300) of `now` (ms, default
 * `Date.now()`). Use {@link checkOtpWebhookSignature} to learn why a signature was refused.
 */
export function verifyOtpWebhookSignature(
  body: string | Buffer,
  header: string | undefined,
  secret: string,
  toleranceSeconds: number = OTP_WEBHOOK_TOLERANCE_SECONDS,
  now: number = Date.now(),
): boolean {
  return checkOtpWebhookSignature(body, header, secret, toleranceSeconds, now).valid;
}
