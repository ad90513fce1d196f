import { isEmail } from 'class-validator';
import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js/max';
import { DestinationNotAllowedError, ValidationFailedError } from '../errors/otp.errors.js';
import type { DestinationKind, OtpChannel } from '../otp.types.js';

/** A destination after normalization: the only form ever stored or compared. */
export interface Destination {
  kind: DestinationKind;
  /** E.164 for phones, trimmed and lowercased for emails. */
  value: string;
}

export interface DestinationRules {
  defaultRegion: CountryCode;
  allowedCountries?: readonly CountryCode[];
  /** Number types refused, `'UNKNOWN'` for a number of no known type. Default: the costly ones. */
  refusedNumberTypes?: readonly string[];
}

/** Costly or unreachable number types: the ones SMS pumping uses to bill you. */
export const DEFAULT_REFUSED_NUMBER_TYPES = [
  'PREMIUM_RATE',
  'SHARED_COST',
  'UAN',
  'PAGER',
  'VOICEMAIL',
  'UNKNOWN',
] as const;

const MAX_EMAIL_LENGTH = 254;
// Control characters and invisible format characters (RTL/LTR marks, zero-width joiners...):
// they let two different strings look the same to a person.
const INVISIBLE_OR_CONTROL = /[\p{Cc}\p{Cf}]/u;
// Half of a surrogate pair (a JSON body may escape one alone): no character at all, and
// validator.js's isEmail throws on it (encodeURI) instead of answering.
const UNPAIRED_SURROGATE = /\p{Cs}/u;
// What a person may type in a phone number; anything else (letters, "ext.") is refused.
const PHONE_CHARACTERS = /^\+?[0-9 ().-]{4,32}$/;

/**
 * Normalizes and checks a destination: phones to E.164 (libphonenumber-js, national numbers in the
 * default region), emails trimmed and lowercased. Invalid input is a `VALIDATION_FAILED`; a valid
 * destination the policy refuses (country not allowed, a refused number type such as premium rate)
 * is `OTP_DESTINATION_NOT_ALLOWED`.
 */
export function normalizeDestination(raw: string, rules: DestinationRules): Destination {
  if (INVISIBLE_OR_CONTROL.test(raw)) {
    throw new ValidationFailedError(['destination contains control or invisible characters']);
  }
  if (UNPAIRED_SURROGATE.test(raw)) {
    throw new ValidationFailedError(['destination contains half of a surrogate pair']);
  }
  const trimmed = raw.trim();
  if (trimmed.includes('@')) {
    const email = trimmed.toLowerCase();
    if (email.length > MAX_EMAIL_LENGTH || /\s/.test(email) || !isEmail(email)) {
      throw new ValidationFailedError(['destination must be an email address or a phone number']);
    }
    return { kind: 'email', value: email };
  }
  if (!PHONE_CHARACTERS.test(trimmed)) {
    throw new ValidationFailedError(['destination must be an email address or a phone number']);
  }
  const phone = parsePhoneNumberFromString(trimmed, rules.defaultRegion);
  if (!phone || !phone.isValid()) {
    throw new ValidationFailedError(['destination must be a valid phone number']);
  }
  const country = phone.country;
  if (rules.allowedCountries && (!country || !rules.allowedCountries.includes(country))) {
    throw new DestinationNotAllowedError();
  }
  const refused: readonly string[] = rules.refusedNumberTypes ?? DEFAULT_REFUSED_NUMBER_TYPES;
  if (refused.includes(phone.getType() ?? 'UNKNOWN')) {
    throw new DestinationNotAllowedError();
  }
  return { kind: 'phone', value: phone.number };
}

/** The channel a send uses when the request names none, and whether a named one fits. */
export function resolveChannel(destination: Destination, requested?: OtpChannel): OtpChannel {
  const channel = requested ?? (destination.kind === 'email' ? 'email' : 'sms');
  if (!channelFits(destination.kind, channel)) {
    throw new ValidationFailedError([
      destination.kind === 'email'
        ? 'channel must be email or push for an email address'
        : 'channel must be sms, voice or push for a phone number',
    ]);
  }
  return channel;
}

/**
 * Whether `channel` can reach a destination of `kind`: email only an address, SMS and voice only a
 * phone, push (the host's app, which knows the account behind either) both.
 */
export function channelFits(kind: DestinationKind, channel: OtpChannel): boolean {
  if (channel === 'push') return true;
  return kind === 'email' ? channel === 'email' : channel !== 'email';
}

/** The destination as responses show it: enough to recognise, not enough to harvest. */
export function maskDestination(value: string): string {
  const at = value.lastIndexOf('@');
  if (at > 0) return `${value[0]}•••${value.slice(at)}`;
  const phone = parsePhoneNumberFromString(value);
  const countryCode = phone ? `+${phone.countryCallingCode}` : '+';
  const national = phone ? phone.nationalNumber : value.replace(/^\+/, '');
  return `${countryCode}${'•'.repeat(Math.max(0, national.length - 2))}${national.slice(-2)}`;
}
