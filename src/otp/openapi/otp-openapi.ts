import { applyDecorators } from '@nestjs/common';
import { SendOtpDto } from '../dto/send-otp.dto.js';
import { VerifyOtpDto } from '../dto/verify-otp.dto.js';
import {
  OtpRequestStatusResponse,
  OtpSendResponse,
  OtpVerifyResponse,
} from './otp-openapi.models.js';
import {
  ApiBody,
  ApiHeader,
  ApiOperation,
  ApiParam,
  ApiResponse,
  ApiSecurity,
  ApiTags,
} from './swagger.js';

/**
 * The OpenAPI description of the OTP routes and of `@RequireOtp` routes. Every decorator here
 * comes from `./swagger.js`, so without `@nestjs/swagger` they all do nothing.
 */

/** The tag of the OTP routes. */
export const OTP_OPENAPI_TAG = 'otp';

/**
 * The name of the API-key security scheme `@RequireOtp` routes reference. A host registers it in
 * its document: `new DocumentBuilder().addApiKey({ type: 'apiKey', in: 'header', name:
 * 'X-OTP-Token' }, 'X-OTP-Token')`.
 */
export const OTP_TOKEN_SECURITY_SCHEME = 'X-OTP-Token';

/** Every error code of the contract (docs/http-contract.md), with when it is answered. */
const WHEN = {
  VALIDATION_FAILED:
    'malformed JSON, unknown fields, wrong types, bad destination/purpose/code/Idempotency-Key format',
  OTP_DESTINATION_NOT_ALLOWED:
    'destination refused by policy (country not allowed, premium-rate or shared-cost number)',
  OTP_CHANNEL_NOT_ALLOWED: "a channel the module, or the purpose's policy, does not send on",
  OTP_INVALID: 'wrong code, attempts left (`attemptsRemaining`)',
  OTP_TOKEN_INVALID: 'missing, unknown, used, expired or wrong-purpose `X-OTP-Token`',
  OTP_REQUEST_NOT_FOUND:
    'unknown or malformed request id (cancel: also a request already finished or cancelled)',
  OTP_EXPIRED: 'no active code: never sent, expired, superseded or already used',
  PAYLOAD_TOO_LARGE: 'body over the limit (default 16 KiB)',
  IDEMPOTENCY_KEY_REUSED: 'an `Idempotency-Key` already used within 24 h with another request',
  OTP_RESEND_COOLDOWN: 'a send before the resend cooldown has passed',
  OTP_LOCKED: 'a send during a progressive lockout (after exhausted codes)',
  OTP_SEND_LIMIT: 'hourly or daily send cap for the destination reached',
  OTP_ATTEMPTS_EXCEEDED: 'wrong code that used the last attempt, or code already exhausted',
  OTP_HARD_LOCKED:
    'hard lockout (off by default): sends stop until unlocked or the lock ends (`retryAfter` then)',
  OTP_CHALLENGE_REQUIRED:
    'challenge escalation (off by default): a `challenge` is needed, or the one given was refused',
  RATE_LIMITED: 'per-IP throttling',
  OTP_DELIVERY_FAILED: 'every channel in the fallback chain failed; no active code is left behind',
  SERVICE_UNAVAILABLE: 'the database (or a shared throttle storage) cannot be reached',
  OTP_RECEIPT_FORBIDDEN: 'a delivery receipt without a valid signature; nothing changes',
} as const;

/** An error code of the contract. */
export type OtpErrorCode = keyof typeof WHEN;

/** The error codes a route can answer, by HTTP status. */
export type OtpRouteErrors = Readonly<Record<number, readonly OtpErrorCode[]>>;

/**
 * Which codes each route answers: the contract's error tables, split by route. Every OTP route is
 * throttled (`RATE_LIMITED`) and needs the database (`SERVICE_UNAVAILABLE`); the POST routes read a
 * body (`VALIDATION_FAILED`, `PAYLOAD_TOO_LARGE`).
 */
export const OTP_ROUTE_ERRORS = {
  send: {
    400: ['VALIDATION_FAILED', 'OTP_DESTINATION_NOT_ALLOWED', 'OTP_CHANNEL_NOT_ALLOWED'],
    413: ['PAYLOAD_TOO_LARGE'],
    422: ['IDEMPOTENCY_KEY_REUSED'],
    423: ['OTP_HARD_LOCKED'],
    428: ['OTP_CHALLENGE_REQUIRED'],
    429: ['OTP_RESEND_COOLDOWN', 'OTP_LOCKED', 'OTP_SEND_LIMIT', 'RATE_LIMITED'],
    503: ['OTP_DELIVERY_FAILED', 'SERVICE_UNAVAILABLE'],
  },
  verify: {
    400: ['VALIDATION_FAILED', 'OTP_DESTINATION_NOT_ALLOWED'],
    401: ['OTP_INVALID'],
    410: ['OTP_EXPIRED'],
    413: ['PAYLOAD_TOO_LARGE'],
    428: ['OTP_CHALLENGE_REQUIRED'],
    429: ['OTP_ATTEMPTS_EXCEEDED', 'RATE_LIMITED'],
    503: ['SERVICE_UNAVAILABLE'],
  },
  status: {
    404: ['OTP_REQUEST_NOT_FOUND'],
    429: ['RATE_LIMITED'],
    503: ['SERVICE_UNAVAILABLE'],
  },
  cancel: {
    404: ['OTP_REQUEST_NOT_FOUND'],
    429: ['RATE_LIMITED'],
    503: ['SERVICE_UNAVAILABLE'],
  },
  guarded: {
    401: ['OTP_TOKEN_INVALID'],
    503: ['SERVICE_UNAVAILABLE'],
  },
  // Not throttled per IP: Twilio posts every callback from a few addresses.
  receipt: {
    400: ['VALIDATION_FAILED'],
    403: ['OTP_RECEIPT_FORBIDDEN'],
    413: ['PAYLOAD_TOO_LARGE'],
    503: ['SERVICE_UNAVAILABLE'],
  },
} as const satisfies Record<string, OtpRouteErrors>;

/** Codes whose body carries `retryAfter` (and a `Retry-After` header): every 429, and this 503. */
const RETRYABLE: readonly OtpErrorCode[] = ['SERVICE_UNAVAILABLE', 'OTP_HARD_LOCKED'];

const RETRY_AFTER = {
  type: 'integer',
  minimum: 1,
  description: 'Seconds to wait before trying again (whole seconds, >= 1).',
} as const;

/** The contract's error body, `{ statusCode, code, message, ... }`, narrowed to one status. */
function errorSchema(status: number, codes: readonly OtpErrorCode[]): Record<string, unknown> {
  const retryable = status === 429 || codes.some((code) => RETRYABLE.includes(code));
  const properties: Record<string, unknown> = {
    statusCode: { type: 'integer', enum: [status], example: status },
    code: { type: 'string', enum: [...codes], example: codes[0] },
    message: {
      oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }],
      description: 'What went wrong, for people; clients branch on `code`.',
    },
  };
  const required = ['statusCode', 'code', 'message'];
  if (retryable) {
    properties.retryAfter = RETRY_AFTER;
    if (status === 429) required.push('retryAfter');
  }
  if (codes.includes('OTP_INVALID')) {
    properties.attemptsRemaining = { type: 'integer', minimum: 1 };
    required.push('attemptsRemaining');
  }
  if (codes.includes('OTP_INVALID') || codes.includes('OTP_CHALLENGE_REQUIRED')) {
    properties.challengeRequired = {
      type: 'boolean',
      enum: [true],
      description: 'The next call for this destination needs a `challenge`.',
    };
  }
  if (codes.includes('OTP_EXPIRED')) {
    properties.resent = {
      type: 'boolean',
      enum: [true],
      description:
        "Auto-resend (per purpose, off by default) sent a new code; the new request's fields " +
        '(`requestId`, `expiresAt`, ... as the send answers them) come with it.',
    };
  }
  return { type: 'object', required, properties };
}

/** One error response per status a route can answer, each listing its codes. */
function errorResponses(errors: OtpRouteErrors): MethodDecorator & ClassDecorator {
  return applyDecorators(
    ...Object.entries(errors).map(([key, codes]) => {
      const status = Number(key);
      const retryable = status === 429 || codes.some((code) => RETRYABLE.includes(code));
      return ApiResponse({
        status,
        description: codes.map((code) => `\`${code}\`: ${WHEN[code]}`).join('; '),
        schema: errorSchema(status, codes),
        ...(retryable && {
          headers: {
            'Retry-After': {
              description: `Same as \`retryAfter\`${status === 429 ? '' : ' (when present)'}.`,
              required: status === 429,
              schema: { type: 'integer', minimum: 1 },
            },
          },
        }),
      });
    }),
  );
}

/** On the OTP controller. */
export const ApiOtpController = (): ClassDecorator => applyDecorators(ApiTags(OTP_OPENAPI_TAG));

/** `POST /otp/send`. */
export const ApiOtpSend = (): MethodDecorator =>
  applyDecorators(
    ApiOperation({
      operationId: 'otpSend',
      summary: 'Send a code',
      description:
        'Sends a one-time code to an email address or phone number. A new send supersedes every ' +
        'earlier active code for the same destination and purpose.',
    }),
    ApiBody({
      type: SendOtpDto,
      examples: {
        email: { summary: 'By email', value: { destination: 'ada@example.com' } },
        sms: {
          summary: 'By SMS, for a purpose',
          value: { destination: '+14155552671', channel: 'sms', purpose: 'login' },
        },
      },
    }),
    ApiHeader({
      name: 'idempotency-key',
      required: false,
      description:
        '`Idempotency-Key`: the same key with the same request within 24 h returns the first response again and ' +
        'sends nothing; with another request it is a 422 `IDEMPOTENCY_KEY_REUSED`.',
      schema: { type: 'string', pattern: '^[\\x20-\\x7e]{1,255}$', minLength: 1, maxLength: 255 },
    }),
    ApiHeader({
      name: 'accept-language',
      required: false,
      description:
        "`Accept-Language`: the message's language, among the configured locales; English otherwise.",
      schema: { type: 'string', example: 'en' },
    }),
    ApiResponse({
      status: 202,
      description: 'The code was sent.',
      type: OtpSendResponse,
    }),
    errorResponses(OTP_ROUTE_ERRORS.send),
  );

/** `POST /otp/verify`. */
export const ApiOtpVerify = (): MethodDecorator =>
  applyDecorators(
    ApiOperation({
      operationId: 'otpVerify',
      summary: 'Verify a code',
      description:
        'Checks a code; a correct one answers a verification token for `X-OTP-Token`. A code ' +
        'verifies only for its own purpose.',
    }),
    ApiBody({
      type: VerifyOtpDto,
      examples: {
        login: {
          summary: 'A code sent for login',
          value: { destination: 'ada@example.com', code: '123456' },
        },
      },
    }),
    ApiResponse({ status: 200, description: 'The code was correct.', type: OtpVerifyResponse }),
    errorResponses(OTP_ROUTE_ERRORS.verify),
  );

/** `GET /otp/requests/:requestId`. */
export const ApiOtpStatus = (): MethodDecorator =>
  applyDecorators(
    ApiOperation({
      operationId: 'otpStatus',
      summary: "A send's state",
      description: 'Never includes the code or its hash.',
    }),
    ApiParam({
      name: 'requestId',
      description: 'The `requestId` a send answered (matched case-insensitively).',
      schema: { type: 'string', format: 'uuid' },
    }),
    ApiResponse({ status: 200, description: 'The request.', type: OtpRequestStatusResponse }),
    errorResponses(OTP_ROUTE_ERRORS.status),
  );

/** `POST /otp/requests/:requestId/cancel`. */
export const ApiOtpCancel = (): MethodDecorator =>
  applyDecorators(
    ApiOperation({
      operationId: 'otpCancel',
      summary: 'Cancel a send',
      description:
        'The code stops verifying at once. A cancelled send starts no resend cooldown; it still ' +
        'counts toward the send caps.',
    }),
    ApiParam({
      name: 'requestId',
      description: 'The `requestId` a send answered.',
      schema: { type: 'string', format: 'uuid' },
    }),
    ApiResponse({ status: 204, description: 'The request was active and is now cancelled.' }),
    errorResponses(OTP_ROUTE_ERRORS.cancel),
  );

/** A route guarded by `@RequireOtp`: the `X-OTP-Token` scheme and the guard's errors. */
export const ApiOtpGuarded = (): MethodDecorator & ClassDecorator =>
  applyDecorators(ApiSecurity(OTP_TOKEN_SECURITY_SCHEME), errorResponses(OTP_ROUTE_ERRORS.guarded));

/** `POST /otp/delivery-status/twilio` and `/webhook`: the receipts' errors (see ./otp-openapi.receipts.ts). */
export const ApiOtpReceiptErrors = (): MethodDecorator => errorResponses(OTP_ROUTE_ERRORS.receipt);
