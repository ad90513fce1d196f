import {
  createParamDecorator,
  Get,
  Headers,
  HttpCode,
  HttpStatus,
  Inject,
  Param,
  Post,
  Req,
  Res,
  type ExecutionContext,
  type Type,
  Controller,
  UseFilters,
  UseGuards,
} from '@nestjs/common';
import { SendOtpDto } from './dto/send-otp.dto.js';
import { validateOtpInput } from './dto/validate-input.js';
import { VerifyOtpDto } from './dto/verify-otp.dto.js';
import { OtpRoutesExceptionFilter } from './errors/otp-routes-exception.filter.js';
import { pickLocale } from './http/accept-language.js';
import { clientOf, type ClientRequest } from './http/client-of.js';
import { setTokenCookie } from './http/token-cookie.js';
import {
  ApiOtpCancel,
  ApiOtpController,
  ApiOtpSend,
  ApiOtpStatus,
  ApiOtpVerify,
} from './openapi/otp-openapi.js';
import { OTP_OPTIONS } from './otp.constants.js';
import type { OtpModuleOptions } from './otp.options.js';
import {
  OtpService,
  type OtpRequestView,
  type SendOtpResult,
  type VerifyOtpInput,
  type VerifyOtpResult,
} from './otp.service.js';
import { OtpThrottlerGuard } from './throttler/otp-throttler.guard.js';

/**
 * The request body, validated by the module itself against `type`. A custom parameter decorator
 * (not `@Body()` with a DTO type) so a host's global `ValidationPipe` has nothing to act on: its
 * `transform` or `enableImplicitConversion` never turn a numeric code into a string, and its
 * messages never replace ours.
 */
const OtpBody = createParamDecorator((type: Type<object>, context: ExecutionContext) =>
  validateOtpInput(type, context.switchToHttp().getRequest<{ body?: unknown }>().body),
);

/** The validated body's type; an interface, so the parameter's design type is a plain `Object`. */
type SendBody = Pick<SendOtpDto, keyof SendOtpDto>;

/**
 * The OTP routes: HTTP in, one service call, HTTP out. Mounted under the configured prefix by
 * `OtpModule` (see `createOtpController`), throttled per IP, every error in the contract's shape
 * through the routes' own filter. Described for OpenAPI when the host has `@nestjs/swagger`.
 */
@ApiOtpController()
@UseFilters(OtpRoutesExceptionFilter)
@UseGuards(OtpThrottlerGuard)
export class OtpController {
  constructor(
    protected readonly otp: OtpService,
    @Inject(OTP_OPTIONS) protected readonly options: OtpModuleOptions,
  ) {}

  @Post('send')
  @HttpCode(HttpStatus.ACCEPTED)
  @ApiOtpSend()
  async send(
    @OtpBody(SendOtpDto) body: SendBody,
    @Req() request: ClientRequest,
    @Headers('idempotency-key') idempotencyKey?: string,
    @Headers('accept-language') acceptLanguage?: string,
  ): Promise<SendOtpResult> {
    const locale = pickLocale(acceptLanguage, this.otp.locales);
    const subject = await this.subjectOf(request);
    return this.otp.send({ ...body, idempotencyKey, locale, subject }, clientOf(request));
  }

  @Post('verify')
  @HttpCode(HttpStatus.OK)
  @ApiOtpVerify()
  async verify(
    @OtpBody(VerifyOtpDto) body: VerifyOtpInput,
    @Req() request: ClientRequest,
    @Res({ passthrough: true }) response: object,
  ): Promise<VerifyOtpResult | Omit<VerifyOtpResult, 'verificationToken'>> {
    const subject = await this.subjectOf(request);
    const result = await this.otp.verify({ ...body, subject }, clientOf(request));
    const transport = this.options.tokenTransport;
    if (transport === 'header') return result;
    const lifetime = (result.tokenExpiresAt.getTime() - Date.now()) / 1000;
    setTokenCookie(response, result.verificationToken, lifetime);
    if (transport === 'both') return result;
    // Cookie only: the token never reaches script, so XSS cannot read it from the answer either.
    return { verified: result.verified, tokenExpiresAt: result.tokenExpiresAt };
  }

  @Get('requests/:requestId')
  @ApiOtpStatus()
  status(@Param('requestId') requestId: string): Promise<OtpRequestView> {
    return this.otp.status(requestId);
  }

  @Post('requests/:requestId/cancel')
  @HttpCode(HttpStatus.NO_CONTENT)
  @ApiOtpCancel()
  cancel(@Param('requestId') requestId: string): Promise<void> {
    return this.otp.cancel(requestId);
  }

  /** The account the host's `subjectFrom` reads from the request; never the body. */
  private async subjectOf(request: ClientRequest): Promise<string | undefined> {
    const subject = await this.options.subjectFrom?.(request);
    return subject ?? undefined;
  }
}

/** The controller mounted under `prefix`: a subclass, so two apps in one process may differ. */
export function createOtpController(prefix: string): Type<OtpController> {
  class MountedOtpController extends OtpController {}
  Controller(prefix)(MountedOtpController);
  return MountedOtpController;
}
