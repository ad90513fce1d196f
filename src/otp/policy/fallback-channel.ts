import type { OtpChannel } from '../otp.types.js';
import type { SendHistoryEntry } from './send-policy.js';

/** Sends on one channel in a flow after which a UI may offer the next one ("call me instead"). */
export const SENDS_BEFORE_FALLBACK_OFFER = 2;

/**
 * The channel a UI may offer next for a flow (the sends of a destination and purpose since its last
 * successful verify): once `SENDS_BEFORE_FALLBACK_OFFER` of them went out on `channel` (the send just
 * made included, in `entries`), the first channel of its fallback chain that is enabled; else none.
 */
export function fallbackChannelFor(
  entries: readonly SendHistoryEntry[],
  purpose: string,
  channel: OtpChannel,
  chain: Partial<Record<OtpChannel, readonly OtpChannel[]>>,
  enabled: readonly OtpChannel[],
): OtpChannel | undefined {
  const flow = entries.filter((e) => e.purpose === purpose);
  const lastVerified = Math.max(0, ...flow.map((e) => e.verifiedAt?.getTime() ?? 0));
  const sameChannel = flow.filter(
    (e) =>
      e.channel === channel &&
      e.deliveryStatus !== 'failed' &&
      e.verifiedAt === null &&
      e.createdAt.getTime() > lastVerified,
  ).length;
  if (sameChannel < SENDS_BEFORE_FALLBACK_OFFER) return undefined;
  return (chain[channel] ?? []).find((next) => next !== channel && enabled.includes(next));
}
