/** A way to carry a code to a person. */
export type OtpChannel = 'sms' | 'voice' | 'email';

export const OTP_CHANNELS: readonly OtpChannel[] = ['sms', 'voice', 'email'];

/** What a destination is; decides which channels can reach it. */
export type DestinationKind = 'phone' | 'email';

/** Lifecycle of one send, as the status route reports it. */
export type OtpRequestStatus =
  'pending' | 'verified' | 'expired' | 'exhausted' | 'superseded' | 'cancelled' | 'failed';

/** Outcome of delivering one send. */
export type DeliveryStatus = 'pending' | 'sent' | 'failed';

/** Purpose format from the contract. */
export const PURPOSE_PATTERN = /^[a-z][a-z0-9_.-]{0,63}$/;
