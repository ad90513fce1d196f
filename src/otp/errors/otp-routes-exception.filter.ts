import { type ArgumentsHost, Catch, type ExceptionFilter, Inject } from '@nestjs/common';
import { OTP_OPTIONS } from '../otp.constants.js';
import type { OtpModuleOptions } from '../otp.options.js';
import { sendOtpError } from './send-otp-error.js';
import { toOtpError, type ResponseHeaders } from './to-otp-error.js';

/**
 * The OTP routes' own filter (controller-scoped, so it runs before any filter the host registers
 * globally, and the host's errors stay the host's): every error on these routes answers in the
 * contract's shape, including a 429 from a throttler the host applies to every route.
 */
@Catch()
export class OtpRoutesExceptionFilter implements ExceptionFilter {
  constructor(@Inject(OTP_OPTIONS) private readonly options: OtpModuleOptions) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<ResponseHeaders>();
    const error = toOtpError(exception, response, this.options.throttleTtlSeconds);
    sendOtpError(response as Parameters<typeof sendOtpError>[0], error);
  }
}
