import { JsonPoster } from '../http/json-post.js';
import type { OtpChannel } from '../otp.types.js';
import type { OtpDeliveryAccepted, OtpMessage, OtpProvider } from './otp-provider.interface.js';
import {
  assertOtpWebhookSecret,
  OTP_WEBHOOK_SIGNATURE_HEADER,
  signOtpWebhookPayload,
} from './webhook-signature.js';

export interface WebhookOtpProviderOptions {
  /**
   * Signs each POST with an `X-OTP-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
   * header (the Stripe/Svix scheme), checked by the receiver with `verifyOtpWebhookSignature`.
   * At least 32 bytes; the example app reads it from `OTP_WEBHOOK_SECRET`.
   * @default undefined (unsigned)
   */
  secret?: string;
}

/**
 * POSTs each message as JSON to a URL you own (the contract's `webhook` provider). A non-2xx
 * answer, or none before the delivery timeout, is a failed delivery. With a `secret`, each body is
 * signed, so the receiver can refuse forged, altered and replayed messages.
 */
export class WebhookOtpProvider implements OtpProvider {
  readonly name = 'webhook';
  private readonly secret: string | undefined;
  /** Kept-alive `node:http` connections to the URL (cheaper a send than `fetch`). */
  private readonly poster: JsonPoster;

  constructor(
    private readonly url: string,
    options: WebhookOtpProviderOptions = {},
  ) {
    if (!/^https?:\/\//.test(url)) {
      throw new Error('WebhookOtpProvider needs an http(s) URL (set OTP_WEBHOOK_URL).');
    }
    if (options.secret !== undefined) {
      assertOtpWebhookSecret(
        options.secret,
        'WebhookOtpProvider option `secret` (OTP_WEBHOOK_SECRET)',
      );
    }
    this.secret = options.secret;
    this.poster = new JsonPoster(url);
  }

  supports(_channel: OtpChannel): boolean {
    return true;
  }

  async deliver(message: OtpMessage, signal: AbortSignal): Promise<OtpDeliveryAccepted> {
    // Encoded once: the signature covers exactly the bytes that go on the wire.
    const body = Buffer.from(
      JSON.stringify({
        requestId: message.requestId,
        channel: message.channel,
        destination: message.destination,
        purpose: message.purpose,
        code: message.code,
        message: message.text,
        expiresAt: message.expiresAt.toISOString(),
      }),
      'utf8',
    );
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.secret !== undefined) {
      headers[OTP_WEBHOOK_SIGNATURE_HEADER] = signOtpWebhookPayload(body, this.secret);
    }
    const status = await this.poster.post(body, headers, signal);
    if (status < 200 || status > 299) throw new Error(`webhook answered ${status}`);
    // A request's message on a channel is sent once, so the pair names it: the receiver reports on
    // it through POST /otp/delivery-status/webhook with `{ requestId, channel, status }`.
    return { messageId: `${message.requestId.toLowerCase()}:${message.channel}` };
  }

  close(): void {
    this.poster.close();
  }
}
