import { IsNotEmpty, IsString, Matches, MaxLength } from 'class-validator';
import { IsAbsentOr } from './is-absent-or.decorator.js';
import { ApiProperty, ApiPropertyOptional } from '../openapi/swagger.js';
import { PURPOSE_PATTERN } from '../otp.types.js';

/** Digits only; the exact length is checked against the configured code length. */
const CODE_PATTERN = /^[0-9]{4,10}$/;

/** Body of `POST /otp/verify`. */
export class VerifyOtpDto {
  @ApiProperty({
    description: 'The destination the code was sent to, as it was given to the send.',
    maxLength: 254,
    example: 'ada@example.com',
  })
  @IsString()
  @IsNotEmpty()
  @MaxLength(254)
  destination!: string;

  /** ASCII digits only; the exact length is checked against the configured code length. */
  @ApiProperty({
    description:
      'ASCII digits 0-9, exactly the configured length (`codeLength` of the send, default 6), ' +
      'no spaces; anything else is a 400 `VALIDATION_FAILED` and uses no attempt.',
    pattern: CODE_PATTERN.source,
    example: '123456',
  })
  @IsString()
  @Matches(CODE_PATTERN, { message: 'code must be 4-10 digits 0-9' })
  code!: string;

  @ApiPropertyOptional({
    description: 'The purpose the code was sent for.',
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

/** What `OtpService.verify` takes: the body, and the account (server-side only) if any. */
export class VerifyOtpInputDto extends VerifyOtpDto {
  /** The host's account id: the guess budget across its destinations; a code sent for it only. */
  @IsAbsentOr()
  @IsString()
  @IsNotEmpty()
  @MaxLength(255)
  subject?: string;
}
