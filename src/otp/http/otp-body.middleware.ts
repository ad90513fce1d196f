import { Inject, Injectable, type NestMiddleware } from '@nestjs/common';
import type { IncomingMessage } from 'node:http';
import { PayloadTooLargeError, ValidationFailedError } from '../errors/otp.errors.js';
import { OTP_OPTIONS } from '../otp.constants.js';
import type { OtpModuleOptions } from '../otp.options.js';

type OtpHttpRequest = IncomingMessage & { body?: unknown };

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/**
 * Enforces the OTP routes' body limit (`bodyLimitBytes`, 16 KiB) without touching the host's body
 * parsers: a body the host's parser accepted but that is over the limit is a 413 here; a body no
 * parser read (a host with `bodyParser: false`) is read and parsed here, within the limit. Errors go
 * to `next`, where the OTP routes' error handler answers them in the contract's shape. Bodies
 * must be JSON.
 */
@Injectable()
export class OtpBodyMiddleware implements NestMiddleware<OtpHttpRequest> {
  constructor(@Inject(OTP_OPTIONS) private readonly options: OtpModuleOptions) {}

  use(request: OtpHttpRequest, _response: unknown, next: (error?: unknown) => void): void {
    const limit = this.options.bodyLimitBytes;
    const declared = Number(request.headers['content-length'] ?? NaN);
    if (declared > limit) return next(new PayloadTooLargeError());
    const hasBody = declared > 0 || request.headers['transfer-encoding'] !== undefined;
    if (hasBody && !JSON_TYPE.test(request.headers['content-type'] ?? '')) {
      // JSON only: a form post (which any web page can make cross-site) is refused, even where the
      // host's own urlencoded parser has already read it.
      return next(
        new ValidationFailedError(['request body must be JSON (Content-Type: application/json)']),
      );
    }
    if (request.body !== undefined) {
      // Chunked bodies declare no length: measure what the host's parser kept.
      if (Number.isNaN(declared) && jsonBytes(request.body) > limit) {
        return next(new PayloadTooLargeError());
      }
      return next();
    }
    if (!hasBody || request.readableEnded) return next();
    // Read here only when no parser did: plain UTF-8, as JSON is (RFC 8259), never compressed.
    const encoding = (request.headers['content-encoding'] ?? 'identity').toLowerCase();
    const charset = /;\s*charset\s*=\s*"?([\w-]+)/i.exec(
      request.headers['content-type'] ?? '',
    )?.[1];
    if (encoding !== 'identity' || (charset && !/^utf-?8$/i.test(charset))) {
      return next(new ValidationFailedError(['request body must be uncompressed UTF-8 JSON']));
    }
    readJson(request, limit).then((body) => {
      request.body = body;
      next();
    }, next);
  }
}

function jsonBytes(body: unknown): number {
  try {
    return Buffer.byteLength(JSON.stringify(body) ?? '');
  } catch {
    return 0;
  }
}

/** Reads and parses a JSON body of at most `limit` bytes. */
function readJson(request: IncomingMessage, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        request.resume(); // drain the rest without keeping it
        reject(new PayloadTooLargeError());
      } else {
        chunks.push(chunk);
      }
    };
    const onEnd = (): void => {
      cleanup();
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(text.trim() === '' ? undefined : (JSON.parse(text) as unknown));
      } catch {
        reject(new ValidationFailedError(['request body is not valid JSON']));
      }
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const cleanup = (): void => {
      request.off('data', onData);
      request.off('end', onEnd);
      request.off('error', onError);
    };
    request.on('data', onData);
    request.on('end', onEnd);
    request.on('error', onError);
  });
}
