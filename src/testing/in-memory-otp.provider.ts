import type { OtpMessage, OtpProvider } from '../otp/delivery/otp-provider.interface.js';
import type { OtpChannel } from '../otp/otp.types.js';

/**
 * A delivery provider for a host's own tests: it keeps every message in memory, so a test can read
 * the code a real send produced and drive the whole flow (send, verify, a guarded route) over HTTP.
 * Never use it outside tests: it holds plain codes.
 *
 * ```ts
 * const otp = new InMemoryOtpProvider();
 * OtpModule.forRoot({ providers: [otp] });
 * // ... POST /otp/send, then:
 * const code = otp.lastCode('ada@example.com');
 * ```
 */
export class InMemoryOtpProvider implements OtpProvider {
  readonly name = 'in-memory';
  /** Every message delivered, oldest first. */
  readonly messages: OtpMessage[] = [];
  /** Channels whose deliveries fail, to test fallback and `OTP_DELIVERY_FAILED`. */
  readonly failing = new Set<OtpChannel>();

  constructor(private readonly channels: readonly OtpChannel[] = ['sms', 'voice', 'email']) {}

  supports(channel: OtpChannel): boolean {
    return this.channels.includes(channel);
  }

  deliver(message: OtpMessage): Promise<void> {
    if (this.failing.has(message.channel)) {
      return Promise.reject(new Error(`${message.channel} is set to fail`));
    }
    this.messages.push(message);
    return Promise.resolve();
  }

  /** The newest message to a destination (normalized: E.164 phone, lowercased email), if any. */
  lastMessage(destination: string): OtpMessage | undefined {
    return this.messages.findLast((m) => m.destination === destination);
  }

  /** The newest code sent to a destination; throws when none was. */
  lastCode(destination: string): string {
    const message = this.lastMessage(destination);
    if (!message) throw new Error(`InMemoryOtpProvider: no code was sent to ${destination}`);
    return message.code;
  }

  /** Forgets every message (e.g. in `afterEach`). */
  clear(): void {
    this.messages.length = 0;
    this.failing.clear();
  }
}
