/**
 * A way to carry a code to a person. `push` is the host's own app (FCM, APNs, a websocket): it
 * reaches the account behind an email or a phone, through a provider the host registers.
 */
export type OtpChannel = 'sms' | 'voice' | 'email' | 'push';

export const OTP_CHANNELS: readonly OtpChannel[] = ['sms', 'voice', 'email', 'push'];

/** What a destination is; decides which channels can reach it. */
export type DestinationKind = 'phone' | 'email';

/** Lifecycle of one send, as the status route reports it. */
export type OtpRequestStatus =
  'pending' | 'verified' | 'expired' | 'exhausted' | 'superseded' | 'cancelled' | 'failed';

/** Outcome of delivering one send. */
export type DeliveryStatus = 'pending' | 'sent' | 'failed';

/** Purpose format from the contract. */
export const PURPOSE_PATTERN = /^[a-z][a-z0-9_.-]{0,63}$/;
