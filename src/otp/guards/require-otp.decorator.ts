import { applyDecorators, SetMetadata, UseFilters, UseGuards } from '@nestjs/common';
import { OtpExceptionFilter } from '../errors/otp-exception.filter.js';
import { ApiOtpGuarded } from '../openapi/otp-openapi.js';
import { REQUIRE_OTP_METADATA } from '../otp.constants.js';
import { OtpTokenGuard } from './otp-token.guard.js';

/**
 * Protects a route (or every route of a controller) behind a fresh OTP verification for
 * `purpose`: the request must carry `X-OTP-Token` from a successful verify, and each token passes
 * once. The guard sets `request.otp` to what the token proved (`OtpVerification`). Its 401
 * `OTP_TOKEN_INVALID` (and any other `OtpError`) answers in the contract's shape through
 * `OtpExceptionFilter`, whatever filter the host registers globally; the route's other errors stay
 * the host's. With `@nestjs/swagger` installed, the route is documented as needing the
 * `X-OTP-Token` API-key scheme (a host registers it with `DocumentBuilder.addApiKey`), with its 401.
 */
export const RequireOtp = (purpose: string): MethodDecorator & ClassDecorator =>
  applyDecorators(
    SetMetadata(REQUIRE_OTP_METADATA, purpose),
    UseGuards(OtpTokenGuard),
    UseFilters(OtpExceptionFilter),
    ApiOtpGuarded(),
  );
