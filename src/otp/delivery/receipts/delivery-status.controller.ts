import {
  Controller,
  HttpCode,
  HttpStatus,
  Inject,
  Post,
  Req,
  UseFilters,
  type Type,
} from '@nestjs/common';
import type { IncomingMessage } from 'node:http';
import { ValidationFailedError } from '../../errors/otp.errors.js';
import { OtpRoutesExceptionFilter } from '../../errors/otp-routes-exception.filter.js';
import { ApiOtpController } from '../../openapi/otp-openapi.js';
import { ApiOtpReceiptTwilio, ApiOtpReceiptWebhook } from '../../openapi/otp-openapi.receipts.js';
import { OTP_OPTIONS } from '../../otp.constants.js';
import type { OtpModuleOptions } from '../../otp.options.js';
import { OTP_CHANNELS, type OtpChannel } from '../../otp.types.js';
import { checkOtpWebhookSignature, OTP_WEBHOOK_SIGNATURE_HEADER } from '../webhook-signature.js';
import { formFields, readReceiptBody } from './delivery-receipt-body.js';
import {
  ReceiptRouteNotFoundError,
  ReceiptSignatureInvalidError,
} from './delivery-receipt.errors.js';
import {
  DELIVERY_RECEIPT_STATUSES,
  type DeliveryReceiptStatus,
} from './otp-delivery-log.repository.js';
import { OtpFallbackService } from './otp-fallback.service.js';
import { validTwilioSignature } from './twilio-signature.js';

type ReceiptRequest = IncomingMessage & { body?: unknown; rawBody?: Buffer };

/** Twilio's message statuses, as the delivery log keeps them. */
const TWILIO_STATUS: Readonly<Record<string, DeliveryReceiptStatus>> = {
  accepted: 'queued',
  scheduled: 'queued',
  queued: 'queued',
  sending: 'queued',
  sent: 'sent',
  delivered: 'delivered',
  read: 'delivered',
  undelivered: 'undelivered',
  failed: 'failed',
  canceled: 'failed',
};
const MESSAGE_SID = /^(?:SM|MM)[0-9a-f]{32}$/i;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ERROR_CODE = /^[0-9A-Za-z_-]{1,32}$/;

/**
 * Delivery receipts from providers: `POST <prefix>/delivery-status/twilio` (Twilio's status
 * callbacks) and `POST <prefix>/delivery-status/webhook` (a webhook receiver's reports). Each is off
 * (404, as a route that does not exist) unless `deliveryReceipts` configures it, and accepts only
 * a valid signature: anything else is a 403 that changes nothing. Answers 204.
 */
@ApiOtpController()
@UseFilters(OtpRoutesExceptionFilter)
export class DeliveryStatusController {
  constructor(
    protected readonly fallback: OtpFallbackService,
    @Inject(OTP_OPTIONS) protected readonly options: OtpModuleOptions,
  ) {}

  @Post('twilio')
  @HttpCode(HttpStatus.NO_CONTENT)
  @ApiOtpReceiptTwilio()
  async twilio(@Req() request: ReceiptRequest): Promise<void> {
    const config = this.options.deliveryReceipts?.twilio;
    if (!config) throw new ReceiptRouteNotFoundError();
    const body = await readReceiptBody(request, 'form', this.options.bodyLimitBytes);
    const fields = formFields(body);
    const signature = request.headers['x-twilio-signature'];
    if (
      typeof signature !== 'string' ||
      !(await validTwilioSignature(config.authToken, signature, config.publicUrl, fields))
    ) {
      throw new ReceiptSignatureInvalidError();
    }
    const problems: string[] = [];
    const sid = fields.MessageSid;
    if (typeof sid !== 'string' || !MESSAGE_SID.test(sid)) {
      problems.push('MessageSid must be a Twilio message SID');
    }
    const status = TWILIO_STATUS[fields.MessageStatus ?? ''];
    if (!status)
      problems.push(`MessageStatus must be one of ${Object.keys(TWILIO_STATUS).join(', ')}`);
    const errorCode = fields.ErrorCode;
    if (errorCode !== undefined && errorCode !== '' && !ERROR_CODE.test(errorCode)) {
      problems.push('ErrorCode must be a Twilio error code');
    }
    if (problems.length > 0) throw new ValidationFailedError(problems);
    await this.fallback.applyReceipt({
      provider: 'twilio',
      messageId: sid as string,
      status: status as DeliveryReceiptStatus,
      errorCode: errorCode || null,
    });
  }

  @Post('webhook')
  @HttpCode(HttpStatus.NO_CONTENT)
  @ApiOtpReceiptWebhook()
  async webhook(@Req() request: ReceiptRequest): Promise<void> {
    const config = this.options.deliveryReceipts?.webhook;
    if (!config) throw new ReceiptRouteNotFoundError();
    const body = await readReceiptBody(request, 'json', this.options.bodyLimitBytes);
    const header = request.headers[OTP_WEBHOOK_SIGNATURE_HEADER];
    // Signed over the bytes as sent; where a host parser already took them (Express without
    // `rawBody: true`), over the body as JSON.stringify writes it, which is what a sender using
    // `signOtpWebhookPayload(JSON.stringify(report))` signed.
    const signed = body.raw ?? Buffer.from(JSON.stringify(body.parsed) ?? '', 'utf8');
    const check = checkOtpWebhookSignature(
      signed,
      typeof header === 'string' ? header : undefined,
      config.secret,
    );
    if (!check.valid) throw new ReceiptSignatureInvalidError();
    let report: unknown = body.parsed;
    if (body.raw) {
      try {
        report = JSON.parse(body.raw.toString('utf8')) as unknown;
      } catch {
        throw new ValidationFailedError(['request body is not valid JSON']);
      }
    }
    const fields = validWebhookReport(report);
    await this.fallback.applyReceipt({
      provider: 'webhook',
      messageId: webhookMessageId(fields.requestId, fields.channel),
      status: fields.status,
      errorCode: fields.errorCode ?? null,
    });
  }
}

/** The message id the webhook provider reports for a request's message on a channel. */
export function webhookMessageId(requestId: string, channel: OtpChannel): string {
  return `${requestId.toLowerCase()}:${channel}`;
}

function validWebhookReport(report: unknown): {
  requestId: string;
  channel: OtpChannel;
  status: DeliveryReceiptStatus;
  errorCode?: string;
} {
  if (typeof report !== 'object' || report === null || Array.isArray(report)) {
    throw new ValidationFailedError(['request body must be a JSON object']);
  }
  const r = report as Record<string, unknown>;
  const problems: string[] = [];
  const unknown = Object.keys(r).filter(
    (k) => !['requestId', 'channel', 'status', 'errorCode'].includes(k),
  );
  if (unknown.length > 0) problems.push(`unknown fields: ${unknown.join(', ')}`);
  if (typeof r.requestId !== 'string' || !UUID.test(r.requestId)) {
    problems.push('requestId must be a UUID');
  }
  if (typeof r.channel !== 'string' || !OTP_CHANNELS.includes(r.channel as OtpChannel)) {
    problems.push(`channel must be one of ${OTP_CHANNELS.join(', ')}`);
  }
  if (
    typeof r.status !== 'string' ||
    !DELIVERY_RECEIPT_STATUSES.includes(r.status as DeliveryReceiptStatus)
  ) {
    problems.push(`status must be one of ${DELIVERY_RECEIPT_STATUSES.join(', ')}`);
  }
  if (
    r.errorCode !== undefined &&
    (typeof r.errorCode !== 'string' || !ERROR_CODE.test(r.errorCode))
  ) {
    problems.push('errorCode must be a short string');
  }
  if (problems.length > 0) throw new ValidationFailedError(problems);
  return r as never;
}

/** The receipts controller mounted under `<prefix>/delivery-status`. */
export function createDeliveryStatusController(prefix: string): Type<DeliveryStatusController> {
  class MountedDeliveryStatusController extends DeliveryStatusController {}
  Controller(`${prefix.replace(/\/+$/, '')}/delivery-status`)(MountedDeliveryStatusController);
  return MountedDeliveryStatusController;
}
