import { IsIn, IsNotEmpty, IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import { OTP_CHANNELS, PURPOSE_PATTERN, type OtpChannel } from '../otp.types.js';

export class SendOtpDto {
  /** Email address or phone number (E.164, or national in the default region). */
  @IsString()
  @IsNotEmpty()
  @MaxLength(254)
  destination!: string;

  @IsOptional()
  @IsIn(OTP_CHANNELS)
  channel?: OtpChannel;

  @IsOptional()
  @IsString()
  @Matches(PURPOSE_PATTERN)
  purpose?: string;
}
