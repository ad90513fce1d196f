import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { TokenInvalidError } from '../errors/otp.errors.js';
import { OTP_OPTIONS, OTP_TOKEN_HEADER, REQUIRE_OTP_METADATA } from '../otp.constants.js';
import { readTokenCookie } from '../http/token-cookie.js';
import type { OtpModuleOptions } from '../otp.options.js';
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
    @Inject(OTP_OPTIONS) protected readonly options: OtpModuleOptions,
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

  /**
   * Where the token is read from, as `tokenTransport` says: the `X-OTP-Token` header, the
   * `__Host-otp-token` cookie, or (`'both'`) the header, else the cookie. Override to take it from
   * elsewhere.
   */
  protected getToken(headers: Record<string, unknown>): string | undefined {
    const transport = this.options.tokenTransport;
    const header = headers[OTP_TOKEN_HEADER];
    if (transport !== 'cookie' && typeof header === 'string') return header;
    return transport === 'header' ? undefined : readTokenCookie(headers.cookie);
  }
}
