import { IsIn, IsNotEmpty, IsString, Matches, MaxLength } from 'class-validator';
import { IsAbsentOr } from './is-absent-or.decorator.js';
import { OTP_CHANNELS, PURPOSE_PATTERN, type OtpChannel } from '../otp.types.js';

export class SendOtpDto {
  /** Email address or phone number (E.164, or national in the default region). */
  @IsString()
  @IsNotEmpty()
  @MaxLength(254)
  destination!: string;

  @IsAbsentOr()
  @IsIn(OTP_CHANNELS)
  channel?: OtpChannel;

  @IsAbsentOr()
  @IsString()
  @Matches(PURPOSE_PATTERN)
  purpose?: string;
}
