import { applyDecorators, SetMetadata, UseGuards } from '@nestjs/common';
import { REQUIRE_OTP_METADATA } from '../otp.constants.js';
import { OtpTokenGuard } from './otp-token.guard.js';

/**
 * Protects a route (or every route of a controller) behind a fresh OTP verification for
 * `purpose`: the request must carry `X-OTP-Token` from a successful verify, and each token passes
 * once. The guard sets `request.otp` to what the token proved (`OtpVerification`).
 */
export const RequireOtp = (purpose: string): MethodDecorator & ClassDecorator =>
  applyDecorators(SetMetadata(REQUIRE_OTP_METADATA, purpose), UseGuards(OtpTokenGuard));
