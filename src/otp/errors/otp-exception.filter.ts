import {
  type ArgumentsHost,
  Catch,
  type ExceptionFilter,
  HttpException,
  HttpStatus,
  Logger,
} from '@nestjs/common';
import {
  OtpError,
  OtpRetryableError,
  PayloadTooLargeError,
  ServiceUnavailableError,
  ValidationFailedError,
} from './otp.errors.js';
import { isDatabaseUnavailable } from './database-unavailable.js';

interface HttpResponseLike {
  headersSent?: boolean;
  status(code: number): HttpResponseLike;
  setHeader(name: string, value: string): void;
  json(body: unknown): void;
}

/** body-parser's errors carry a `type`; Nest may wrap them or let them through as they are. */
function bodyParserError(error: unknown): OtpError | null {
  const e = error as { type?: unknown; status?: unknown };
  if (e?.type === 'entity.too.large' || e?.status === 413) return new PayloadTooLargeError();
  if (typeof e?.type === 'string' && e.type.startsWith('entity.')) {
    return new ValidationFailedError(['request body is not valid JSON']);
  }
  return null;
}

/**
 * Maps every error to the contract's `{ statusCode, code, message }`: typed `OtpError`s as they
 * are (with `Retry-After` on every 429), framework and body-parser errors to their contract codes,
 * an unreachable database to 503 `SERVICE_UNAVAILABLE`, and anything else to a bare 500 that
 * reveals nothing. Bound to the OTP routes; hosts may also register it globally.
 */
@Catch()
export class OtpExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('OtpExceptionFilter');

  catch(exception: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<HttpResponseLike>();
    const error = this.toOtpError(exception);
    if (response.headersSent) return;
    if (error instanceof OtpRetryableError)
      response.setHeader('Retry-After', String(error.retryAfter));
    response.status(error.getStatus()).json(error.getResponse());
  }

  private toOtpError(exception: unknown): OtpError {
    if (exception instanceof OtpError) return exception;
    const fromBodyParser = bodyParserError(exception);
    if (fromBodyParser) return fromBodyParser;
    if (exception instanceof HttpException) {
      const status: number = exception.getStatus();
      if (status === Number(HttpStatus.PAYLOAD_TOO_LARGE)) return new PayloadTooLargeError();
      if (status === Number(HttpStatus.BAD_REQUEST)) {
        return new ValidationFailedError(['request body is not valid JSON']);
      }
      const body = exception.getResponse();
      const message =
        typeof body === 'object' && body !== null && 'message' in body
          ? (body as { message: string | string[] }).message
          : exception.message;
      return new OtpError(status, HttpStatus[status] ?? 'HTTP_ERROR', message);
    }
    if (isDatabaseUnavailable(exception)) {
      this.logger.warn(`database unavailable: ${(exception as Error).message}`);
      return new ServiceUnavailableError();
    }
    this.logger.error(
      'unhandled error',
      exception instanceof Error ? exception.stack : String(exception),
    );
    return new OtpError(
      HttpStatus.INTERNAL_SERVER_ERROR,
      'INTERNAL_ERROR',
      'Internal server error.',
    );
  }
}
