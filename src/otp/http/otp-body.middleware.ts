import { Inject, Injectable, type NestMiddleware } from '@nestjs/common';
import type { IncomingMessage } from 'node:http';
import { PayloadTooLargeError, ValidationFailedError } from '../errors/otp.errors.js';
import { OTP_OPTIONS } from '../otp.constants.js';
import type { OtpModuleOptions } from '../otp.options.js';
import { checkBodyEncoding, checkBodyHeaders, declaredLength } from './otp-body-rules.js';

type OtpHttpRequest = IncomingMessage & { body?: unknown };

/**
 * Enforces the OTP routes' body limit (`bodyLimitBytes`, 16 KiB) without touching the host's body
 * parsers: a body the host's parser accepted but that is over the limit is a 413 here; a body no
 * parser read (a host with `bodyParser: false`) is read and parsed here, within the limit. Errors go
 * to `next`, where the OTP routes' error handler answers them in the contract's shape. Bodies
 * must be JSON. Express only: on Fastify, Nest middleware sees the raw request before Fastify reads
 * the body, so `OtpFastifyRoutes` enforces the same rules with the routes' own options and hooks.
 */
@Injectable()
export class OtpBodyMiddleware implements NestMiddleware<OtpHttpRequest> {
  constructor(@Inject(OTP_OPTIONS) private readonly options: OtpModuleOptions) {}

  use(request: OtpHttpRequest, _response: unknown, next: (error?: unknown) => void): void {
    const limit = this.options.bodyLimitBytes;
    const refused = checkBodyHeaders(request.headers, limit);
    if (refused) return next(refused);
    const declared = declaredLength(request.headers);
    const hasBody = declared > 0 || request.headers['transfer-encoding'] !== undefined;
    if (request.body !== undefined) {
      // Chunked bodies declare no length: measure what the host's parser kept.
      if (Number.isNaN(declared) && jsonBytes(request.body) > limit) {
        return next(new PayloadTooLargeError());
      }
      return next();
    }
    if (!hasBody || request.readableEnded) return next();
    // Read here only when no parser did.
    const undecodable = checkBodyEncoding(request.headers);
    if (undecodable) return next(undecodable);
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
