import {
  createParamDecorator,
  Get,
  Headers,
  HttpCode,
  HttpStatus,
  Param,
  Post,
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
import { ApiOtpController, ApiOtpSend, ApiOtpStatus, ApiOtpVerify } from './openapi/otp-openapi.js';
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
  constructor(protected readonly otp: OtpService) {}

  @Post('send')
  @HttpCode(HttpStatus.ACCEPTED)
  @ApiOtpSend()
  send(
    @OtpBody(SendOtpDto) body: SendBody,
    @Headers('idempotency-key') idempotencyKey?: string,
    @Headers('accept-language') acceptLanguage?: string,
  ): Promise<SendOtpResult> {
    const locale = pickLocale(acceptLanguage, this.otp.locales);
    return this.otp.send({ ...body, idempotencyKey, locale });
  }

  @Post('verify')
  @HttpCode(HttpStatus.OK)
  @ApiOtpVerify()
  verify(@OtpBody(VerifyOtpDto) body: VerifyOtpInput): Promise<VerifyOtpResult> {
    return this.otp.verify(body);
  }

  @Get('requests/:requestId')
  @ApiOtpStatus()
  status(@Param('requestId') requestId: string): Promise<OtpRequestView> {
    return this.otp.status(requestId);
  }
}

/** The controller mounted under `prefix`: a subclass, so two apps in one process may differ. */
export function createOtpController(prefix: string): Type<OtpController> {
  class MountedOtpController extends OtpController {}
  Controller(prefix)(MountedOtpController);
  return MountedOtpController;
}
