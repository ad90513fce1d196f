import type { OtpChannel } from '../otp.types.js';
import type { OtpMessage, OtpProvider } from './otp-provider.interface.js';

/**
 * POSTs each message as JSON to a URL you own (the contract's `webhook` provider). A non-2xx
 * answer, or none before the delivery timeout, is a failed delivery.
 */
export class WebhookOtpProvider implements OtpProvider {
  readonly name = 'webhook';

  constructor(private readonly url: string) {
    if (!/^https?:\/\//.test(url)) {
      throw new Error('WebhookOtpProvider needs an http(s) URL (set OTP_WEBHOOK_URL).');
    }
  }

  supports(_channel: OtpChannel): boolean {
    return true;
  }

  async deliver(message: OtpMessage, signal: AbortSignal): Promise<void> {
    const response = await fetch(this.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        requestId: message.requestId,
        channel: message.channel,
        destination: message.destination,
        purpose: message.purpose,
        code: message.code,
        message: message.text,
        expiresAt: message.expiresAt.toISOString(),
      }),
      signal,
      redirect: 'error',
    });
    // Drain the body so the connection is reused; its content is not ours to log.
    await response.arrayBuffer().catch(() => undefined);
    if (!response.ok) throw new Error(`webhook answered ${response.status}`);
  }
}
