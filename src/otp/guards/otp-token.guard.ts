import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { TokenInvalidError } from '../errors/otp.errors.js';
import { OTP_TOKEN_HEADER, REQUIRE_OTP_METADATA } from '../otp.constants.js';
import { clientOf } from '../http/client-of.js';
import { OtpService, type OtpVerification } from '../otp.service.js';

/** The request of a route guarded by `@RequireOtp`, once the guard let it through. */
export interface OtpVerifiedRequest {
  otp: OtpVerification;
}

/**
 * Consumes the request's verification token for the route's purpose (atomically: a token passes
 * once however many requests present it at the same time) and answers 401 `OTP_TOKEN_INVALID`
 * otherwise.
 */
@Injectable()
export class OtpTokenGuard implements CanActivate {
  constructor(
    protected readonly reflector: Reflector,
    protected readonly otp: OtpService,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const purpose = this.reflector.getAllAndOverride<string | undefined>(REQUIRE_OTP_METADATA, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (!purpose) return true;
    const request = context
      .switchToHttp()
      .getRequest<
        { headers: Record<string, unknown>; ip?: string } & Partial<OtpVerifiedRequest>
      >();
    const verification = await this.otp.consumeToken(
      this.getToken(request.headers),
      purpose,
      clientOf(request),
    );
    if (!verification) throw new TokenInvalidError();
    request.otp = verification;
    return true;
  }

  /** Where the token is read from; override to take it from elsewhere. */
  protected getToken(headers: Record<string, unknown>): string | undefined {
    const value = headers[OTP_TOKEN_HEADER];
    return typeof value === 'string' ? value : undefined;
  }
}
