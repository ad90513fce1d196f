import type { SendLimitCode } from '../errors/otp.errors.js';
import type { DeliveryStatus, OtpChannel } from '../otp.types.js';

/** The longest window any rule looks back over (daily cap, lockout): history older never matters. */
export const POLICY_WINDOW_SECONDS = 86_400;
const HOUR_SECONDS = 3_600;

/** One earlier send of a destination, as far as the send policy needs it. */
export interface SendHistoryEntry {
  purpose: string;
  /** The channel it went (or is going) out on. */
  channel?: OtpChannel;
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

/**
 * What the cap of one window needs: the creation times of the sends at positions `cap - 1` and
 * `cap`, newest first (1-based), among the sends of the window; null where there are fewer. The
 * window is full while the `cap`-th newest send is in it, and opens when that send ages out.
 */
export interface CapMarks {
  atCapMinusOne: Date | null;
  atCap: Date | null;
}

/**
 * A destination's history, as much of it as the policy reads: bounded however long the history,
 * so a decision costs the same for a destination with ten sends or ten thousand.
 * - `entries` must hold at least the newest `resendCooldownSeconds.length` delivered sends of the
 *   purpose decided on, the newest `lockoutStepSeconds.length` exhausted codes, and the newest
 *   verified code of the purpose and of the destination, from the last 24 h; any superset (such as
 *   every row) gives the same decision.
 * - `hourly` / `daily`: the cap marks of the last hour and the last 24 h.
 */
export interface SendHistory {
  entries: readonly SendHistoryEntry[];
  hourly: CapMarks;
  daily: CapMarks;
}

/** The cap marks of one window, from every send in it. */
function capMarks(
  rows: readonly SendHistoryEntry[],
  now: Date,
  windowSeconds: number,
  cap: number,
): CapMarks {
  const windowStart = now.getTime() - windowSeconds * 1000;
  const newestFirst = rows
    .filter((h) => h.createdAt.getTime() > windowStart)
    .map((h) => h.createdAt)
    .sort((a, b) => b.getTime() - a.getTime());
  return {
    atCapMinusOne: cap >= 2 ? (newestFirst[cap - 2] ?? null) : null,
    atCap: newestFirst[cap - 1] ?? null,
  };
}

/** A `SendHistory` from every row of the window (the reference the database query must match). */
export function summarizeHistory(
  rows: readonly SendHistoryEntry[],
  now: Date,
  policy: SendPolicy,
): SendHistory {
  return {
    entries: rows,
    hourly: capMarks(rows, now, HOUR_SECONDS, policy.maxSendsPerHour),
    daily: capMarks(rows, now, POLICY_WINDOW_SECONDS, policy.maxSendsPerDay),
  };
}

/**
 * The history once `sent` (a send made now) is added: the new send is the newest, so each window's
 * `cap`-th newest is the former `cap - 1`-th. Good for the one decision right after the send
 * (`resendAvailableAt`); the position before that is not known, so it is left null.
 */
export function withSend(
  history: SendHistory,
  sent: SendHistoryEntry,
  policy: SendPolicy,
): SendHistory {
  const shift = (marks: CapMarks, cap: number): CapMarks => ({
    atCapMinusOne: null,
    atCap: cap === 1 ? sent.createdAt : marks.atCapMinusOne,
  });
  return {
    entries: [...history.entries, sent],
    hourly: shift(history.hourly, policy.maxSendsPerHour),
    daily: shift(history.daily, policy.maxSendsPerDay),
  };
}

/** Send cap over a sliding window: full while the cap-th newest send is in it. */
function capLimit(marks: CapMarks, windowSeconds: number): SendLimit | null {
  return marks.atCap
    ? { code: 'OTP_SEND_LIMIT', until: addSeconds(marks.atCap, windowSeconds) }
    : null;
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
 * Decides whether a destination may be sent a code for `purpose` now, from its send history (see
 * `SendHistory` for how much of it is needed). When several limits apply, the one that ends last
 * is reported, since it is the wait the client really faces.
 */
export function evaluateSend(
  history: SendHistory,
  purpose: string,
  now: Date,
  policy: SendPolicy,
): SendDecision {
  const limits = [
    cooldownLimit(history.entries, purpose, policy),
    lockoutLimit(history.entries, now, policy),
    capLimit(history.hourly, HOUR_SECONDS),
    capLimit(history.daily, POLICY_WINDOW_SECONDS),
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
  history: SendHistory,
  purpose: string,
  now: Date,
  policy: SendPolicy,
): Date {
  const decision = evaluateSend(history, purpose, now, policy);
  return decision.allowed ? now : decision.until;
}

/** The history of a destination with no send in the window. */
export const EMPTY_HISTORY: SendHistory = Object.freeze({
  entries: Object.freeze([]),
  hourly: Object.freeze({ atCapMinusOne: null, atCap: null }),
  daily: Object.freeze({ atCapMinusOne: null, atCap: null }),
});

/**
 * What the policy answers a destination's first send (an empty history): null if it refuses it,
 * else how long after that send the next one is allowed (ms). Every rule counts from the sends
 * themselves, so the answer is the same at any moment; `at` only anchors the arithmetic.
 */
export function firstSendResendAfterMs(
  purpose: string,
  policy: SendPolicy,
  at: Date = new Date(0),
): number | null {
  if (!evaluateSend(EMPTY_HISTORY, purpose, at, policy).allowed) return null;
  const sent: SendHistoryEntry = {
    purpose,
    createdAt: at,
    deliveryStatus: 'pending',
    verifiedAt: null,
    exhaustedAt: null,
  };
  const next = nextSendAt(withSend(EMPTY_HISTORY, sent, policy), purpose, at, policy);
  return next.getTime() - at.getTime();
}
