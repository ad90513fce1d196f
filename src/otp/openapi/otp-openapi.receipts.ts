import { applyDecorators } from '@nestjs/common';
import { ApiOtpReceiptErrors } from './otp-openapi.js';
import { ApiBody, ApiHeader, ApiOperation, ApiResponse } from './swagger.js';

/**
 * The OpenAPI description of the delivery-receipt routes (`deliveryReceipts`). Like the rest of
 * `./otp-openapi.ts`, every decorator comes from `./swagger.js` and does nothing without
 * `@nestjs/swagger`.
 */

/** `POST /otp/delivery-status/twilio`. */
export const ApiOtpReceiptTwilio = (): MethodDecorator =>
  applyDecorators(
    ApiOperation({
      operationId: 'otpDeliveryStatusTwilio',
      summary: "Twilio's message status callback",
      description:
        'Form-encoded `MessageSid`, `MessageStatus`, `ErrorCode` (and whatever else Twilio posts), ' +
        'accepted only with a valid `X-Twilio-Signature` over the configured public URL. An ' +
        '`undelivered` or `failed` status for the active code re-sends it on the next channel.',
    }),
    ApiHeader({ name: 'X-Twilio-Signature', required: true }),
    ApiBody({
      required: true,
      schema: {
        type: 'object',
        required: ['MessageSid', 'MessageStatus'],
        properties: {
          MessageSid: { type: 'string' },
          MessageStatus: { type: 'string' },
          ErrorCode: { type: 'string' },
        },
      },
    }),
    ApiResponse({ status: 204, description: 'Accepted (an unknown message changes nothing).' }),
    ApiOtpReceiptErrors(),
  );

/** `POST /otp/delivery-status/webhook`. */
export const ApiOtpReceiptWebhook = (): MethodDecorator =>
  applyDecorators(
    ApiOperation({
      operationId: 'otpDeliveryStatusWebhook',
      summary: "A webhook receiver's delivery report",
      description:
        'JSON `{ requestId, channel, status, errorCode? }` signed like the outgoing webhook ' +
        '(`X-OTP-Signature`). An `undelivered` or `failed` status for the active code re-sends ' +
        'it on the next channel.',
    }),
    ApiHeader({ name: 'X-OTP-Signature', required: true }),
    ApiBody({
      required: true,
      schema: {
        type: 'object',
        required: ['requestId', 'channel', 'status'],
        additionalProperties: false,
        properties: {
          requestId: { type: 'string', format: 'uuid' },
          channel: { type: 'string', enum: ['sms', 'voice', 'email', 'push'] },
          status: {
            type: 'string',
            enum: ['queued', 'sent', 'delivered', 'undelivered', 'failed'],
          },
          errorCode: { type: 'string' },
        },
      },
    }),
    ApiResponse({ status: 204, description: 'Accepted (an unknown message changes nothing).' }),
    ApiOtpReceiptErrors(),
  );
