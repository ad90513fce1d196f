import type { OtpChannel } from '../otp.types.js';
import type { OtpMessage, OtpProvider } from './otp-provider.interface.js';

/**
 * Development provider: prints each message to stdout. The one place a code is ever printed, so
 * never use it in production.
 */
export class ConsoleOtpProvider implements OtpProvider {
  readonly name = 'console';

  constructor(
    private readonly write: (line: string) => void = (line) => process.stdout.write(line),
  ) {}

  supports(_channel: OtpChannel): boolean {
    return true;
  }

  deliver(message: OtpMessage): Promise<void> {
    this.write(
      `[nest-otp console] ${message.channel} to ${message.destination} (${message.purpose}): ${message.text}\n`,
    );
    return Promise.resolve();
  }
}
