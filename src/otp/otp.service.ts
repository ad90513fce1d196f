import { Inject, Injectable, Logger } from '@nestjs/common';
import { createHash, randomUUID } from 'node:crypto';
import { generateCode } from './crypto/code-generator.js';
import type { CodeHasher } from './crypto/code-hasher.js';
import { createVerificationToken, hashVerificationToken } from './crypto/verification-token.js';
import { OtpDeliveryService } from './delivery/otp-delivery.service.js';
import {
  type Destination,
  maskDestination,
  normalizeDestination,
  resolveChannel,
} from './destination/destination.js';
import { SendOtpInputDto } from './dto/send-otp.dto.js';
import { validateOtpInput } from './dto/validate-input.js';
import { VerifyOtpDto } from './dto/verify-otp.dto.js';
import { isDatabaseUnavailable } from './errors/database-unavailable.js';
import type { OtpSendOutcome, OtpSubject, OtpVerifyOutcome } from './events/otp-observer.js';
import { OtpObservers } from './events/otp-observers.js';
import {
  AttemptsExceededError,
  ChannelNotAllowedError,
  CodeExpiredError,
  DeliveryFailedError,
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
import { OtpRequestRepository, type NewOtpRequest } from './persistence/otp-request.repository.js';
import { attemptsRemaining, requestStatus } from './policy/request-status.js';
import type { PurgeResult } from './retention/otp-retention.js';
import { OtpRetentionService } from './retention/otp-retention.service.js';
import { fallbackChannelFor } from './policy/fallback-channel.js';
import {
  evaluateSend,
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
}

export interface SendOtpResult {
  requestId: string;
  /** Masked, e.g. `a•••@example.com`. */
  destination: string;
  channel: OtpChannel;
  purpose: string;
  expiresAt: Date;
  codeLength: number;
  attemptsAllowed: number;
  resendAvailableAt: Date;
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
}

/** What a consumed verification token proved. */
export interface OtpVerification {
  requestId: string;
  destination: string;
  purpose: string;
}

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
  /** The module options carry the policy's numbers (they are a `SendPolicy`). */
  private readonly policy: SendPolicy;
  private readonly logger = new Logger('OtpService');
  private decoyHash: Promise<string> | undefined;

  constructor(
    @Inject(OTP_OPTIONS) private readonly options: OtpModuleOptions,
    @Inject(OTP_HASHER) private readonly hasher: CodeHasher,
    private readonly requests: OtpRequestRepository,
    private readonly delivery: OtpDeliveryService,
    private readonly retention: OtpRetentionService,
    private readonly observers: OtpObservers,
  ) {
    this.policy = options;
  }

  /**
   * Sends a fresh code, superseding the flow's earlier one. Throws `SendLimitedError` (429) when a
   * cooldown, lockout or cap applies, `DeliveryFailedError` (503) when no channel carried it.
   */
  async send(input: SendOtpInput): Promise<SendOtpResult> {
    const started = performance.now();
    const trace: SendTrace = {};
    try {
      const result = await this.databaseBound(() =>
        this.sendValidated(validateOtpInput(SendOtpInputDto, input), trace),
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

  private async sendValidated(input: SendOtpInputDto, trace: SendTrace): Promise<SendOtpResult> {
    const destination = normalizeDestination(input.destination, this.options);
    const channel = resolveChannel(destination, this.defaultChannel(destination, input.channel));
    if (!this.options.channels.includes(channel)) throw new ChannelNotAllowedError(channel);
    const purpose = this.checkPurpose(input.purpose);
    trace.subject = {
      requestId: null,
      purpose,
      channel,
      destination: maskDestination(destination.value),
    };
    const fallbackEmail = input.fallbackEmail
      ? normalizeDestination(input.fallbackEmail, this.options)
      : undefined;
    if (fallbackEmail && fallbackEmail.kind !== 'email') {
      throw new ValidationFailedError(['fallbackEmail must be an email address']);
    }
    const idempotencyKey = input.idempotencyKey ?? null;
    const fingerprint = idempotencyKey
      ? createHash('sha256')
          .update(JSON.stringify([destination.value, channel, purpose]))
          .digest('hex')
      : null;

    // Hashed once, before any round trip: bcrypt is slow, and a retry below reuses it.
    const id = randomUUID();
    const code = generateCode(this.options.codeLength);
    const codeHash = await this.hasher.hash(code, id);

    const outcome = await this.decideAndInsert({
      id,
      destination: destination.value,
      purpose,
      channel,
      codeHash,
      idempotencyKey,
      fingerprint,
    });
    if ('replay' in outcome) {
      trace.replayed = true;
      return this.sendResult(outcome.replay);
    }

    const row = outcome.created;
    trace.subject.requestId = id;
    const delivery = await this.delivery.deliver({
      requestId: id,
      channel,
      destination: destination.value,
      purpose,
      code,
      expiresAt: row.expiresAt,
      locale: input.locale,
      fallbackEmail: fallbackEmail?.value,
    });
    if (!delivery) {
      await this.requests.markFailed(id);
      throw new DeliveryFailedError();
    }
    await this.requests.markDelivered(id, delivery);
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
      this.options.channels,
    );
    return {
      ...this.sendResult({ ...row, channel: carriedBy, deliveredTo: delivery.deliveredTo }),
      ...(fallbackChannel ? { fallbackChannel } : {}),
    };
  }

  /** The locales messages can be written in: English and those of the `messages` option. */
  get locales(): string[] {
    return [...new Set(['en', ...Object.keys(this.options.messages)])];
  }

  /**
   * Checks a code. Each call reserves one attempt first (a conditional UPDATE), compares the hash
   * outside any lock, then marks the code verified with a second conditional UPDATE; so concurrent
   * guesses never evaluate more than `maxAttempts` and a code verifies once.
   */
  async verify(input: VerifyOtpInput): Promise<VerifyOtpResult> {
    const started = performance.now();
    const trace: VerifyTrace = {};
    try {
      const result = await this.databaseBound(() =>
        this.verifyValidated(validateOtpInput(VerifyOtpDto, input), trace),
      );
      await this.reportVerify('verified', trace, started);
      return result;
    } catch (error) {
      await this.reportVerify(verifyOutcome(error, trace), trace, started, error);
      throw error;
    }
  }

  private async verifyValidated(input: VerifyOtpDto, trace: VerifyTrace): Promise<VerifyOtpResult> {
    const destination = normalizeDestination(input.destination, this.options);
    const purpose = this.checkPurpose(input.purpose);
    const length = this.options.codeLength;
    if (!/^[0-9]+$/.test(input.code) || input.code.length !== length) {
      throw new ValidationFailedError([`code must be exactly ${length} digits 0-9`]);
    }

    const attempt = await this.requests.reserveAttempt(destination.value, purpose);
    if (!attempt) {
      // Same hashing work as a real guess, so timing does not tell whether a code exists.
      await this.hasher.matches(input.code, 'decoy', await this.decoy());
      throw await this.noActiveCode(destination.value, purpose);
    }
    trace.destination = destination.value;
    trace.subject = {
      requestId: attempt.id,
      purpose,
      channel: resolveChannel(destination, this.defaultChannel(destination)),
      destination: maskDestination(destination.value),
    };

    if (await this.hasher.matches(input.code, attempt.id, attempt.codeHash)) {
      const token = createVerificationToken();
      const tokenExpiresAt = await this.requests.markVerified(
        attempt.id,
        token.hash,
        this.options.tokenTtlSeconds,
      );
      // Null: a resend superseded the code, or it expired, while this guess was being checked.
      if (!tokenExpiresAt) throw await this.noActiveCode(destination.value, purpose);
      return { verified: true, verificationToken: token.token, tokenExpiresAt };
    }

    const remaining = attempt.maxAttempts - attempt.attemptsUsed;
    if (remaining >= 1) {
      trace.attemptsRemaining = remaining;
      throw new InvalidCodeError(remaining);
    }
    await this.requests.markExhausted(attempt.id);
    trace.exhaustedNow = true;
    throw new AttemptsExceededError(await this.waitBeforeNextSend(destination.value, purpose));
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
    return {
      requestId: request.id,
      destination: maskDestination(request.destination),
      channel: request.channel,
      purpose: request.purpose,
      status: requestStatus(request, now),
      expiresAt: request.expiresAt,
      attemptsRemaining: attemptsRemaining(request, now),
      resendAvailableAt: nextSendAt(history, request.purpose, now, this.policy),
    };
  }

  /**
   * Consumes a verification token for `purpose`: it passes once, within its lifetime. Returns what
   * it proved, or null for a missing, unknown, used, expired or wrong-purpose token.
   */
  async consumeToken(token: string | undefined, purpose: string): Promise<OtpVerification | null> {
    if (typeof token !== 'string' || !TOKEN.test(token)) return null;
    return this.databaseBound(() =>
      this.requests.consumeToken(hashVerificationToken(token), purpose),
    );
  }

  /**
   * Reads the destination's history, asks the policy, and inserts the send if no other send to the
   * destination committed meanwhile (optimistic: a compare-and-set on the destination's version);
   * when one did, decides again on the new history. Each round has a winner, so a request only
   * retries while others are making progress; after `MAX_SEND_ROUNDS` it yields to them.
   */
  private async decideAndInsert(send: {
    id: string;
    destination: string;
    purpose: string;
    channel: OtpChannel;
    codeHash: string;
    idempotencyKey: string | null;
    fingerprint: string | null;
  }): Promise<{ replay: OtpRequest } | { created: NewOtpRequest; history: SendHistory }> {
    for (let round = 1; ; round++) {
      const { now, version, history, idempotent } = await this.requests.loadHistory(
        send.destination,
        send.purpose,
        send.idempotencyKey,
      );
      if (idempotent) {
        if (idempotent.requestFingerprint !== send.fingerprint)
          throw new IdempotencyKeyReusedError();
        return { replay: idempotent };
      }
      const decision = evaluateSend(history, send.purpose, now, this.policy);
      if (!decision.allowed) throw new SendLimitedError(decision.code, decision.retryAfterSeconds);
      const sent = {
        purpose: send.purpose,
        createdAt: now,
        deliveryStatus: 'pending' as const,
        verifiedAt: null,
        exhaustedAt: null,
      };
      const row: NewOtpRequest = {
        id: send.id,
        destination: send.destination,
        purpose: send.purpose,
        channel: send.channel,
        codeHash: send.codeHash,
        codeLength: this.options.codeLength,
        maxAttempts: this.options.maxAttempts,
        createdAt: now,
        expiresAt: new Date(now.getTime() + this.options.ttlSeconds * 1000),
        resendAvailableAt: nextSendAt(
          withSend(history, sent, this.policy),
          send.purpose,
          now,
          this.policy,
        ),
        idempotencyKey: send.idempotencyKey,
        requestFingerprint: send.fingerprint,
      };
      if (await this.requests.insertIfUnchanged(row, version)) return { created: row, history };
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
      codeLength: row.codeLength,
      attemptsAllowed: row.maxAttempts,
      resendAvailableAt: row.resendAvailableAt,
    };
  }

  /** Why nothing could be reserved: the flow's last code ran out of attempts (429) or none is active (410). */
  private async noActiveCode(destination: string, purpose: string): Promise<Error> {
    const { now, latest } = await this.requests.findLatestInFlow(destination, purpose);
    const exhausted =
      latest !== null &&
      latest.verifiedAt === null &&
      (latest.exhaustedAt !== null || latest.attemptsUsed >= latest.maxAttempts) &&
      latest.expiresAt > now;
    if (!exhausted) return new CodeExpiredError();
    return new AttemptsExceededError(await this.waitBeforeNextSend(destination, purpose));
  }

  /** Seconds until the flow may be sent a new code (at least 1). */
  private async waitBeforeNextSend(destination: string, purpose: string): Promise<number> {
    const { now, history } = await this.requests.readHistory(destination, purpose);
    return secondsUntil(nextSendAt(history, purpose, now, this.policy), now);
  }

  private decoy(): Promise<string> {
    this.decoyHash ??= this.hasher.hash('0'.repeat(this.options.codeLength), 'decoy');
    return this.decoyHash;
  }

  private checkPurpose(purpose: string | undefined): string {
    const value = purpose ?? this.options.defaultPurpose;
    if (!PURPOSE_PATTERN.test(value)) {
      throw new ValidationFailedError(['purpose must match ^[a-z][a-z0-9_.-]{0,63}$']);
    }
    return value;
  }

  /** A phone's default channel is sms, or voice where only voice is enabled. */
  private defaultChannel(destination: Destination, requested?: OtpChannel): OtpChannel | undefined {
    if (requested || destination.kind === 'email') return requested;
    const { channels } = this.options;
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
