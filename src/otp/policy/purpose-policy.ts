import { OTP_CHANNELS, PURPOSE_PATTERN, type OtpChannel } from '../otp.types.js';
import { step, type SendPolicy } from './send-policy.js';

/** Hard lockout: after this many exhausted codes of a destination in 24 h, sends stop (423). */
export interface HardLockoutPolicy {
  /** Exhausted codes of the destination (any purpose) in 24 h that lock it. */
  afterExhaustedCodes: number;
  /** Seconds the lock lasts from the last of them; absent: until `OtpService.unlock()`. */
  durationSeconds?: number;
}

/** What a verification token is bound to: it passes the guard only from the same client. */
export type ClientBinding = 'ip' | 'user-agent' | 'ip+user-agent';

/** The policy of one purpose: the module's numbers, overridden where the purpose says so. */
export interface PurposePolicy {
  /** Seconds a code stays valid after it is sent. */
  ttlSeconds: number;
  /** Digits in a code, 4-10. */
  codeLength: number;
  /** Guesses evaluated per code. */
  maxAttempts: number;
  /** Wait before the 2nd, 3rd, ... send of the flow; the last value repeats. */
  resendCooldownSeconds: readonly number[];
  /**
   * Progressive lockout steps. Lockout belongs to the destination, so a purpose can only tighten
   * it: each step is the larger of the module's and the purpose's.
   */
  lockoutStepSeconds: readonly number[];
  /** Channels this purpose may be sent on (within the module's `channels`); else 400. */
  channels: readonly OtpChannel[];
  /** Off (`null`) unless set. */
  hardLockout: HardLockoutPolicy | null;
  /**
   * A verify of the flow's expired, unused code sends a fresh one (when the send policy allows) and
   * answers 410 `OTP_EXPIRED` with `resent: true` and the new request. Default `false`.
   */
  autoResend: boolean;
  /** Binds the verification token to the verifying client; off (`null`) unless set. */
  bindToClient: ClientBinding | null;
  /**
   * Fallback on silence: when the code is neither verified nor cancelled this many seconds after
   * its delivery (and has not expired), it goes out once more on the next channel of the chain.
   * Off (`null`) unless set.
   */
  fallbackAfterSeconds: number | null;
}

/** A named policy a host picks for a purpose. */
export type PurposePresetName = 'login' | 'transaction' | 'account-recovery' | 'email-verification';

/**
 * The presets. Sources and reasoning are in README ("Per-purpose policy"): NIST SP 800-63B §5.1.3
 * bounds an out-of-band code that authenticates to 10 minutes; OWASP's MFA and Forgot Password cheat
 * sheets ask for short, single-use, rate-limited codes and stricter handling of recovery.
 */
export const PURPOSE_PRESETS: Readonly<Record<PurposePresetName, Partial<PurposePolicy>>> = {
  /** Sign-in: the person is at the screen; a short window leaves a stolen code little time. */
  login: { ttlSeconds: 120 },
  /** Approving a payment: phone only, few guesses, the token usable only by the client that verified. */
  transaction: {
    ttlSeconds: 300,
    maxAttempts: 3,
    channels: ['sms', 'voice'],
    bindToClient: 'ip+user-agent',
  },
  /** Recovery: email first (a phone may be the thing that was lost), and a hard lockout. */
  'account-recovery': {
    ttlSeconds: 900,
    channels: ['email', 'sms', 'voice'],
    hardLockout: { afterExhaustedCodes: 3 },
  },
  /** Proving an address, not signing in: the mail may arrive late, so a longer window. */
  'email-verification': { ttlSeconds: 1800, channels: ['email'] },
};

/** How a host describes a purpose: a preset's name, or fields over an optional preset. */
export type PurposePolicyInput =
  PurposePresetName | (Partial<PurposePolicy> & { preset?: PurposePresetName });

/** The module-wide numbers a purpose starts from. */
export interface BasePolicy extends SendPolicy {
  ttlSeconds: number;
  codeLength: number;
  maxAttempts: number;
  channels: readonly OtpChannel[];
}

const BINDINGS: readonly ClientBinding[] = ['ip', 'user-agent', 'ip+user-agent'];
const isPreset = (name: unknown): name is PurposePresetName =>
  typeof name === 'string' && Object.hasOwn(PURPOSE_PRESETS, name);

/**
 * Every purpose's effective policy, resolved once from the options. A purpose without an entry
 * gets the module's policy (or is refused, with `strict`).
 */
export class PurposePolicies {
  private readonly byPurpose = new Map<string, PurposePolicy>();
  readonly fallback: PurposePolicy;

  constructor(
    readonly base: BasePolicy,
    entries: Readonly<Record<string, PurposePolicyInput>>,
    readonly strict: boolean,
  ) {
    this.fallback = {
      ttlSeconds: base.ttlSeconds,
      codeLength: base.codeLength,
      maxAttempts: base.maxAttempts,
      resendCooldownSeconds: base.resendCooldownSeconds,
      lockoutStepSeconds: base.lockoutStepSeconds,
      channels: base.channels,
      hardLockout: null,
      autoResend: false,
      bindToClient: null,
      fallbackAfterSeconds: null,
    };
    for (const [purpose, input] of Object.entries(entries)) {
      const { preset, ...own } = typeof input === 'string' ? { preset: input } : input;
      const merged: PurposePolicy = {
        ...this.fallback,
        ...(preset ? PURPOSE_PRESETS[preset] : {}),
        ...Object.fromEntries(Object.entries(own).filter(([, v]) => v !== undefined)),
      };
      merged.lockoutStepSeconds = tighterSteps(base.lockoutStepSeconds, merged.lockoutStepSeconds);
      // A preset's channels are what it allows at most; the module's list still bounds them.
      merged.channels = merged.channels.filter((c) => base.channels.includes(c));
      this.byPurpose.set(purpose, merged);
    }
  }

  /** The policy of `purpose`, or null when `strict` and it has none. */
  of(purpose: string): PurposePolicy | null {
    return this.byPurpose.get(purpose) ?? (this.strict ? null : this.fallback);
  }

  /** The send policy of `purpose`: its own cooldowns and lockout, the destination's shared caps. */
  sendPolicy(policy: PurposePolicy): SendPolicy {
    return {
      resendCooldownSeconds: policy.resendCooldownSeconds,
      lockoutStepSeconds: policy.lockoutStepSeconds,
      maxSendsPerHour: this.base.maxSendsPerHour,
      maxSendsPerDay: this.base.maxSendsPerDay,
    };
  }

  /** Every policy in force (the fallback included): the history reads are sized for the largest. */
  all(): PurposePolicy[] {
    return [this.fallback, ...this.byPurpose.values()];
  }
}

/** Each step the larger of the two lists' (the last value of each repeats). */
export function tighterSteps(base: readonly number[], own: readonly number[]): number[] {
  const length = Math.max(base.length, own.length);
  return Array.from({ length }, (_, i) => Math.max(step(base, i), step(own, i)));
}

/** What is wrong with the `purposes` option, as messages that say the fix. */
export function purposeProblems(entries: unknown, enabled: readonly OtpChannel[]): string[] {
  if (typeof entries !== 'object' || entries === null || Array.isArray(entries)) {
    return ['purposes must be an object of purpose name to preset name or policy'];
  }
  const presets = Object.keys(PURPOSE_PRESETS).join(', ');
  const problems: string[] = [];
  for (const [purpose, input] of Object.entries(entries as Record<string, unknown>)) {
    const at = `purposes.${purpose}`;
    if (!PURPOSE_PATTERN.test(purpose))
      problems.push(`${at}: purpose must match ${PURPOSE_PATTERN.source}`);
    if (typeof input === 'string') {
      if (!isPreset(input)) problems.push(`${at} must be a preset (${presets}) or a policy object`);
      continue;
    }
    if (typeof input !== 'object' || input === null) {
      problems.push(`${at} must be a preset (${presets}) or a policy object`);
      continue;
    }
    problems.push(...policyProblems(at, input as Record<string, unknown>, enabled, presets));
  }
  return problems;
}

const POLICY_KEYS = [
  'preset',
  'ttlSeconds',
  'codeLength',
  'maxAttempts',
  'resendCooldownSeconds',
  'lockoutStepSeconds',
  'channels',
  'hardLockout',
  'autoResend',
  'bindToClient',
  'fallbackAfterSeconds',
];

function policyProblems(
  at: string,
  policy: Record<string, unknown>,
  enabled: readonly OtpChannel[],
  presets: string,
): string[] {
  const problems: string[] = [];
  const unknown = Object.keys(policy).filter((k) => !POLICY_KEYS.includes(k));
  if (unknown.length > 0) {
    problems.push(
      `${at} has unknown keys ${unknown.join(', ')} (known: ${POLICY_KEYS.join(', ')})`,
    );
  }
  const { preset, ttlSeconds, codeLength, maxAttempts, channels, hardLockout } = policy;
  if (preset !== undefined && !isPreset(preset))
    problems.push(`${at}.preset must be one of ${presets}`);
  for (const [key, value] of [
    ['ttlSeconds', ttlSeconds],
    ['maxAttempts', maxAttempts],
  ] as const) {
    if (value !== undefined && (!Number.isInteger(value) || (value as number) < 1)) {
      problems.push(`${at}.${key} must be a positive integer`);
    }
  }
  if (
    codeLength !== undefined &&
    (!Number.isInteger(codeLength) || (codeLength as number) < 4 || (codeLength as number) > 10)
  ) {
    problems.push(`${at}.codeLength must be an integer from 4 to 10`);
  }
  for (const key of ['resendCooldownSeconds', 'lockoutStepSeconds'] as const) {
    const list = policy[key];
    if (
      list !== undefined &&
      (!Array.isArray(list) ||
        list.length === 0 ||
        list.some((s) => !Number.isInteger(s) || (s as number) < 0))
    ) {
      problems.push(`${at}.${key} must be a non-empty list of whole seconds`);
    }
  }
  if (channels !== undefined) {
    if (!Array.isArray(channels) || channels.some((c) => !OTP_CHANNELS.includes(c as OtpChannel))) {
      problems.push(`${at}.channels must be a list of ${OTP_CHANNELS.join(', ')}`);
    } else if (!channels.some((c) => enabled.includes(c as OtpChannel))) {
      problems.push(`${at}.channels has none of the module's channels (${enabled.join(', ')})`);
    }
  }
  if (hardLockout !== undefined && hardLockout !== null) {
    const h = hardLockout as Partial<HardLockoutPolicy>;
    if (
      typeof h !== 'object' ||
      !Number.isInteger(h.afterExhaustedCodes) ||
      (h.afterExhaustedCodes as number) < 1 ||
      (h.durationSeconds !== undefined &&
        (!Number.isInteger(h.durationSeconds) || h.durationSeconds < 1))
    ) {
      problems.push(
        `${at}.hardLockout must be null or { afterExhaustedCodes: positive integer, durationSeconds?: positive integer }`,
      );
    }
  }
  const silence = policy.fallbackAfterSeconds;
  if (
    silence !== undefined &&
    silence !== null &&
    (!Number.isInteger(silence) || (silence as number) < 1)
  ) {
    problems.push(`${at}.fallbackAfterSeconds must be null or a positive integer`);
  }
  if (policy.autoResend !== undefined && typeof policy.autoResend !== 'boolean') {
    problems.push(`${at}.autoResend must be a boolean`);
  }
  const binding = policy.bindToClient;
  if (binding !== undefined && binding !== null && !BINDINGS.includes(binding as ClientBinding)) {
    problems.push(`${at}.bindToClient must be null or one of ${BINDINGS.join(', ')}`);
  }
  return problems;
}

/** Hard lockout in force for a send: since when, and until when (null: until unlocked). */
export interface HardLock {
  since: Date;
  until: Date | null;
}

/**
 * Whether `policy` hard-locks the destination now: `exhaustedAt` are the destination's exhausted
 * codes (any purpose, since its last unlock), `persistedSince` a lock recorded earlier (it outlives
 * the 24 h of history it was computed from).
 */
export function hardLockFor(
  exhaustedAt: readonly Date[],
  persistedSince: Date | null,
  policy: HardLockoutPolicy | null,
  now: Date,
): HardLock | null {
  if (!policy) return null;
  const windowStart = now.getTime() - 86_400_000;
  const recent = exhaustedAt
    .filter((d) => d.getTime() > windowStart)
    .sort((a, b) => b.getTime() - a.getTime());
  const computed = recent.length >= policy.afterExhaustedCodes ? recent[0] : undefined;
  const since = [computed, persistedSince ?? undefined]
    .filter((d): d is Date => d !== undefined)
    .reduce<Date | null>((a, b) => (a && a > b ? a : b), null);
  if (!since) return null;
  if (policy.durationSeconds === undefined) return { since, until: null };
  const until = new Date(since.getTime() + policy.durationSeconds * 1000);
  return until > now ? { since, until } : null;
}

const resolved = new WeakMap<object, PurposePolicies>();

/** The purpose policies of a module's options, built once per options object. */
export function purposePoliciesOf(
  options: BasePolicy & {
    purposes: Readonly<Record<string, PurposePolicyInput>>;
    strictPurposes: boolean;
  },
): PurposePolicies {
  let policies = resolved.get(options);
  if (!policies) {
    policies = new PurposePolicies(options, options.purposes, options.strictPurposes);
    resolved.set(options, policies);
  }
  return policies;
}
