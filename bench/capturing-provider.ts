import type { OtpMessage, OtpProvider } from '../src/otp/delivery/otp-provider.interface.js';

/** Destinations starting with this are refused, to exercise the failed-delivery path. */
export const FAILING_PREFIX = 'fail-';

/**
 * Carries every message by keeping its code until the bench takes it, so verify requests can use
 * real codes. Codes are handed over and forgotten (`take`), so the app process does not grow with
 * every destination the bench has used (its RSS is one of the figures).
 */
export class CapturingProvider implements OtpProvider {
  readonly name = 'bench-capture';
  private fresh: [destination: string, code: string][] = [];

  supports(): boolean {
    return true;
  }

  deliver(message: OtpMessage): Promise<void> {
    if (message.destination.startsWith(FAILING_PREFIX)) {
      return Promise.reject(new Error('bench: delivery refused'));
    }
    this.fresh.push([message.destination, message.code]);
    return Promise.resolve();
  }

  /** Every code delivered since the last call, oldest first. */
  take(): [destination: string, code: string][] {
    const taken = this.fresh;
    this.fresh = [];
    return taken;
  }
}
