import type { SendLimitCode } from '../errors/otp.errors.js';
import type { DeliveryStatus } from '../otp.types.js';

/** The longest window any rule looks back over (daily cap, lockout): history older never matters. */
export const POLICY_WINDOW_SECONDS = 86_400;
const HOUR_SECONDS = 3_600;

/** One earlier send of a destination, as far as the send policy needs it. */
export interface SendHistoryEntry {
  purpose: string;
  createdAt: Date;
  deliveryStatus: DeliveryStatus;
  verifiedAt: Date | null;
  exhaustedAt: Date | null;
}

/** The numbers the send policy applies. */
export interface SendPolicy {
  resendCooldownSeconds: readonly number[];
  lockoutStepSeconds: readonly number[];
  maxSendsPerHour: number;
  maxSendsPerDay: number;
}

/** A limit in force: what it is called and when it ends. */
export interface SendLimit {
  code: SendLimitCode;
  until: Date;
}

export type SendDecision =
  { allowed: true } | ({ allowed: false; retryAfterSeconds: number } & SendLimit);

const addSeconds = (date: Date, seconds: number): Date => new Date(date.getTime() + seconds * 1000);
const latest = (dates: Date[]): Date | null =>
  dates.length === 0 ? null : new Date(Math.max(...dates.map((d) => d.getTime())));
/** The n-th step of an escalating list (0-based); the last value repeats. */
export const step = (steps: readonly number[], index: number): number =>
  steps[Math.min(index, steps.length - 1)] ?? 0;

/** Send cap over a sliding window: if full, it opens when enough of the oldest sends age out. */
function capLimit(
  history: readonly SendHistoryEntry[],
  now: Date,
  windowSeconds: number,
  cap: number,
): SendLimit | null {
  const windowStart = now.getTime() - windowSeconds * 1000;
  const inWindow = history
    .filter((h) => h.createdAt.getTime() > windowStart)
    .map((h) => h.createdAt.getTime())
    .sort((a, b) => a - b);
  if (inWindow.length < cap) return null;
  // The send whose ageing-out brings the count below the cap.
  const opening = inWindow[inWindow.length - cap] as number;
  return { code: 'OTP_SEND_LIMIT', until: addSeconds(new Date(opening), windowSeconds) };
}

/** Resend cooldown: escalates with each delivered send of the flow (since the last verify). */
function cooldownLimit(
  history: readonly SendHistoryEntry[],
  purpose: string,
  policy: SendPolicy,
): SendLimit | null {
  const samePurpose = history.filter((h) => h.purpose === purpose);
  const lastVerified = latest(samePurpose.flatMap((h) => (h.verifiedAt ? [h.verifiedAt] : [])));
  const flow = samePurpose.filter(
    (h) => h.deliveryStatus !== 'failed' && (!lastVerified || h.createdAt > lastVerified),
  );
  const lastSend = latest(flow.map((h) => h.createdAt));
  if (!lastSend) return null;
  return {
    code: 'OTP_RESEND_COOLDOWN',
    until: addSeconds(lastSend, step(policy.resendCooldownSeconds, flow.length - 1)),
  };
}

/** Progressive lockout: escalates with each exhausted code of the destination, any purpose. */
function lockoutLimit(
  history: readonly SendHistoryEntry[],
  now: Date,
  policy: SendPolicy,
): SendLimit | null {
  const lastVerified = latest(history.flatMap((h) => (h.verifiedAt ? [h.verifiedAt] : [])));
  const windowStart = now.getTime() - POLICY_WINDOW_SECONDS * 1000;
  const exhausted = history.flatMap((h) =>
    h.exhaustedAt &&
    h.exhaustedAt.getTime() > windowStart &&
    (!lastVerified || h.exhaustedAt > lastVerified)
      ? [h.exhaustedAt]
      : [],
  );
  const lastExhausted = latest(exhausted);
  if (!lastExhausted) return null;
  return {
    code: 'OTP_LOCKED',
    until: addSeconds(lastExhausted, step(policy.lockoutStepSeconds, exhausted.length - 1)),
  };
}

/**
 * Decides whether a destination may be sent a code for `purpose` now, from its send history
 * (every send of the last 24 h, all purposes). When several limits apply, the one that ends last
 * is reported, since it is the wait the client really faces.
 */
export function evaluateSend(
  history: readonly SendHistoryEntry[],
  purpose: string,
  now: Date,
  policy: SendPolicy,
): SendDecision {
  const limits = [
    cooldownLimit(history, purpose, policy),
    lockoutLimit(history, now, policy),
    capLimit(history, now, HOUR_SECONDS, policy.maxSendsPerHour),
    capLimit(history, now, POLICY_WINDOW_SECONDS, policy.maxSendsPerDay),
  ].filter((l): l is SendLimit => l !== null && l.until > now);
  if (limits.length === 0) return { allowed: true };
  const binding = limits.reduce((a, b) => (b.until > a.until ? b : a));
  return { allowed: false, ...binding, retryAfterSeconds: secondsUntil(binding.until, now) };
}

/** Whole seconds from `now` to `until`, at least 1 (the contract's `retryAfter`). */
export function secondsUntil(until: Date, now: Date): number {
  return Math.max(1, Math.ceil((until.getTime() - now.getTime()) / 1000));
}

/** When the next send for `purpose` will be allowed: `now` if it already is. */
export function nextSendAt(
  history: readonly SendHistoryEntry[],
  purpose: string,
  now: Date,
  policy: SendPolicy,
): Date {
  const decision = evaluateSend(history, purpose, now, policy);
  return decision.allowed ? now : decision.until;
}
