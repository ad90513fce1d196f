import { Inject, Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { generateCode } from './crypto/code-generator.js';
import type { CodeHasher } from './crypto/code-hasher.js';
import { sha256Hex } from './crypto/sha256.js';
import { createVerificationToken, hashVerificationToken } from './crypto/verification-token.js';
import { OtpDeliveryService, type DeliveryAttempt } from './delivery/otp-delivery.service.js';
import { OtpFallbackService } from './delivery/receipts/otp-fallback.service.js';
import { type Destination, maskDestination, resolveChannel } from './destination/destination.js';
import { DestinationNormalizer } from './destination/destination-normalizer.js';
import { SendOtpInputDto } from './dto/send-otp.dto.js';
import { validateOtpInput } from './dto/validate-input.js';
import { VerifyOtpInputDto } from './dto/verify-otp.dto.js';
import { isDatabaseUnavailable } from './errors/database-unavailable.js';
import type { OtpSendOutcome, OtpSubject, OtpVerifyOutcome } from './events/otp-observer.js';
import { OtpObservers } from './events/otp-observers.js';
import {
  AttemptsExceededError,
  ChallengeRequiredError,
  ChannelNotAllowedError,
  CodeExpiredError,
  DeliveryFailedError,
  HardLockedError,
  IdempotencyKeyReusedError,
  InvalidCodeError,
  OtpError,
  RequestNotFoundError,
  SendLimitedError,
  ServiceUnavailableError,
  ValidationFailedError,
} from './errors/otp.errors.js';
import { OTP_HASHER, OTP_OPTIONS } from './otp.constants.js';
import type { OtpModuleOptions } from './otp.options.js';
import { PURPOSE_PATTERN, type OtpChannel, type OtpRequestStatus } from './otp.types.js';
import type { OtpRequest } from './persistence/otp-request.entity.js';
import {
  OtpRequestRepository,
  type FirstSend,
  type NewOtpRequest,
  type VerifyClaim,
} from './persistence/otp-request.repository.js';
import { RecentCodes } from './persistence/recent-codes.js';
import { SentDestinations } from './persistence/sent-destinations.js';
import { attemptsRemaining, requestStatus } from './policy/request-status.js';
import type { PurgeResult } from './retention/otp-retention.js';
import { OtpRetentionService } from './retention/otp-retention.service.js';
import { fallbackChannelFor } from './policy/fallback-channel.js';
import {
  hardLockFor,
  purposePoliciesOf,
  type ClientBinding,
  type PurposePolicies,
  type PurposePolicy,
} from './policy/purpose-policy.js';
import {
  EMPTY_HISTORY,
  evaluateSend,
  firstSendResendAfterMs,
  nextSendAt,
  secondsUntil,
  withSend,
  type SendHistory,
  type SendPolicy,
} from './policy/send-policy.js';

export interface SendOtpInput {
  destination: string;
  channel?: OtpChannel;
  purpose?: string;
  /** Replays the first answer for a repeated request instead of sending again. */
  idempotencyKey?: string;
  /** Locale of the message (a key of the `messages` option); English when none fits. */
  locale?: string;
  /**
   * The account's email, from your own records (never from the request body, or anyone could
   * redirect a code): when every phone channel fails, the same code goes there by email.
   */
  fallbackEmail?: string;
  /**
   * The account the code is for, from your own session (never from the request body): per-account
   * limits (`subjectLimits`) count across all its destinations, and the code verifies only with
   * the same subject.
   */
  subject?: string;
  /** A challenge token, needed once challenge escalation applies to the destination. */
  challenge?: string;
}

/** The calling client: binds verification tokens (`bindToClient`), goes to the challenge check. */
export interface OtpClient {
  ip?: string;
  userAgent?: string;
}

export interface SendOtpResult {
  requestId: string;
  /** Masked, e.g. `a•••@example.com`. */
  destination: string;
  channel: OtpChannel;
  purpose: string;
  expiresAt: Date;
  /** The purpose's code lifetime, in seconds. */
  ttlSeconds: number;
  codeLength: number;
  attemptsAllowed: number;
  resendAvailableAt: Date;
  /** Present (`true`) when the next call for this destination needs a `challenge`. */
  challengeRequired?: true;
  /**
   * The channel a UI may offer next ("call me instead"), once two sends of the flow went out on
   * this one; absent before that, and when the chain has no next channel.
   */
  fallbackChannel?: OtpChannel;
}

export interface VerifyOtpInput {
  destination: string;
  code: string;
  purpose?: string;
  /** The account the code was sent for (server-side only); see `SendOtpInput.subject`. */
  subject?: string;
  /** A challenge token, needed once challenge escalation applies to the destination. */
  challenge?: string;
}

export interface VerifyOtpResult {
  verified: true;
  verificationToken: string;
  tokenExpiresAt: Date;
}

export interface OtpRequestView {
  requestId: string;
  destination: string;
  channel: OtpChannel;
  purpose: string;
  status: OtpRequestStatus;
  expiresAt: Date;
  attemptsRemaining: number;
  resendAvailableAt: Date;
  /** The code's lifetime, length and attempts, as its purpose's policy set them at the send. */
  ttlSeconds: number;
  codeLength: number;
  attemptsAllowed: number;
  /** Each delivery attempt, oldest first (masked; no message ids). */
  deliveries: OtpDeliveryView[];
}

/** One delivery attempt of a request, as the status route shows it. */
export interface OtpDeliveryView {
  channel: OtpChannel;
  provider: string;
  /** Where it went, masked. */
  destination: string;
  /** `queued`, `sent`, `delivered`, `undelivered` or `failed`, as last reported. */
  status: string;
  /** Why it was made: `send`, `receipt` (a failure receipt) or `silence` (`fallbackAfterSeconds`). */
  cause: string;
  /** When it was made, and when its status was last reported. */
  at: Date;
  statusAt: Date;
}

/** What a consumed verification token proved. */
export interface OtpVerification {
  requestId: string;
  destination: string;
  purpose: string;
}

/** How far back failed verifies count for challenge escalation, unless configured. */
const DEFAULT_CHALLENGE_WINDOW_SECONDS = 3_600;

/** Rounds a send may lose to concurrent sends for the same destination before it gives up. */
const MAX_SEND_ROUNDS = 10;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TOKEN = /^[A-Za-z0-9_-]{43}$/;

/** What a send learned before it ended, for its observation (masked destination only). */
interface SendTrace {
  subject?: OtpSubject;
  replayed?: boolean;
}

/** What a verify learned before it ended. */
interface VerifyTrace {
  subject?: OtpSubject;
  /** The normalized destination, to look up the channel; never reported. */
  destination?: string;
  attemptsRemaining?: number;
  /** This guess used the code's last attempt. */
  exhaustedNow?: boolean;
}

/**
 * The three flows (send, verify, status) and token consumption. It loads history, asks the pure
 * policy, and writes; it knows nothing of HTTP. Errors are the typed `OtpError`s.
 */
@Injectable()
export class OtpService {
  /** Each purpose's effective policy, over the module options' numbers. */
  private readonly policies: PurposePolicies;
  private readonly logger = new Logger('OtpService');
  private readonly decoyHashes = new Map<number, Promise<string>>();
  /** Clients of an auto-resend whose verify passed its challenge in the same call. */
  private readonly challengePassed = new WeakSet<OtpClient>();
  /** Codes this instance sent, for a one-statement verify (HMAC only: see `verify`). */
  private readonly recentCodes: RecentCodes;
  private readonly destinations: DestinationNormalizer;
  private readonly sentDestinations = new SentDestinations();
  /** `firstSendOf`'s answers, by policy (one a configured purpose, one for every other). */
  private readonly firstSends = new WeakMap<PurposePolicy, FirstSend | null>();

  constructor(
    @Inject(OTP_OPTIONS) private readonly options: OtpModuleOptions,
    @Inject(OTP_HASHER) private readonly hasher: CodeHasher,
    private readonly requests: OtpRequestRepository,
    private readonly delivery: OtpDeliveryService,
    private readonly retention: OtpRetentionService,
    private readonly observers: OtpObservers,
    private readonly adaptive: OtpFallbackService,
  ) {
    this.policies = purposePoliciesOf(options);
    this.recentCodes = new RecentCodes(hasher.digest ? options.verifyCacheSize : 0);
    this.destinations = new DestinationNormalizer(options);
  }

  /**
   * Sends a fresh code, superseding the flow's earlier one. Throws `SendLimitedError` (429) when a
   * cooldown, lockout or cap applies, `DeliveryFailedError` (503) when no channel carried it.
   */
  async send(input: SendOtpInput, client: OtpClient = {}): Promise<SendOtpResult> {
    const started = performance.now();
    const trace: SendTrace = {};
    try {
      const result = await this.databaseBound(() =>
        this.sendValidated(validateOtpInput(SendOtpInputDto, input), client, trace),
      );
      this.observers.sendFinished({
        outcome: trace.replayed ? 'replayed' : 'sent',
        subject: {
          requestId: result.requestId,
          purpose: result.purpose,
          channel: result.channel,
          destination: result.destination,
        },
        durationMs: performance.now() - started,
        at: new Date(),
      });
      return result;
    } catch (error) {
      this.observers.sendFinished({
        outcome: sendOutcome(error),
        subject: trace.subject ?? null,
        durationMs: performance.now() - started,
        ...(error instanceof SendLimitedError ? { retryAfterSeconds: error.retryAfter } : {}),
        at: new Date(),
      });
      throw error;
    }
  }

  private async sendValidated(
    input: SendOtpInputDto,
    client: OtpClient,
    trace: SendTrace,
  ): Promise<SendOtpResult> {
    const destination = this.destinations.normalize(input.destination);
    const purpose = this.checkPurpose(input.purpose);
    const policy = this.policyOf(purpose);
    const channel = resolveChannel(
      destination,
      this.defaultChannel(destination, policy.channels, input.channel),
    );
    if (!policy.channels.includes(channel)) throw new ChannelNotAllowedError(channel);
    trace.subject = {
      requestId: null,
      purpose,
      channel,
      destination: maskDestination(destination.value),
    };
    const fallbackEmail = input.fallbackEmail
      ? this.destinations.normalize(input.fallbackEmail)
      : undefined;
    if (fallbackEmail && fallbackEmail.kind !== 'email') {
      throw new ValidationFailedError(['fallbackEmail must be an email address']);
    }
    const idempotencyKey = input.idempotencyKey ?? null;
    const fingerprint = idempotencyKey
      ? sha256Hex(JSON.stringify([destination.value, channel, purpose]))
      : null;

    const challengeRequired = this.challengeDue(
      await this.challengeGate(destination.value, input.challenge, 'send', client),
    );

    // Hashed once, before any round trip: bcrypt is slow, and a retry below reuses it.
    const id = randomUUID();
    const code = generateCode(policy.codeLength);
    const codeHash = await this.hasher.hash(code, id);

    const send = {
      id,
      destination: destination.value,
      purpose,
      channel,
      codeHash,
      idempotencyKey,
      fingerprint,
      subject: input.subject ?? null,
    };
    const limits = this.options.subjectLimits;
    const outcome =
      input.subject && (limits?.maxSendsPerHour || limits?.maxSendsPerDay)
        ? await this.requests.withSubjectLock(input.subject, async () => {
            await this.checkSubjectSends(input.subject as string);
            return this.decideAndInsert(send, policy);
          })
        : await this.decideAndInsert(send, policy);
    if ('replay' in outcome) {
      trace.replayed = true;
      return this.sendResult(outcome.replay);
    }

    const row = outcome.created;
    trace.subject.requestId = id;
    const attempts: DeliveryAttempt[] = [];
    const delivery = await this.delivery.deliver({
      requestId: id,
      channel,
      destination: destination.value,
      purpose,
      code,
      expiresAt: row.expiresAt,
      locale: input.locale,
      fallbackEmail: fallbackEmail?.value,
      channels: policy.channels,
      ttlSeconds: policy.ttlSeconds,
      attempts,
    });
    // What the delivery log (otp_deliveries) and a re-delivery (otp_fallbacks) need of the send.
    const first = {
      requestId: id,
      destination: destination.value,
      channel,
      purpose,
      code,
      ...(fallbackEmail ? { fallbackEmail: fallbackEmail.value } : {}),
      ...(input.locale ? { locale: input.locale } : {}),
      channels: policy.channels,
      attempts,
    };
    if (!delivery) {
      await this.requests.markFailed(id);
      await this.adaptive.recordUndelivered(first);
      throw new DeliveryFailedError();
    }
    await this.adaptive.recordDelivered(first, {
      channel: delivery.channel,
      provider: delivery.provider,
      deliveredTo: delivery.deliveredTo,
    });
    this.recentCodes.remember(destination.value, purpose, { id, expiresAt: row.expiresAt });
    const carriedBy = delivery.channel;
    const fallbackChannel = fallbackChannelFor(
      [
        ...outcome.history.entries,
        {
          purpose,
          channel: carriedBy,
          createdAt: row.createdAt,
          deliveryStatus: 'sent',
          verifiedAt: null,
          exhaustedAt: null,
        },
      ],
      purpose,
      carriedBy,
      this.options.channelFallback,
      policy.channels,
    );
    return {
      ...this.sendResult({ ...row, channel: carriedBy, deliveredTo: delivery.deliveredTo }),
      ...(challengeRequired ? { challengeRequired } : {}),
      ...(fallbackChannel ? { fallbackChannel } : {}),
    };
  }

  /**
   * Challenge escalation: once the destination drew `afterFailedVerifies` failed verifies in the
   * window, the call needs a challenge the host's verifier accepts (else 428). Resolves the failed
   * verifies counted before this call (0 with escalation off), for `challengeDue`.
   */
  private async challengeGate(
    destination: string,
    token: string | undefined,
    action: 'send' | 'verify',
    client: OtpClient,
  ): Promise<number> {
    const challenge = this.options.challenge;
    if (!challenge) return 0;
    const failed = await this.requests.countFailedVerifies(
      destination,
      challenge.windowSeconds ?? DEFAULT_CHALLENGE_WINDOW_SECONDS,
    );
    if (failed < challenge.afterFailedVerifies) return failed;
    if (this.challengePassed.has(client)) return failed;
    if (!token) throw new ChallengeRequiredError();
    let accepted = false;
    try {
      accepted = await challenge.verifier.verify(token, {
        action,
        ...(client.ip ? { ip: client.ip } : {}),
      });
    } catch (error) {
      this.logger.warn(`challenge verifier failed: ${(error as Error).message}`);
    }
    if (accepted !== true) throw new ChallengeRequiredError();
    return failed;
  }

  /** `true` when `failed` verifies put the destination past the challenge threshold. */
  private challengeDue(failed: number): true | undefined {
    const challenge = this.options.challenge;
    return challenge && failed >= challenge.afterFailedVerifies ? true : undefined;
  }

  /** Per-account send caps (run under the account's lock): 429 `OTP_SEND_LIMIT` when one is full. */
  private async checkSubjectSends(subject: string): Promise<void> {
    const limits = this.options.subjectLimits ?? {};
    const hourlyCap = limits.maxSendsPerHour ?? null;
    const dailyCap = limits.maxSendsPerDay ?? null;
    const history = await this.requests.subjectHistory(subject, {
      hourly: hourlyCap,
      daily: dailyCap,
    });
    const until = [
      capUntil(history.hourly, hourlyCap, 3_600),
      capUntil(history.daily, dailyCap, 86_400),
    ].filter((d): d is Date => d !== null && d > history.now);
    if (until.length > 0) {
      const latest = until.reduce((a, b) => (b > a ? b : a));
      throw new SendLimitedError('OTP_SEND_LIMIT', secondsUntil(latest, history.now));
    }
  }

  /** The locales messages can be written in: English and those of the `messages` option. */
  get locales(): string[] {
    return [...new Set(['en', ...Object.keys(this.options.messages)])];
  }

  /**
   * Checks a code. Each call reserves one attempt first (a conditional UPDATE), compares the hash
   * outside any lock, then marks the code verified with a second conditional UPDATE; so concurrent
   * guesses never evaluate more than `maxAttempts` and a code verifies once. A guess at a code this
   * instance sent (and remembers: `verifyCacheSize`, HMAC only) is bound to that request first, and
   * the reservation compares it with the stored hash on the attempt it reserves and, when right,
   * marks the code verified itself: one statement. Either way a guess is compared only on a
   * reserved attempt.
   */
  async verify(input: VerifyOtpInput, client: OtpClient = {}): Promise<VerifyOtpResult> {
    const started = performance.now();
    const trace: VerifyTrace = {};
    try {
      const result = await this.databaseBound(() =>
        this.verifyValidated(validateOtpInput(VerifyOtpInputDto, input), client, trace),
      );
      await this.reportVerify('verified', trace, started);
      return result;
    } catch (error) {
      await this.reportVerify(verifyOutcome(error, trace), trace, started, error);
      throw error;
    }
  }

  private async verifyValidated(
    input: VerifyOtpInputDto,
    client: OtpClient,
    trace: VerifyTrace,
  ): Promise<VerifyOtpResult> {
    const destination = this.destinations.normalize(input.destination);
    const purpose = this.checkPurpose(input.purpose);
    const policy = this.policyOf(purpose);
    const length = policy.codeLength;
    if (!/^[0-9]+$/.test(input.code) || input.code.length !== length) {
      throw new ValidationFailedError([`code must be exactly ${length} digits 0-9`]);
    }
    const failedBefore = await this.challengeGate(
      destination.value,
      input.challenge,
      'verify',
      client,
    );
    const challenged = this.challengeDue(failedBefore);
    const subject = input.subject ?? null;
    const clientBinding = policy.bindToClient ? clientHash(policy.bindToClient, client) : null;

    // A code this instance sent: the guess is bound to its request now, and the reserving
    // statement compares it on the attempt it reserves (a right one verifies in that statement).
    const remembered = this.recentCodes.recall(destination.value, purpose);
    // Issued if this guess verifies, in either statement; made up front, so one token serves both.
    const token = createVerificationToken();
    const claim: VerifyClaim | null =
      remembered && this.hasher.digest
        ? {
            id: remembered.id,
            codeHash: this.hasher.digest(input.code, remembered.id),
            tokenHash: token.hash,
            tokenTtlSeconds: this.options.tokenTtlSeconds,
            clientHash: clientBinding,
          }
        : null;

    const budget = this.options.subjectLimits?.maxFailedVerifiesPerDay;
    const attempt =
      subject && budget
        ? await this.requests.withSubjectLock(subject, async () => {
            const history = await this.requests.subjectHistory(subject, {
              hourly: null,
              daily: null,
            });
            if (history.failedVerifies >= budget) {
              const until = new Date((history.oldestFailure ?? history.now).getTime() + 86_400_000);
              throw new AttemptsExceededError(secondsUntil(until, history.now));
            }
            return this.requests.reserveAttempt(destination.value, purpose, subject, claim);
          })
        : await this.requests.reserveAttempt(destination.value, purpose, subject, claim);
    if (!attempt) {
      if (remembered) this.recentCodes.forget(destination.value, purpose, remembered.id);
      // Same hashing work as a real guess, so timing does not tell whether a code exists.
      await this.hasher.matches(input.code, 'decoy', await this.decoy(length));
      throw await this.noActiveCode(destination.value, purpose, policy, input, client, challenged);
    }
    trace.destination = destination.value;
    trace.subject = {
      requestId: attempt.id,
      purpose,
      channel: resolveChannel(destination, this.defaultChannel(destination, policy.channels)),
      destination: maskDestination(destination.value),
    };
    if (attempt.kind === 'verified') {
      this.recentCodes.forget(destination.value, purpose, attempt.id);
      return {
        verified: true,
        verificationToken: token.token,
        tokenExpiresAt: attempt.tokenExpiresAt,
      };
    }
    if (remembered && remembered.id !== attempt.id) {
      // A resend elsewhere (another instance) replaced the remembered code.
      this.recentCodes.forget(destination.value, purpose, remembered.id);
    }

    if (
      attempt.kind === 'reserved' &&
      (await this.hasher.matches(input.code, attempt.id, attempt.codeHash))
    ) {
      const tokenExpiresAt = await this.requests.markVerified(
        attempt.id,
        token.hash,
        this.options.tokenTtlSeconds,
        clientBinding,
      );
      // Null: a resend superseded the code, or it expired, while this guess was being checked.
      if (!tokenExpiresAt) {
        throw await this.noActiveCode(
          destination.value,
          purpose,
          policy,
          input,
          client,
          challenged,
        );
      }
      return { verified: true, verificationToken: token.token, tokenExpiresAt };
    }
    const remaining = attempt.maxAttempts - attempt.attemptsUsed;
    if (remaining >= 1) {
      trace.attemptsRemaining = remaining;
      // This guess is one more failure: the next call may need a challenge from now on.
      throw new InvalidCodeError(remaining, this.challengeDue(failedBefore + 1) === true);
    }
    await this.requests.markExhausted(attempt.id, destination.value, purpose);
    this.recentCodes.forget(destination.value, purpose, attempt.id);
    trace.exhaustedNow = true;
    throw new AttemptsExceededError(
      await this.waitBeforeNextSend(destination.value, purpose, policy),
    );
  }

  /**
   * Reports a finished verify. The channel a code went out on is not part of the attempt: it is
   * looked up only when an observer reads it (the event bus), and a failed lookup leaves the
   * destination's default channel in place.
   */
  private async reportVerify(
    outcome: OtpVerifyOutcome,
    trace: VerifyTrace,
    started: number,
    error?: unknown,
  ): Promise<void> {
    if (!this.observers.active) return;
    const durationMs = performance.now() - started;
    const { subject } = trace;
    if (subject && trace.destination && this.observers.needsVerifyChannel) {
      try {
        const { latest } = await this.requests.findLatestInFlow(trace.destination, subject.purpose);
        if (latest?.id === subject.requestId) subject.channel = latest.channel;
      } catch {
        // Reporting never changes the answer; the default channel stands.
      }
    }
    this.observers.verifyFinished({
      outcome,
      subject: subject ?? null,
      durationMs,
      ...(trace.attemptsRemaining !== undefined
        ? { attemptsRemaining: trace.attemptsRemaining }
        : {}),
      ...(error instanceof AttemptsExceededError ? { retryAfterSeconds: error.retryAfter } : {}),
      at: new Date(),
    });
  }

  /** A request's state, as the status route shows it. Throws `RequestNotFoundError` (404). */
  status(requestId: string): Promise<OtpRequestView> {
    return this.databaseBound(() => this.statusOf(requestId));
  }

  private async statusOf(requestId: string): Promise<OtpRequestView> {
    if (typeof requestId !== 'string' || !UUID.test(requestId)) throw new RequestNotFoundError();
    // One statement, one clock: the status and the next send time are judged at the same moment.
    const { now, request, history } = await this.requests.readStatus(requestId.toLowerCase());
    if (!request) throw new RequestNotFoundError();
    const policy = this.policies.of(request.purpose) ?? this.policies.fallback;
    const deliveries = await this.adaptive.attemptsOf(request.id);
    return {
      requestId: request.id,
      destination: maskDestination(request.destination),
      channel: request.channel,
      purpose: request.purpose,
      status: requestStatus(request, now),
      expiresAt: request.expiresAt,
      attemptsRemaining: attemptsRemaining(request, now),
      resendAvailableAt: nextSendAt(
        history,
        request.purpose,
        now,
        this.policies.sendPolicy(policy),
      ),
      ttlSeconds: Math.round((request.expiresAt.getTime() - request.createdAt.getTime()) / 1000),
      codeLength: request.codeLength,
      attemptsAllowed: request.maxAttempts,
      deliveries: deliveries.map((d) => ({
        channel: d.channel,
        provider: d.provider,
        destination: maskDestination(d.deliveredTo ?? request.destination),
        status: d.status,
        cause: d.cause,
        at: d.createdAt,
        statusAt: d.statusAt,
      })),
    };
  }

  /**
   * Cancels an active request: its code stops verifying, and it starts no resend cooldown (it still
   * counts toward the send caps). Throws `RequestNotFoundError` (404) for an unknown, malformed or
   * already finished request. A cancel and a right guess at once never both succeed: each is a
   * conditional UPDATE of the same active row.
   */
  cancel(requestId: string): Promise<void> {
    return this.databaseBound(async () => {
      if (typeof requestId !== 'string' || !UUID.test(requestId)) throw new RequestNotFoundError();
      if (!(await this.requests.cancel(requestId.toLowerCase()))) throw new RequestNotFoundError();
    });
  }

  /**
   * Lifts a destination's hard lockout (`hardLockout`): its exhausted codes so far stop counting,
   * for the hard and the progressive lockout alike. For support staff, after checking who asks.
   */
  unlock(destination: string): Promise<void> {
    return this.databaseBound(async () => {
      if (typeof destination !== 'string' || destination.length === 0) {
        throw new ValidationFailedError(['destination must be a non-empty string']);
      }
      await this.requests.unlock(this.destinations.normalize(destination).value);
    });
  }

  /**
   * Consumes a verification token for `purpose`: it passes once, within its lifetime. Returns what
   * it proved, or null for a missing, unknown, used, expired or wrong-purpose token.
   */
  async consumeToken(
    token: string | undefined,
    purpose: string,
    client: OtpClient = {},
  ): Promise<OtpVerification | null> {
    if (typeof token !== 'string' || !TOKEN.test(token)) return null;
    // A token verified under a binding passes only from that client; one without passes anywhere.
    const binding = (this.policies.of(purpose) ?? this.policies.fallback).bindToClient;
    return this.databaseBound(() =>
      this.requests.consumeToken(
        hashVerificationToken(token),
        purpose,
        binding ? clientHash(binding, client) : null,
      ),
    );
  }

  /**
   * Reads the destination's history, asks the policy, and inserts the send if no other send to the
   * destination committed meanwhile (optimistic: a compare-and-set on the destination's version);
   * when one did, decides again on the new history. Each round has a winner, so a request only
   * retries while others are making progress; after `MAX_SEND_ROUNDS` it yields to them. A
   * destination's first send skips the read: with no history, the policy's answer is known.
   */
  private async decideAndInsert(
    send: {
      id: string;
      destination: string;
      purpose: string;
      channel: OtpChannel;
      codeHash: string;
      idempotencyKey: string | null;
      fingerprint: string | null;
      subject: string | null;
    },
    policy: PurposePolicy,
  ): Promise<{ replay: OtpRequest } | { created: NewOtpRequest; history: SendHistory }> {
    const sendPolicy = this.policies.sendPolicy(policy);
    // A destination this instance has not seen a history for is likely new: one statement inserts
    // its first send, or writes nothing when it has a history after all (then the usual way).
    const first =
      send.idempotencyKey === null && !this.sentDestinations.has(send.destination)
        ? this.firstSendOf(policy, sendPolicy, send.purpose)
        : null;
    const request = {
      id: send.id,
      destination: send.destination,
      purpose: send.purpose,
      channel: send.channel,
      codeHash: send.codeHash,
      codeLength: policy.codeLength,
      maxAttempts: policy.maxAttempts,
      subject: send.subject,
    };
    if (first) {
      const created = await this.requests.insertFirst(
        { ...request, idempotencyKey: null, requestFingerprint: null },
        first,
      );
      this.sentDestinations.add(send.destination);
      if (created) return { created, history: EMPTY_HISTORY };
    }
    for (let round = 1; ; round++) {
      const { now, version, history, idempotent, hardLockedAt } = await this.requests.loadHistory(
        send.destination,
        send.purpose,
        send.idempotencyKey,
      );
      if (idempotent) {
        if (idempotent.requestFingerprint !== send.fingerprint)
          throw new IdempotencyKeyReusedError();
        return { replay: idempotent };
      }
      const exhausted = history.entries.flatMap((h) => (h.exhaustedAt ? [h.exhaustedAt] : []));
      const hardLock = hardLockFor(exhausted, hardLockedAt, policy.hardLockout, now);
      if (hardLock) {
        if (!hardLockedAt || hardLockedAt < hardLock.since) {
          await this.requests.persistHardLock(send.destination, hardLock.since);
        }
        throw new HardLockedError(hardLock.until ? secondsUntil(hardLock.until, now) : null);
      }
      const decision = evaluateSend(history, send.purpose, now, sendPolicy);
      if (!decision.allowed) throw new SendLimitedError(decision.code, decision.retryAfterSeconds);
      const sent = {
        purpose: send.purpose,
        createdAt: now,
        deliveryStatus: 'pending' as const,
        verifiedAt: null,
        exhaustedAt: null,
      };
      const row: NewOtpRequest = {
        ...request,
        createdAt: now,
        expiresAt: new Date(now.getTime() + policy.ttlSeconds * 1000),
        resendAvailableAt: nextSendAt(
          withSend(history, sent, sendPolicy),
          send.purpose,
          now,
          sendPolicy,
        ),
        idempotencyKey: send.idempotencyKey,
        requestFingerprint: send.fingerprint,
      };
      if (await this.requests.insertIfUnchanged(row, version)) {
        this.sentDestinations.add(send.destination);
        return { created: row, history };
      }
      if (round >= MAX_SEND_ROUNDS) throw new SendLimitedError('OTP_RESEND_COOLDOWN', 1);
    }
  }

  /**
   * Deletes history older than the retention window (24 h by default) in batches, and drops the
   * hashes of expired codes. Safe to run on many instances at once.
   */
  purge(): Promise<PurgeResult> {
    return this.retention.purge();
  }

  private sendResult(
    row: Pick<
      OtpRequest,
      | 'id'
      | 'destination'
      | 'channel'
      | 'purpose'
      | 'createdAt'
      | 'expiresAt'
      | 'codeLength'
      | 'maxAttempts'
      | 'resendAvailableAt'
    > &
      Partial<Pick<OtpRequest, 'deliveredTo'>>,
  ): SendOtpResult {
    return {
      requestId: row.id,
      // Where the code went: the fallback email when the send fell back to it.
      destination: maskDestination(row.deliveredTo ?? row.destination),
      channel: row.channel,
      purpose: row.purpose,
      expiresAt: row.expiresAt,
      ttlSeconds: Math.round((row.expiresAt.getTime() - row.createdAt.getTime()) / 1000),
      codeLength: row.codeLength,
      attemptsAllowed: row.maxAttempts,
      resendAvailableAt: row.resendAvailableAt,
    };
  }

  /**
   * Why nothing could be reserved: the flow's last code ran out of attempts (429) or none is active
   * (410). With the purpose's `autoResend`, an expired unused code is replaced by a fresh one when
   * the send policy allows, and the 410 carries the new request.
   */
  private async noActiveCode(
    destination: string,
    purpose: string,
    policy: PurposePolicy,
    input?: VerifyOtpInputDto,
    client: OtpClient = {},
    challenged?: true,
  ): Promise<Error> {
    const { now, latest } = await this.requests.findLatestInFlow(destination, purpose);
    // A code seen past its expiry can never verify: its hash goes now, not at the next purge.
    if (latest?.codeHash && latest.expiresAt <= now) {
      await this.requests.dropExpiredHash(latest.id, destination, purpose);
    }
    const exhausted =
      latest !== null &&
      latest.verifiedAt === null &&
      (latest.exhaustedAt !== null || latest.attemptsUsed >= latest.maxAttempts) &&
      latest.expiresAt > now;
    if (exhausted) {
      return new AttemptsExceededError(await this.waitBeforeNextSend(destination, purpose, policy));
    }
    const expiredUnused =
      latest !== null &&
      latest.verifiedAt === null &&
      latest.exhaustedAt === null &&
      latest.attemptsUsed < latest.maxAttempts &&
      latest.deliveryStatus === 'sent' &&
      latest.expiresAt <= now;
    if (!policy.autoResend || !input || !expiredUnused) return new CodeExpiredError();
    try {
      // The verify's challenge already passed in this call: a single-use token (Turnstile's) would
      // be refused if checked twice, so the resend is vouched for instead.
      const resendClient = { ...client };
      if (challenged) this.challengePassed.add(resendClient);
      const resent = await this.send(
        {
          destination,
          channel: latest.channel,
          purpose,
          ...(input.subject ? { subject: input.subject } : {}),
        },
        resendClient,
      );
      return new CodeExpiredError({ ...resent });
    } catch (error) {
      // A limit (cooldown, cap, lockout) or a failed delivery: the plain 410, as without it.
      if (error instanceof OtpError && !(error instanceof ServiceUnavailableError)) {
        return new CodeExpiredError();
      }
      throw error;
    }
  }

  /** Seconds until the flow may be sent a new code (at least 1). */
  private async waitBeforeNextSend(
    destination: string,
    purpose: string,
    policy: PurposePolicy,
  ): Promise<number> {
    const { now, history } = await this.requests.readHistory(destination, purpose);
    return secondsUntil(nextSendAt(history, purpose, now, this.policies.sendPolicy(policy)), now);
  }

  /** A hash of a code of `length` digits: the timing of a guess when there is no code. */
  private decoy(length: number): Promise<string> {
    let hash = this.decoyHashes.get(length);
    if (!hash) {
      hash = this.hasher.hash('0'.repeat(length), 'decoy');
      this.decoyHashes.set(length, hash);
    }
    return hash;
  }

  /**
   * What the purpose's policy answers a destination's first send, worked out once a policy: a send
   * with no idempotency key tries the one-statement first send with it (`decideAndInsert`); null
   * when the policy would refuse even a first send, which then takes the usual read.
   */
  private firstSendOf(
    policy: PurposePolicy,
    sendPolicy: SendPolicy,
    purpose: string,
  ): FirstSend | null {
    let first = this.firstSends.get(policy);
    if (first === undefined) {
      const resendAfterMs = firstSendResendAfterMs(purpose, sendPolicy);
      first = resendAfterMs === null ? null : { ttlSeconds: policy.ttlSeconds, resendAfterMs };
      this.firstSends.set(policy, first);
    }
    return first;
  }

  /** The purpose's policy; with `strictPurposes`, a purpose it does not list is a 400. */
  private policyOf(purpose: string): PurposePolicy {
    const policy = this.policies.of(purpose);
    if (!policy) throw new ValidationFailedError([`purpose '${purpose}' is not configured`]);
    return policy;
  }

  private checkPurpose(purpose: string | undefined): string {
    const value = purpose ?? this.options.defaultPurpose;
    if (!PURPOSE_PATTERN.test(value)) {
      throw new ValidationFailedError(['purpose must match ^[a-z][a-z0-9_.-]{0,63}$']);
    }
    return value;
  }

  /** A phone's default channel is sms, or voice where only voice is allowed. */
  private defaultChannel(
    destination: Destination,
    channels: readonly OtpChannel[],
    requested?: OtpChannel,
  ): OtpChannel | undefined {
    if (requested || destination.kind === 'email') return requested;
    return !channels.includes('sms') && channels.includes('voice') ? 'voice' : 'sms';
  }

  /**
   * Runs a flow; a database that cannot serve it becomes the contract's 503 `SERVICE_UNAVAILABLE`
   * here, so every caller (the routes, a host's own routes, a job) gets the same typed error.
   */
  private async databaseBound<T>(flow: () => Promise<T>): Promise<T> {
    try {
      return await flow();
    } catch (error) {
      if (!(error instanceof OtpError) && isDatabaseUnavailable(error)) {
        this.logger.warn(`database unavailable: ${(error as Error).message}`);
        throw new ServiceUnavailableError({ cause: error });
      }
      throw error;
    }
  }
}

function sendOutcome(error: unknown): OtpSendOutcome {
  if (error instanceof HardLockedError) return 'locked';
  if (error instanceof SendLimitedError) return error.code === 'OTP_LOCKED' ? 'locked' : 'limited';
  if (error instanceof DeliveryFailedError) return 'delivery_failed';
  if (error instanceof ServiceUnavailableError) return 'unavailable';
  return error instanceof OtpError ? 'rejected' : 'error';
}

function verifyOutcome(error: unknown, trace: VerifyTrace): OtpVerifyOutcome {
  if (error instanceof InvalidCodeError) return 'invalid';
  if (error instanceof AttemptsExceededError) {
    return trace.exhaustedNow ? 'exhausted' : 'attempts_exceeded';
  }
  if (error instanceof CodeExpiredError) return 'expired';
  if (error instanceof ServiceUnavailableError) return 'unavailable';
  return error instanceof OtpError ? 'rejected' : 'error';
}

/** When a cap over `windowSeconds` opens again, given its newest sends (newest first); null: not full. */
function capUntil(
  newestFirst: readonly Date[],
  cap: number | null,
  windowSeconds: number,
): Date | null {
  if (cap === null) return null;
  const atCap = newestFirst[cap - 1];
  return atCap ? new Date(atCap.getTime() + windowSeconds * 1000) : null;
}

/** What a token is bound to: SHA-256 of the client's address and/or User-Agent. */
function clientHash(binding: ClientBinding, client: OtpClient): string {
  const parts = [
    binding === 'user-agent' ? '' : (client.ip ?? ''),
    binding === 'ip' ? '' : (client.userAgent ?? ''),
  ];
  return sha256Hex(JSON.stringify([binding, ...parts]));
}
