import type { OtpChannel } from '../otp.types.js';

/** One message to carry: the only object in the module that holds a plain code. */
export interface OtpMessage {
  requestId: string;
  channel: OtpChannel;
  /** Normalized destination (E.164 phone or lowercased email). */
  destination: string;
  purpose: string;
  code: string;
  /** The plain text: an SMS's body, an email's text part, a voice call's script written out. */
  text: string;
  /** Email: the subject line, code first. */
  subject: string;
  /** Email: a small HTML part, code large and first (every interpolated text HTML-escaped). */
  html: string;
  /** Voice: what to say, phrase by phrase, a pause between them (the digits one by one, twice). */
  speech: string[];
  /** The app name the texts use, e.g. for an email's sender name. */
  appName: string;
  /** The locale the texts are in when not English (e.g. a voice's language). */
  locale?: string;
  expiresAt: Date;
}

/** What a provider may report when it accepted a message. */
export interface OtpDeliveryAccepted {
  /** The provider's id of the message (at most 128 characters), named by its delivery receipts. */
  messageId?: string;
}

/**
 * An adapter that carries messages on one or more channels (an SMS gateway, a mailer, a webhook).
 * `deliver` resolves once the provider accepted the message and rejects otherwise; it must honour
 * `signal`, which aborts when the delivery timeout passes. It must never log `message.code`.
 */
export interface OtpProvider {
  /** Short name for logs and metrics, e.g. `'twilio'`. */
  readonly name: string;
  supports(channel: OtpChannel): boolean;
  /**
   * Resolves once the provider accepted the message, optionally with its id for the message
   * (`{ messageId }`, e.g. Twilio's `SM…` sid), which a later delivery receipt names.
   */
  deliver(message: OtpMessage, signal: AbortSignal): Promise<void | OtpDeliveryAccepted>;
  /**
   * Called once at start: rejects when the provider cannot work (its optional package is missing,
   * say), which stops the app with that message instead of failing the first send.
   */
  ready?(): Promise<void>;
  /** Called once at shutdown: closes what the provider opened (pooled connections). */
  close?(): void | Promise<void>;
}
