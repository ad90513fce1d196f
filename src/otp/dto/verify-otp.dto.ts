import { IsNotEmpty, IsString, Matches, MaxLength } from 'class-validator';
import { IsAbsentOr } from './is-absent-or.decorator.js';
import { PURPOSE_PATTERN } from '../otp.types.js';

export class VerifyOtpDto {
  @IsString()
  @IsNotEmpty()
  @MaxLength(254)
  destination!: string;

  /** ASCII digits only; the exact length is checked against the configured code length. */
  @IsString()
  @Matches(/^[0-9]{4,10}$/, { message: 'code must be 4-10 digits 0-9' })
  code!: string;

  @IsAbsentOr()
  @IsString()
  @Matches(PURPOSE_PATTERN)
  purpose?: string;
}
