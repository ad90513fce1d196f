import { type ArgumentsHost, Catch, type ExceptionFilter } from '@nestjs/common';
import { OtpError } from './otp.errors.js';
import { sendOtpError } from './send-otp-error.js';

/**
 * For hosts that call `OtpService` from their own routes: answers the module's own errors
 * (`OtpError`) in the contract's JSON with `Retry-After` on every 429, and leaves every other error
 * to the host. Register it on those routes (`@UseFilters(OtpExceptionFilter)`) or globally; the OTP
 * routes need nothing, they carry their own filter.
 */
@Catch(OtpError)
export class OtpExceptionFilter implements ExceptionFilter<OtpError> {
  catch(error: OtpError, host: ArgumentsHost): void {
    sendOtpError(host.switchToHttp().getResponse(), error);
  }
}
