import { Controller, HttpCode, HttpStatus, Post, Req } from '@nestjs/common';
import { RequireOtp } from '../otp/guards/require-otp.decorator.js';
import type { OtpVerifiedRequest } from '../otp/guards/otp-token.guard.js';

/** A host route behind a fresh OTP verification. */
@Controller('example')
export class ProtectedController {
  @Post('protected')
  @HttpCode(HttpStatus.OK)
  @RequireOtp('login')
  protectedAction(@Req() request: OtpVerifiedRequest): { ok: true; destination: string } {
    return { ok: true, destination: request.otp.destination };
  }
}
