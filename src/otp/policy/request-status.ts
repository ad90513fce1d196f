import type { DeliveryStatus, OtpRequestStatus } from '../otp.types.js';

export interface RequestLifecycle {
  deliveryStatus: DeliveryStatus;
  expiresAt: Date;
  verifiedAt: Date | null;
  exhaustedAt: Date | null;
  supersededAt: Date | null;
  cancelledAt?: Date | null;
  attemptsUsed: number;
  maxAttempts: number;
}

/** The status the status route reports, derived from the row's timestamps and the clock. */
export function requestStatus(row: RequestLifecycle, now: Date): OtpRequestStatus {
  if (row.verifiedAt) return 'verified';
  if (row.deliveryStatus === 'failed') return 'failed';
  if (row.exhaustedAt || row.attemptsUsed >= row.maxAttempts) return 'exhausted';
  if (row.cancelledAt) return 'cancelled';
  // A code replaced after it expired ended by expiring: a send supersedes only a code still live,
  // and an expired one keeps its hash until swept, so the label must not depend on the sweep.
  if (row.supersededAt && row.supersededAt < row.expiresAt) return 'superseded';
  if (row.expiresAt <= now) return 'expired';
  return 'pending';
}

/** Attempts left on a code: none once it can no longer verify. */
export function attemptsRemaining(row: RequestLifecycle, now: Date): number {
  return requestStatus(row, now) === 'pending'
    ? Math.max(0, row.maxAttempts - row.attemptsUsed)
    : 0;
}
