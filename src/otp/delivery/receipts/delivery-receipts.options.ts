import type { OtpModuleOptions } from '../../otp.options.js';

/** Where delivery receipts come from; each route answers 404 unless its part is configured. */
export interface DeliveryReceiptsOptions {
  /**
   * `POST /otp/delivery-status/twilio` for Twilio's status callbacks, accepted only with a valid
   * `X-Twilio-Signature` (the twilio package's request validation with `authToken`, over
   * `publicUrl`: the route's URL exactly as Twilio calls it, the `statusCallback` given to
   * `TwilioOtpProvider`). Needs the optional peer `twilio`.
   */
  twilio?: { authToken: string; publicUrl: string };
  /**
   * `POST /otp/delivery-status/webhook` for a webhook receiver's reports, signed like the outgoing
   * webhook (`X-OTP-Signature`, this secret of at least 32 bytes, 300 s tolerance).
   */
  webhook?: { secret: string };
}

/** Whether the module keeps what a re-delivery needs: any receipt route, or a silence fallback. */
export function adaptiveDeliveryEnabled(options: OtpModuleOptions): boolean {
  const purposes = Object.values(options.purposes ?? {});
  return (
    options.deliveryReceipts !== undefined ||
    purposes.some(
      (p) => typeof p === 'object' && p !== null && typeof p.fallbackAfterSeconds === 'number',
    )
  );
}

/** The secret codes are sealed with while a re-delivery is possible. */
export function fallbackSecretOf(options: OtpModuleOptions): string | undefined {
  return options.fallbackSecret ?? options.hmacSecret;
}

/** What is wrong with the adaptive-delivery options, as `resolveOtpOptions` reports it. */
export function adaptiveDeliveryProblems(options: OtpModuleOptions): string[] {
  const problems: string[] = [];
  const receipts = options.deliveryReceipts;
  if (receipts !== undefined) {
    if (typeof receipts !== 'object' || receipts === null) {
      problems.push('deliveryReceipts must be an object ({ twilio?, webhook? })');
    } else {
      const unknown = Object.keys(receipts).filter((k) => k !== 'twilio' && k !== 'webhook');
      if (unknown.length > 0)
        problems.push(`deliveryReceipts has unknown keys ${unknown.join(', ')}`);
      const { twilio, webhook } = receipts;
      if (twilio !== undefined) {
        const ok =
          typeof twilio === 'object' &&
          twilio !== null &&
          typeof twilio.authToken === 'string' &&
          twilio.authToken.trim() !== '' &&
          typeof twilio.publicUrl === 'string' &&
          /^https?:\/\/[^\s#]+$/.test(twilio.publicUrl);
        if (!ok) {
          problems.push(
            'deliveryReceipts.twilio must be { authToken: your Twilio auth token, publicUrl: the ' +
              "route's public http(s) URL }",
          );
        }
      }
      if (webhook !== undefined) {
        if (
          typeof webhook !== 'object' ||
          webhook === null ||
          typeof webhook.secret !== 'string' ||
          Buffer.byteLength(webhook.secret) < 32
        ) {
          problems.push('deliveryReceipts.webhook must be { secret: at least 32 bytes }');
        }
      }
    }
  }
  if (options.fallbackSecret !== undefined && Buffer.byteLength(options.fallbackSecret) < 32) {
    problems.push('fallbackSecret must be at least 32 bytes');
  }
  if (adaptiveDeliveryEnabled(options) && Buffer.byteLength(fallbackSecretOf(options) ?? '') < 32) {
    problems.push(
      'deliveryReceipts and fallbackAfterSeconds seal codes for re-delivery: set fallbackSecret ' +
        '(or hmacSecret) of at least 32 bytes',
    );
  }
  if (!Number.isInteger(options.fallbackPollIntervalMs) || options.fallbackPollIntervalMs < 0) {
    problems.push('fallbackPollIntervalMs must be 0 (off) or a positive integer');
  }
  return problems;
}
