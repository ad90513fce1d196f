import type { IncomingMessage } from 'node:http';
import { PayloadTooLargeError, ValidationFailedError } from '../../errors/otp.errors.js';

/** What a receipt route got: the raw bytes when it could read them, the parsed body otherwise. */
export interface ReceiptBody {
  raw: Buffer | null;
  parsed: unknown;
}

type ReceiptRequest = IncomingMessage & { body?: unknown; rawBody?: Buffer };

const FORM_TYPE = /^application\/x-www-form-urlencoded\s*(?:;|$)/i;
const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/** The header a Fastify receipt route keeps the original `Content-Type` in (see the routes). */
export const ORIGINAL_TYPE_HEADER = 'x-nest-otp-receipt-content-type';

/**
 * The receipt's body, within `limit` bytes, whatever the platform and the host's parsers did:
 * the raw bytes from Nest's `rawBody`, from Fastify (where the routes take it as text), or read
 * here when no parser ran; otherwise the body a host parser (Express) made of it.
 */
export async function readReceiptBody(
  request: ReceiptRequest,
  kind: 'form' | 'json',
  limit: number,
): Promise<ReceiptBody> {
  const type = String(
    request.headers[ORIGINAL_TYPE_HEADER] ?? request.headers['content-type'] ?? '',
  );
  if (!(kind === 'form' ? FORM_TYPE : JSON_TYPE).test(type)) {
    throw new ValidationFailedError([
      kind === 'form'
        ? 'request body must be application/x-www-form-urlencoded'
        : 'request body must be JSON (Content-Type: application/json)',
    ]);
  }
  if (Number(request.headers['content-length'] ?? 0) > limit) throw new PayloadTooLargeError();
  if (Buffer.isBuffer(request.rawBody)) return { raw: request.rawBody, parsed: request.body };
  if (typeof request.body === 'string') {
    const raw = Buffer.from(request.body, 'utf8');
    if (raw.length > limit) throw new PayloadTooLargeError();
    return { raw, parsed: undefined };
  }
  if (request.body !== undefined) return { raw: null, parsed: request.body };
  if (request.readableEnded) return { raw: Buffer.alloc(0), parsed: undefined };
  return { raw: await readRaw(request, limit), parsed: undefined };
}

/** A form body as flat string fields (a repeated field keeps its last value, as Twilio never repeats). */
export function formFields(body: ReceiptBody): Record<string, string> {
  if (body.raw) return Object.fromEntries(new URLSearchParams(body.raw.toString('utf8')));
  const parsed = body.parsed;
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return {};
  const fields: Record<string, string> = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (typeof value === 'string') fields[key] = value;
    else throw new ValidationFailedError([`${key} must be a single value`]);
  }
  return fields;
}

function readRaw(request: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        request.removeAllListeners('data');
        request.resume();
        reject(new PayloadTooLargeError());
      } else {
        chunks.push(chunk);
      }
    });
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}
