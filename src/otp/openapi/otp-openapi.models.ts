import { OTP_CHANNELS, type OtpChannel, type OtpRequestStatus } from '../otp.types.js';
import type {
  OtpDeliveryView,
  OtpRequestView,
  SendOtpResult,
  VerifyOtpResult,
} from '../otp.service.js';
import { ApiProperty, ApiPropertyOptional } from './swagger.js';

/**
 * The OTP routes' answers as classes, for the OpenAPI document only (the service returns plain
 * objects). Each `implements Required<...>` its service type, so a field added there and not here
 * fails to compile. Names start with `Otp` so they do not collide with a host's own schemas.
 */

const CHANNEL = { enum: [...OTP_CHANNELS] } as const;

// A record, so a status added to `OtpRequestStatus` and not here fails to compile.
const STATUSES: Record<OtpRequestStatus, true> = {
  pending: true,
  verified: true,
  expired: true,
  exhausted: true,
  superseded: true,
  cancelled: true,
  failed: true,
};

const EXAMPLE_REQUEST_ID = '4f6c2a9e-8d1b-4c7a-9e3f-2b5d8a1c6e07';

export class OtpSendResponse implements Required<SendOtpResult> {
  @ApiProperty({ format: 'uuid', example: EXAMPLE_REQUEST_ID })
  requestId!: string;

  @ApiProperty({ description: 'The destination, masked.', example: 'a•••@example.com' })
  destination!: string;

  @ApiProperty({
    ...CHANNEL,
    description: 'The channel that carried the code (an SMS that failed may fall back to voice).',
    example: 'email',
  })
  channel!: OtpChannel;

  @ApiProperty({ example: 'login' })
  purpose!: string;

  @ApiProperty({ type: String, format: 'date-time', example: '2030-01-01T12:05:00.000Z' })
  expiresAt!: Date;

  @ApiProperty({ type: 'integer', description: "The purpose's code lifetime.", example: 300 })
  ttlSeconds!: number;

  @ApiProperty({ type: 'integer', example: 6 })
  codeLength!: number;

  @ApiProperty({ type: 'integer', example: 3 })
  attemptsAllowed!: number;

  @ApiPropertyOptional({
    enum: [true],
    description:
      'Present when the next call for this destination needs a `challenge` (challenge escalation).',
    example: true,
  })
  challengeRequired!: true;

  @ApiProperty({
    type: String,
    format: 'date-time',
    description: 'When a new code may be requested for this destination and purpose.',
    example: '2030-01-01T12:00:30.000Z',
  })
  resendAvailableAt!: Date;

  @ApiPropertyOptional({
    ...CHANNEL,
    description:
      'The channel a UI may offer next ("call me instead"), once two sends of the flow went out ' +
      'on this one; absent before that, and when the chain has no next channel.',
    example: 'voice',
  })
  fallbackChannel!: OtpChannel;
}

export class OtpVerifyResponse implements Required<VerifyOtpResult> {
  @ApiProperty({ enum: [true], example: true })
  verified!: true;

  @ApiProperty({
    description:
      'Send it as `X-OTP-Token` to a route guarded by `@RequireOtp` for the same purpose; it ' +
      'passes the guard once.',
    example: 'b1mQk0pJ8xT3v9cYz2fWqLh7sN4aRdUe6oGiKjXyZ5A',
  })
  verificationToken!: string;

  @ApiProperty({ type: String, format: 'date-time', example: '2030-01-01T12:10:00.000Z' })
  tokenExpiresAt!: Date;
}

export class OtpDeliveryAttemptResponse implements Required<OtpDeliveryView> {
  @ApiProperty({ ...CHANNEL, example: 'sms' })
  channel!: OtpChannel;

  @ApiProperty({ description: "The provider's name.", example: 'twilio' })
  provider!: string;

  @ApiProperty({ description: 'Where it went, masked.', example: '+1•••••••0100' })
  destination!: string;

  @ApiProperty({
    enum: ['queued', 'sent', 'delivered', 'undelivered', 'failed'],
    description: 'As the provider last reported it.',
    example: 'delivered',
  })
  status!: string;

  @ApiProperty({
    enum: ['send', 'receipt', 'silence'],
    description: 'The send itself, a failure receipt, or silence (`fallbackAfterSeconds`).',
    example: 'send',
  })
  cause!: string;

  @ApiProperty({ type: String, format: 'date-time', example: '2030-01-01T12:00:00.000Z' })
  at!: Date;

  @ApiProperty({ type: String, format: 'date-time', example: '2030-01-01T12:00:02.000Z' })
  statusAt!: Date;
}

export class OtpRequestStatusResponse implements Required<OtpRequestView> {
  @ApiProperty({ format: 'uuid', example: EXAMPLE_REQUEST_ID })
  requestId!: string;

  @ApiProperty({ description: 'The destination, masked.', example: 'a•••@example.com' })
  destination!: string;

  @ApiProperty({ ...CHANNEL, example: 'email' })
  channel!: OtpChannel;

  @ApiProperty({ example: 'login' })
  purpose!: string;

  @ApiProperty({
    enum: Object.keys(STATUSES),
    example: 'pending',
  })
  status!: OtpRequestStatus;

  @ApiProperty({ type: String, format: 'date-time', example: '2030-01-01T12:05:00.000Z' })
  expiresAt!: Date;

  @ApiProperty({ type: 'integer', example: 3 })
  attemptsRemaining!: number;

  @ApiProperty({ type: String, format: 'date-time', example: '2030-01-01T12:00:30.000Z' })
  resendAvailableAt!: Date;

  @ApiProperty({ type: 'integer', description: "The code's lifetime.", example: 300 })
  ttlSeconds!: number;

  @ApiProperty({ type: 'integer', example: 6 })
  codeLength!: number;

  @ApiProperty({ type: 'integer', example: 3 })
  attemptsAllowed!: number;

  @ApiProperty({
    type: () => [OtpDeliveryAttemptResponse],
    description: 'Each delivery attempt, oldest first (masked; no message ids).',
  })
  deliveries!: OtpDeliveryView[];
}
