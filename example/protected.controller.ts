import { Controller, HttpCode, HttpStatus, Post, Req } from '@nestjs/common';
import { type OtpVerifiedRequest, RequireOtp } from '../src/index.js';

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
