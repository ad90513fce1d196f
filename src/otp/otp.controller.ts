import {
  Body,
  Controller,
  Get,
  Headers,
  HttpCode,
  HttpStatus,
  Param,
  Post,
  type Type,
  UseFilters,
  UseGuards,
  UsePipes,
} from '@nestjs/common';
import { createOtpValidationPipe } from './dto/otp-validation.pipe.js';
import { SendOtpDto } from './dto/send-otp.dto.js';
import { VerifyOtpDto } from './dto/verify-otp.dto.js';
import { OtpExceptionFilter } from './errors/otp-exception.filter.js';
import { ValidationFailedError } from './errors/otp.errors.js';
import { OtpThrottlerGuard } from './throttler/otp-throttler.guard.js';
import {
  OtpService,
  type OtpRequestView,
  type SendOtpResult,
  type VerifyOtpResult,
} from './otp.service.js';

// 1-255 printable ASCII characters (the contract's Idempotency-Key).
const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,255}$/;

/**
 * The OTP routes: HTTP in, one service call, HTTP out. Mounted under the configured prefix by
 * `OtpModule` (see `createOtpController`), throttled per IP, every error in the contract's shape.
 */
@UseFilters(OtpExceptionFilter)
@UseGuards(OtpThrottlerGuard)
@UsePipes(createOtpValidationPipe())
export class OtpController {
  constructor(protected readonly otp: OtpService) {}

  @Post('send')
  @HttpCode(HttpStatus.ACCEPTED)
  send(
    @Body() body: SendOtpDto,
    @Headers('idempotency-key') idempotencyKey?: string,
  ): Promise<SendOtpResult> {
    if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw new ValidationFailedError(['Idempotency-Key must be 1-255 printable ASCII characters']);
    }
    return this.otp.send({ ...body, idempotencyKey });
  }

  @Post('verify')
  @HttpCode(HttpStatus.OK)
  verify(@Body() body: VerifyOtpDto): Promise<VerifyOtpResult> {
    return this.otp.verify(body);
  }

  @Get('requests/:requestId')
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
