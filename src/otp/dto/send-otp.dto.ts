import { IsIn, IsNotEmpty, IsString, Matches, MaxLength } from 'class-validator';
import { IsAbsentOr } from './is-absent-or.decorator.js';
import { ApiProperty, ApiPropertyOptional } from '../openapi/swagger.js';
import { OTP_CHANNELS, PURPOSE_PATTERN, type OtpChannel } from '../otp.types.js';

/** Body of `POST /otp/send`. */
export class SendOtpDto {
  /** Email address or phone number (E.164, or national in the default region). */
  @ApiProperty({
    description:
      'An email address, or a phone number (E.164, or national in the configured default region).',
    maxLength: 254,
    example: 'ada@example.com',
  })
  @IsString()
  @IsNotEmpty()
  @MaxLength(254)
  destination!: string;

  /** `sms`, `voice` or `email`; default `email` for an email address, `sms` for a phone. */
  @ApiPropertyOptional({
    enum: [...OTP_CHANNELS],
    description: 'Default `email` for an email address, `sms` for a phone.',
  })
  @IsAbsentOr()
  @IsIn(OTP_CHANNELS)
  channel?: OtpChannel;

  /** What the code is for; default `login`. */
  @ApiPropertyOptional({
    description: 'What the code is for; a code verifies only for its own purpose.',
    pattern: PURPOSE_PATTERN.source,
    default: 'login',
    example: 'login',
  })
  @IsAbsentOr()
  @IsString()
  @Matches(PURPOSE_PATTERN)
  purpose?: string;

  /** A challenge token (CAPTCHA response), needed once challenge escalation applies. */
  @ApiPropertyOptional({
    description:
      'A challenge token (e.g. a CAPTCHA response), needed once a destination drew too many failed ' +
      'verifies (challenge escalation, off by default); without it: 428 `OTP_CHALLENGE_REQUIRED`.',
    maxLength: 4096,
  })
  @IsAbsentOr()
  @IsString()
  @MaxLength(4096)
  challenge?: string;
}

/** What `OtpService.send` takes: the body, and the request's `Idempotency-Key` if any. */
export class SendOtpInputDto extends SendOtpDto {
  /** 1-255 printable ASCII characters. */
  @IsAbsentOr()
  @IsString()
  @Matches(/^[\x20-\x7e]{1,255}$/, {
    message: 'Idempotency-Key must be 1-255 printable ASCII characters',
  })
  idempotencyKey?: string;

  /** The account's email to fall back to after every phone channel (server-side only). */
  @IsAbsentOr()
  @IsString()
  @MaxLength(254)
  fallbackEmail?: string;

  /** Locale of the message's texts (a key of the `messages` option); English when unknown. */
  @IsAbsentOr()
  @IsString()
  @Matches(/^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$/, { message: 'locale must be a BCP 47 tag' })
  locale?: string;

  /** The host's account id (server-side only): per-account limits across its destinations. */
  @IsAbsentOr()
  @IsString()
  @IsNotEmpty()
  @MaxLength(255)
  subject?: string;
}
