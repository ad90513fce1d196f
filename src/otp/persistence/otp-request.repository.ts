import { Inject, Injectable } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { OTP_DATA_SOURCE, OTP_OPTIONS } from '../otp.constants.js';
import type { OtpModuleOptions } from '../otp.options.js';
import type { DeliveryStatus, OtpChannel } from '../otp.types.js';
import type { CapMarks, SendHistory } from '../policy/send-policy.js';
import { POLICY_WINDOW_SECONDS } from '../policy/send-policy.js';
import type { OtpRequest } from './otp-request.entity.js';

/** Columns as Postgres returns them. */
interface OtpRequestRow {
  id: string;
  destination: string;
  purpose: string;
  channel: OtpChannel;
  code_hash: string | null;
  code_length: number;
  max_attempts: number;
  attempts_used: number;
  created_at: Date;
  expires_at: Date;
  resend_available_at: Date;
  delivery_status: DeliveryStatus;
  delivered_at: Date | null;
  verified_at: Date | null;
  exhausted_at: Date | null;
  superseded_at: Date | null;
  idempotency_key: string | null;
  request_fingerprint: string | null;
  token_hash: string | null;
  token_expires_at: Date | null;
  token_used_at: Date | null;
}

const toEntity = (r: OtpRequestRow): OtpRequest => ({
  id: r.id,
  destination: r.destination,
  purpose: r.purpose,
  channel: r.channel,
  codeHash: r.code_hash,
  codeLength: r.code_length,
  maxAttempts: r.max_attempts,
  attemptsUsed: r.attempts_used,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  resendAvailableAt: r.resend_available_at,
  deliveryStatus: r.delivery_status,
  deliveredAt: r.delivered_at,
  verifiedAt: r.verified_at,
  exhaustedAt: r.exhausted_at,
  supersededAt: r.superseded_at,
  idempotencyKey: r.idempotency_key,
  requestFingerprint: r.request_fingerprint,
  tokenHash: r.token_hash,
  tokenExpiresAt: r.token_expires_at,
  tokenUsedAt: r.token_used_at,
});

/** A code still able to verify, as seen by the rows: time is checked separately. */
const ACTIVE = `verified_at IS NULL AND exhausted_at IS NULL AND superseded_at IS NULL
  AND delivery_status <> 'failed'`;

/** The flow's active code (parameters $1 destination, $2 purpose). */
const IN_FLOW = `(destination = $1 AND purpose = $2 AND ${ACTIVE})`;

/**
 * A row holding idempotency key $4 that is older than the window ($14 seconds before $3): its key
 * may be taken again. A recent holder is never released, so a concurrent send with the same key
 * hits the unique index instead.
 */
const STALE_KEY = `($4::text IS NOT NULL AND idempotency_key = $4
  AND created_at < $3::timestamptz - make_interval(secs => $14))`;

/** What a send decides on: history, the database's clock, and the destination's version. */
export interface SendSnapshot {
  now: Date;
  /** Bumped by every send to the destination (bigint, as a string). */
  version: string;
  history: SendHistory;
  idempotent: OtpRequest | null;
}

export interface NewOtpRequest {
  id: string;
  destination: string;
  purpose: string;
  channel: OtpChannel;
  codeHash: string;
  codeLength: number;
  maxAttempts: number;
  createdAt: Date;
  expiresAt: Date;
  resendAvailableAt: Date;
  idempotencyKey: string | null;
  requestFingerprint: string | null;
}

/** What a reserved verify attempt hands back: enough to check the guess outside any lock. */
export interface ReservedAttempt {
  id: string;
  codeHash: string;
  attemptsUsed: number;
  maxAttempts: number;
}

/**
 * Every query on `otp_requests`. All SQL is parameterized, and every write that decides something
 * is one conditional statement (a compare-and-set on the destination's version for sends, a
 * conditional UPDATE for attempts, verification and tokens), so concurrent requests on one or many
 * instances cannot overrun a limit. No statement waits on another request for longer than a row lock.
 */
@Injectable()
export class OtpRequestRepository {
  /**
   * How far back the history is read: the policy window plus a code's lifetime, since a code sent
   * just before the window may have been exhausted inside it (and so still counts for lockout).
   */
  private readonly lookbackSeconds: number;
  /** Where the cap marks sit in each window, newest first (see `CapMarks`). */
  private readonly capOffsets: Record<'hourly' | 'daily', { offset: number; limit: number }>;

  constructor(
    @Inject(OTP_DATA_SOURCE) private readonly dataSource: DataSource,
    @Inject(OTP_OPTIONS) private readonly options: OtpModuleOptions,
  ) {
    this.lookbackSeconds = POLICY_WINDOW_SECONDS + options.ttlSeconds;
    // Positions cap-1 and cap (1-based) are rows cap-2 and cap-1 (0-based); a cap of 1 has only one.
    const marks = (cap: number) => ({ offset: Math.max(cap - 2, 0), limit: cap >= 2 ? 2 : 1 });
    this.capOffsets = {
      hourly: marks(options.maxSendsPerHour),
      daily: marks(options.maxSendsPerDay),
    };
  }

  /**
   * What a send to `destination` for `purpose` decides on, in one round trip: the database's clock,
   * the destination's version, the bounded `SendHistory` the policy reads (see its doc: a few rows
   * and the cap marks, however long the history), and the row an idempotency key already names.
   * Each part is an index range scan with a LIMIT, on `(destination, created_at)` or the partial
   * indexes of exhausted and verified codes.
   */
  async loadHistory(
    destination: string,
    purpose: string,
    idempotencyKey: string | null,
  ): Promise<SendSnapshot> {
    const { hourly, daily } = this.capOffsets;
    const [head] = await this.dataSource.query<
      {
        now: Date;
        version: string;
        entries: JsonHistory[];
        hourly: string[] | null;
        daily: string[] | null;
        idempotent: JsonRow | null;
      }[]
    >(
      `WITH since AS (SELECT statement_timestamp() - make_interval(secs => $3) AS t)
       SELECT statement_timestamp() AS now,
         COALESCE((SELECT version FROM otp_destinations WHERE destination = $1), 0) AS version,
         COALESCE((SELECT json_agg(json_build_object(
             'purpose', e.purpose, 'createdAt', e.created_at, 'deliveryStatus', e.delivery_status,
             'verifiedAt', e.verified_at, 'exhaustedAt', e.exhausted_at))
           FROM (
             (SELECT id, purpose, created_at, delivery_status, verified_at, exhausted_at
                FROM otp_requests, since WHERE destination = $1 AND purpose = $2
                  AND delivery_status <> 'failed' AND created_at > since.t
                ORDER BY created_at DESC LIMIT $5)
             UNION
             (SELECT id, purpose, created_at, delivery_status, verified_at, exhausted_at
                FROM otp_requests, since WHERE destination = $1 AND exhausted_at IS NOT NULL
                  AND created_at > since.t
                ORDER BY exhausted_at DESC LIMIT $6)
             UNION
             (SELECT id, purpose, created_at, delivery_status, verified_at, exhausted_at
                FROM otp_requests, since WHERE destination = $1 AND verified_at IS NOT NULL
                  AND created_at > since.t
                ORDER BY verified_at DESC LIMIT 1)
             UNION
             (SELECT id, purpose, created_at, delivery_status, verified_at, exhausted_at
                FROM otp_requests, since WHERE destination = $1 AND purpose = $2
                  AND verified_at IS NOT NULL AND created_at > since.t
                ORDER BY verified_at DESC LIMIT 1)
           ) e), '[]') AS entries,
         (SELECT array_agg(created_at ORDER BY created_at DESC) FROM (
            SELECT created_at FROM otp_requests WHERE destination = $1
              AND created_at > statement_timestamp() - interval '1 hour'
            ORDER BY created_at DESC OFFSET $7 LIMIT $8) w) AS hourly,
         (SELECT array_agg(created_at ORDER BY created_at DESC) FROM (
            SELECT created_at FROM otp_requests WHERE destination = $1
              AND created_at > statement_timestamp() - make_interval(secs => $4)
            ORDER BY created_at DESC OFFSET $9 LIMIT $10) w) AS daily,
         (SELECT row_to_json(i) FROM otp_requests i
           WHERE $11::text IS NOT NULL AND i.idempotency_key = $11
             AND i.created_at > statement_timestamp() - make_interval(secs => $4)) AS idempotent`,
      [
        destination,
        purpose,
        this.lookbackSeconds,
        POLICY_WINDOW_SECONDS,
        this.options.resendCooldownSeconds.length,
        this.options.lockoutStepSeconds.length,
        hourly.offset,
        hourly.limit,
        daily.offset,
        daily.limit,
        idempotencyKey,
      ],
    );
    if (!head) throw new Error('history query returned no row');
    return {
      now: head.now,
      version: String(head.version),
      history: {
        entries: head.entries.map((h) => ({
          purpose: h.purpose,
          createdAt: new Date(h.createdAt),
          deliveryStatus: h.deliveryStatus,
          verifiedAt: h.verifiedAt ? new Date(h.verifiedAt) : null,
          exhaustedAt: h.exhaustedAt ? new Date(h.exhaustedAt) : null,
        })),
        hourly: toCapMarks(head.hourly, this.options.maxSendsPerHour),
        daily: toCapMarks(head.daily, this.options.maxSendsPerDay),
      },
      idempotent: head.idempotent ? toEntity(reviveRow(head.idempotent)) : null,
    };
  }

  /**
   * Inserts a send decided on the snapshot whose destination version was `expectedVersion`, in one
   * statement, and only if no other send to the destination committed since: the statement bumps
   * the version with a compare-and-set (a concurrent send blocks on the version row, then finds
   * the version moved and inserts nothing). The same statement supersedes the flow's active code and
   * releases an idempotency key held by a row older than the window (one UPDATE, since a row may
   * match both); the INSERT reads that UPDATE's count, which makes Postgres finish it first, so the
   * old active row is out of the unique index in time.
   *
   * Returns false when another send won the race (or took the same idempotency key): the caller
   * reads the history again and decides again.
   */
  async insertIfUnchanged(row: NewOtpRequest, expectedVersion: string): Promise<boolean> {
    try {
      const inserted = await this.dataSource.query<{ id: string }[]>(
        `WITH claimed AS (
           INSERT INTO otp_destinations AS d (destination, version, updated_at)
           VALUES ($1, $13::bigint + 1, $3)
           ON CONFLICT (destination) DO UPDATE SET version = d.version + 1, updated_at = EXCLUDED.updated_at
             WHERE d.version = $13::bigint
           RETURNING version),
         released AS (
           UPDATE otp_requests SET
             superseded_at = CASE WHEN ${IN_FLOW} THEN $3 ELSE superseded_at END,
             code_hash = CASE WHEN ${IN_FLOW} THEN NULL ELSE code_hash END,
             idempotency_key = CASE WHEN ${STALE_KEY} THEN NULL ELSE idempotency_key END
           WHERE (${IN_FLOW} OR ${STALE_KEY})
             AND EXISTS (SELECT 1 FROM claimed)
           RETURNING 1)
         INSERT INTO otp_requests (id, destination, purpose, channel, code_hash, code_length,
           max_attempts, created_at, expires_at, resend_available_at, idempotency_key,
           request_fingerprint)
         SELECT $5::uuid, $1::varchar, $2::varchar, $6::varchar, $7::varchar, $8::smallint,
           $9::smallint, $3::timestamptz, $10::timestamptz, $11::timestamptz, $4::varchar, $12::char(64)
         FROM (SELECT count(*) FROM released) AS superseded
         WHERE EXISTS (SELECT 1 FROM claimed)
         RETURNING id`,
        [
          row.destination,
          row.purpose,
          row.createdAt,
          row.idempotencyKey,
          row.id,
          row.channel,
          row.codeHash,
          row.codeLength,
          row.maxAttempts,
          row.expiresAt,
          row.resendAvailableAt,
          row.requestFingerprint,
          expectedVersion,
          POLICY_WINDOW_SECONDS,
        ],
      );
      return inserted.length === 1;
    } catch (error) {
      // Another send took the same idempotency key (for another destination) first.
      if (isUniqueViolation(error, 'otp_requests_idempotency_key_uq')) return false;
      throw error;
    }
  }

  /** Records a successful delivery and the channel that carried it. */
  async markDelivered(id: string, channel: OtpChannel): Promise<void> {
    await this.dataSource.query(
      `UPDATE otp_requests SET delivery_status = 'sent', delivered_at = statement_timestamp(),
         channel = $2 WHERE id = $1`,
      [id, channel],
    );
  }

  /**
   * Records a failed delivery: the code can never verify (its hash is dropped) and the
   * idempotency key is released, so a retry with the same key sends again.
   */
  async markFailed(id: string): Promise<void> {
    await this.dataSource.query(
      `UPDATE otp_requests SET delivery_status = 'failed', code_hash = NULL, idempotency_key = NULL
        WHERE id = $1`,
      [id],
    );
  }

  /**
   * Reserves one attempt on the flow's active code, if it has one left and has not expired: a single
   * conditional UPDATE, so N concurrent guesses reserve at most `max_attempts` between them.
   */
  async reserveAttempt(destination: string, purpose: string): Promise<ReservedAttempt | null> {
    const rows = await this.dataSource.query<
      Pick<OtpRequestRow, 'id' | 'code_hash' | 'attempts_used' | 'max_attempts'>[]
    >(
      `WITH reserved AS (
         UPDATE otp_requests SET attempts_used = attempts_used + 1
          WHERE destination = $1 AND purpose = $2 AND ${ACTIVE}
            AND attempts_used < max_attempts AND expires_at > statement_timestamp()
            AND code_hash IS NOT NULL
          RETURNING id, code_hash, attempts_used, max_attempts),
       -- A code seen past its expiry can never verify: drop its hash now, not at the next purge.
       expired AS (
         UPDATE otp_requests SET code_hash = NULL
          WHERE destination = $1 AND purpose = $2 AND ${ACTIVE}
            AND expires_at <= statement_timestamp() AND code_hash IS NOT NULL)
       SELECT * FROM reserved`,
      [destination, purpose],
    );
    const row = rows[0];
    if (!row || !row.code_hash) return null;
    return {
      id: row.id,
      codeHash: row.code_hash,
      attemptsUsed: row.attempts_used,
      maxAttempts: row.max_attempts,
    };
  }

  /**
   * Marks a code verified and attaches the verification token, unless a resend superseded it or
   * it expired meanwhile. A right guess that held a reserved attempt wins even if a wrong guess
   * holding a later attempt marked the code exhausted first: it was evaluated within the budget,
   * as if the guesses had run one after another. Returns the token's expiry, or null.
   */
  async markVerified(id: string, tokenHash: string, tokenTtlSeconds: number): Promise<Date | null> {
    const rows = await this.dataSource.query<{ token_expires_at: Date }[]>(
      `WITH verified AS (
         UPDATE otp_requests SET verified_at = statement_timestamp(), code_hash = NULL,
           exhausted_at = NULL,
           token_hash = $2, token_expires_at = statement_timestamp() + make_interval(secs => $3)
          WHERE id = $1 AND verified_at IS NULL AND superseded_at IS NULL
            AND delivery_status <> 'failed' AND expires_at > statement_timestamp()
          RETURNING token_expires_at)
       SELECT * FROM verified`,
      [id, tokenHash, tokenTtlSeconds],
    );
    return rows[0]?.token_expires_at ?? null;
  }

  /** Marks a code exhausted once its attempts are all used, unless it was verified meanwhile. */
  async markExhausted(id: string): Promise<void> {
    await this.dataSource.query(
      `UPDATE otp_requests SET exhausted_at = statement_timestamp(), code_hash = NULL
        WHERE id = $1 AND attempts_used >= max_attempts AND ${ACTIVE}`,
      [id],
    );
  }

  /**
   * The flow's newest code that was not superseded or failed, with the database clock: why a
   * verify found nothing to reserve (never sent, expired, used, exhausted).
   */
  async findLatestInFlow(
    destination: string,
    purpose: string,
  ): Promise<{ now: Date; latest: OtpRequest | null }> {
    const [head] = await this.dataSource.query<{ now: Date; latest: JsonRow | null }[]>(
      `SELECT statement_timestamp() AS now,
         (SELECT row_to_json(r) FROM otp_requests r
           WHERE r.destination = $1 AND r.purpose = $2 AND r.superseded_at IS NULL
             AND r.delivery_status <> 'failed'
           ORDER BY r.created_at DESC LIMIT 1) AS latest`,
      [destination, purpose],
    );
    return {
      now: head?.now ?? new Date(),
      latest: head?.latest ? toEntity(reviveRow(head.latest)) : null,
    };
  }

  /** The send history of a destination and the clock (for reporting: status, retryAfter). */
  async readHistory(
    destination: string,
    purpose: string,
  ): Promise<{ now: Date; history: SendHistory }> {
    const { now, history } = await this.loadHistory(destination, purpose, null);
    return { now, history };
  }

  /** One request by id, with the database clock. */
  async findById(id: string): Promise<{ now: Date; request: OtpRequest | null }> {
    const [head] = await this.dataSource.query<{ now: Date; request: JsonRow | null }[]>(
      `SELECT statement_timestamp() AS now,
         (SELECT row_to_json(r) FROM otp_requests r WHERE r.id = $1) AS request`,
      [id],
    );
    return {
      now: head?.now ?? new Date(),
      request: head?.request ? toEntity(reviveRow(head.request)) : null,
    };
  }

  /**
   * Consumes a verification token: one conditional UPDATE, so a token passes exactly once even
   * when presented many times at once. Returns what it verified, or null.
   */
  async consumeToken(
    tokenHash: string,
    purpose: string,
  ): Promise<{ requestId: string; destination: string; purpose: string } | null> {
    const rows = await this.dataSource.query<
      { id: string; destination: string; purpose: string }[]
    >(
      `WITH consumed AS (
         UPDATE otp_requests SET token_used_at = statement_timestamp()
          WHERE token_hash = $1 AND purpose = $2 AND token_used_at IS NULL
            AND token_expires_at > statement_timestamp()
          RETURNING id, destination, purpose)
       SELECT * FROM consumed`,
      [tokenHash, purpose],
    );
    const row = rows[0];
    return row ? { requestId: row.id, destination: row.destination, purpose: row.purpose } : null;
  }
}

/** json_agg / row_to_json hand timestamps back as strings. */
interface JsonHistory {
  purpose: string;
  createdAt: string;
  deliveryStatus: DeliveryStatus;
  verifiedAt: string | null;
  exhaustedAt: string | null;
}
type JsonRow = Record<keyof OtpRequestRow, unknown>;

const TIMESTAMP_COLUMNS = [
  'created_at',
  'expires_at',
  'resend_available_at',
  'delivered_at',
  'verified_at',
  'exhausted_at',
  'superseded_at',
  'token_expires_at',
  'token_used_at',
] as const;

function reviveRow(json: JsonRow): OtpRequestRow {
  const row = { ...json } as Record<string, unknown>;
  for (const column of TIMESTAMP_COLUMNS) {
    const value = row[column];
    row[column] = value === null || value === undefined ? null : new Date(value as string);
  }
  return row as unknown as OtpRequestRow;
}

function isUniqueViolation(error: unknown, constraint: string): boolean {
  const e = error as {
    driverError?: { code?: unknown; constraint?: unknown };
    code?: unknown;
    constraint?: unknown;
  };
  const driver = e?.driverError ?? e;
  return driver?.code === '23505' && driver?.constraint === constraint;
}

/** Cap marks from the timestamps at positions cap-1 and cap (or just cap, for a cap of 1). */
function toCapMarks(times: string[] | null, cap: number): CapMarks {
  const at = (i: number): Date | null => (times?.[i] ? new Date(times[i]) : null);
  return cap >= 2 ? { atCapMinusOne: at(0), atCap: at(1) } : { atCapMinusOne: null, atCap: at(0) };
}
