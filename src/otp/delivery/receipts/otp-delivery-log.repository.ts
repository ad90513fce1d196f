import { Injectable } from '@nestjs/common';
import type { QueryResultRow } from 'pg';
import {
  OtpConnection,
  prepared,
  type PreparedStatement,
} from '../../persistence/otp-connection.js';
import { StatementBatcher } from '../../persistence/statement-batcher.js';
import type { OtpChannel } from '../../otp.types.js';

/** A delivery attempt's status, as providers report it. */
export type DeliveryReceiptStatus = 'queued' | 'sent' | 'delivered' | 'undelivered' | 'failed';
export const DELIVERY_RECEIPT_STATUSES: readonly DeliveryReceiptStatus[] = [
  'queued',
  'sent',
  'delivered',
  'undelivered',
  'failed',
];

/** Why an attempt was made: the send itself, a failure receipt, or silence. */
export type DeliveryCause = 'send' | 'receipt' | 'silence';

/** One attempt to record. */
export interface DeliveryRecord {
  channel: OtpChannel;
  provider: string;
  messageId: string | null;
  deliveredTo: string | null;
  status: DeliveryReceiptStatus;
}

/** One recorded attempt, as the status route lists it. */
export interface DeliveryLogEntry {
  seq: number;
  channel: OtpChannel;
  provider: string;
  deliveredTo: string | null;
  status: DeliveryReceiptStatus;
  cause: DeliveryCause;
  createdAt: Date;
  statusAt: Date;
}

/** A fallback claimed by this instance until its lease ends. */
export interface ClaimedFallback {
  requestId: string;
  requestCreatedAt: Date;
  sealed: Buffer;
  channelsUsed: OtpChannel[];
  dueAt: Date;
  /** The due time as Postgres wrote it (microseconds), to recognise it when the claim ends. */
  dueExact: string;
  dueCause: 'receipt' | 'silence';
  expiresAt: Date;
}

/** The request a fallback belongs to, with whether its code can still verify. */
export interface FallbackRequest {
  id: string;
  destination: string;
  purpose: string;
  channel: OtpChannel;
  createdAt: Date;
  expiresAt: Date;
  active: boolean;
}

/** A code still able to verify, as far as its row says (as the request repository's ACTIVE). */
const ACTIVE = `r.verified_at IS NULL AND r.exhausted_at IS NULL AND r.superseded_at IS NULL
  AND r.delivery_status = 'sent' AND r.code_hash IS NOT NULL AND r.expires_at > statement_timestamp()`;

/**
 * A send whose first delivery succeeded, in one statement (one round trip, one commit): the request
 * row is marked delivered (`sent`, by which channel, provider and address), its attempts are
 * logged, and, `withFallback`, when a re-delivery is possible, its fallback row is written (the
 * sealed code, the channels used, the silence due time). The fallback row is written only while
 * the code is live, as the UPDATE returns it: the UPDATE holds the row's lock until commit, so a
 * verify or supersede that drops the hash either ran first (the returned row is not live: nothing
 * is written) or waits, then deletes the fallback row by its trigger. Without a fallback row to
 * write (most sends: no channel left, or adaptive delivery off) the statement leaves the insert
 * out, whose executor start-up (otp_fallbacks and its indexes) it would pay on every call to
 * write nothing.
 */
const recordDelivered = (withFallback: boolean) =>
  prepared(`
WITH delivered AS (
  UPDATE otp_requests r SET delivery_status = 'sent', delivered_at = statement_timestamp(),
    channel = $7::varchar, delivered_by = $8::varchar, delivered_to = $9::varchar
   WHERE r.id = $1::uuid
  RETURNING r.id, r.created_at, r.expires_at, r.delivered_at,
    (r.verified_at IS NULL AND r.exhausted_at IS NULL AND r.superseded_at IS NULL
      AND r.code_hash IS NOT NULL AND r.expires_at > statement_timestamp()) AS live),
attempts AS (
  INSERT INTO otp_deliveries (request_id, seq, channel, provider, provider_message_id,
    delivered_to, status, cause)
  SELECT $1::uuid, a.ord, a.channel, a.provider, a.message_id, a.delivered_to, a.status, 'send'
    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
      WITH ORDINALITY AS a(channel, provider, message_id, delivered_to, status, ord)
   WHERE EXISTS (SELECT 1 FROM delivered)
  ON CONFLICT DO NOTHING
  RETURNING 1)${
    withFallback
      ? `,
fallback AS (
  INSERT INTO otp_fallbacks (request_id, request_created_at, sealed, channels_used, expires_at,
    due_at, due_cause)
  SELECT d.id, d.created_at, $10::bytea, $11::text[], d.expires_at, due.at,
    CASE WHEN due.at IS NULL THEN NULL ELSE 'silence' END
    FROM delivered d, LATERAL (SELECT CASE
      WHEN $12::int IS NOT NULL
        AND d.delivered_at + make_interval(secs => $12::int) < d.expires_at
      THEN d.delivered_at + make_interval(secs => $12::int) END AS at) due
   WHERE d.live
  ON CONFLICT (request_id) DO NOTHING
  RETURNING 1)`
      : ''
  }
-- EXISTS, not count(*): an aggregate's set-up costs each call more than the rest of this line.
-- \`attempts\` runs whether or not it is read, as every data-modifying WITH does.
SELECT EXISTS (SELECT 1 FROM delivered) AS delivered,
  ${withFallback ? 'EXISTS (SELECT 1 FROM fallback)' : 'false'} AS fallback`);

const RECORD_DELIVERED = recordDelivered(true);
const RECORD_DELIVERED_WITHOUT_FALLBACK = recordDelivered(false);

/**
 * Parameters a send takes in `recordDeliveredTogether`: request id, channel, provider, address,
 * message id, attempt status.
 */
const TOGETHER_PARAMS = 6;

/**
 * `RECORD_DELIVERED_WITHOUT_FALLBACK` for `size` sends at once, each with the one attempt that
 * delivered it (`StatementBatcher`): each request row is marked delivered and its attempt logged,
 * in one statement and one commit. Answers the ids it marked; a request missing from them is gone.
 * Its arrays are built from `size` sets of parameters, not passed as arrays: Postgres then knows
 * how many rows they hold when it plans, and the prepared statement settles on one generic plan
 * (an array parameter counts as ten rows in a generic plan, so the statement would be planned
 * again on every call, which cost more than the rows it saves). Sizes go by powers of two (2 to
 * 64), the unused places null: a null id matches no row. Each row is found by its primary key, as
 * alone, and the rows of one statement are those of sends that are all still answering, so no
 * other statement of the module waits on more than one of them.
 */
const recordDeliveredTogether = (size: number): PreparedStatement => {
  const column = (offset: number, type: string): string =>
    `ARRAY[${Array.from({ length: size }, (_, i) => `$${i * TOGETHER_PARAMS + offset}::${type}`).join(', ')}]`;
  return prepared(`
WITH sent AS (
  SELECT * FROM unnest(${column(1, 'uuid')}, ${column(2, 'varchar')}, ${column(3, 'varchar')},
    ${column(4, 'varchar')}, ${column(5, 'text')}, ${column(6, 'text')})
    AS s(id, channel, provider, delivered_to, message_id, status)),
delivered AS (
  UPDATE otp_requests r SET delivery_status = 'sent', delivered_at = statement_timestamp(),
    channel = s.channel, delivered_by = s.provider, delivered_to = s.delivered_to
    FROM sent s
   WHERE r.id = s.id
  RETURNING r.id, s.channel, s.provider, s.delivered_to, s.message_id, s.status),
attempts AS (
  INSERT INTO otp_deliveries (request_id, seq, channel, provider, provider_message_id,
    delivered_to, status, cause)
  SELECT d.id, 1, d.channel, d.provider, d.message_id, d.delivered_to, d.status, 'send'
    FROM delivered d
  ON CONFLICT DO NOTHING
  RETURNING 1)
SELECT id FROM delivered`);
};

/** The statements for 2, 4, 8, 16, 32 and 64 sends. */
const RECORD_DELIVERED_TOGETHER = new Map(
  [2, 4, 8, 16, 32, 64].map((size) => [size, recordDeliveredTogether(size)]),
);

/** A send's first delivery, as `recordDelivered` takes it when it has no fallback to write. */
interface DeliveredSend {
  requestId: string;
  delivery: { channel: OtpChannel; provider: string; deliveredTo: string | null };
  attempts: readonly DeliveryRecord[];
}

/**
 * One delivery record in flight at a time: under load the sends whose deliveries end meanwhile
 * are recorded together (bench/README.md, round 13). At most 64 a statement.
 */
const DELIVERY_BATCHES = { maxInFlight: 1, maxBatch: 64 };

/** Further attempts of a request (a re-delivery), numbered after its last one. */
const APPEND_ATTEMPTS = prepared(`
INSERT INTO otp_deliveries (request_id, seq, channel, provider, provider_message_id, delivered_to,
  status, cause)
SELECT $1::uuid, m.base + a.ord, a.channel, a.provider, a.message_id, a.delivered_to, a.status, $7::text
  FROM (SELECT COALESCE(max(seq), 0) AS base FROM otp_deliveries WHERE request_id = $1::uuid) m,
       unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
         WITH ORDINALITY AS a(channel, provider, message_id, delivered_to, status, ord)`);

/**
 * A provider's receipt: moves the attempt's status forward (a final status stays; `sent` never goes
 * back to `queued`); an `undelivered` or `failed` one for the request's latest attempt makes its
 * fallback due now, unless a fallback is due already or the code expired.
 */
const APPLY_RECEIPT = prepared(`
WITH updated AS (
  UPDATE otp_deliveries SET status = $3::text, error_code = $4::text,
    status_at = statement_timestamp()
   WHERE provider = $1::text AND provider_message_id = $2::text
     AND status NOT IN ('delivered', 'undelivered', 'failed')
     AND NOT (status = 'sent' AND $3::text = 'queued')
  RETURNING request_id, seq, status),
latest AS (
  SELECT u.request_id FROM updated u
   WHERE u.status IN ('undelivered', 'failed')
     AND u.seq = (SELECT max(x.seq) FROM otp_deliveries x WHERE x.request_id = u.request_id)),
due AS (
  UPDATE otp_fallbacks f SET due_at = statement_timestamp(), due_cause = 'receipt'
    FROM latest
   WHERE f.request_id = latest.request_id
     AND (f.due_at IS NULL OR f.due_at > statement_timestamp())
     AND f.expires_at > statement_timestamp()
  RETURNING f.request_id)
SELECT (SELECT count(*) FROM updated)::int AS updated, (SELECT request_id FROM due LIMIT 1) AS due`);

/**
 * Claims due fallbacks (or the one of `$1`): rows another instance holds locked are skipped, and a
 * row claimed (leased) by another is not due for this one until its lease ends, so no two instances
 * work on one fallback. The lease outlasts a re-delivery; it frees a row whose instance died.
 */
const CLAIM_DUE = prepared(`
WITH due AS (
  SELECT request_id FROM otp_fallbacks
   WHERE due_at <= statement_timestamp()
     AND (lease_until IS NULL OR lease_until < statement_timestamp())
     AND ($1::uuid IS NULL OR request_id = $1::uuid)
   ORDER BY due_at LIMIT $2
   FOR UPDATE SKIP LOCKED)
UPDATE otp_fallbacks f SET lease_until = statement_timestamp() + make_interval(secs => $3::int)
  FROM due WHERE f.request_id = due.request_id
RETURNING f.request_id, f.request_created_at, f.sealed, f.channels_used, f.due_at,
  -- Exactly, to the microsecond (a JavaScript Date keeps milliseconds): FINISH_CLAIM compares it.
  f.due_at::text AS due_exact, f.due_cause, f.expires_at`);

/** Ends a claim: the channels used so far; the due time it served is done (a newer one stays). */
const FINISH_CLAIM = prepared(`
UPDATE otp_fallbacks SET lease_until = NULL, channels_used = $2::text[],
  due_at = CASE WHEN due_at = $3::timestamptz THEN NULL ELSE due_at END,
  due_cause = CASE WHEN due_at = $3::timestamptz THEN NULL ELSE due_cause END
 WHERE request_id = $1::uuid`);

const FIND_REQUEST = prepared(`
SELECT r.id, r.destination, r.purpose, r.channel, r.created_at, r.expires_at,
  (${ACTIVE}) AS active
  FROM otp_requests r WHERE r.id = $1::uuid AND r.created_at = $2::timestamptz`);

/**
 * A re-delivery is a send: a row of its own in otp_requests (so the send caps, per destination and
 * per account, count it), already superseded and without a code (so it never verifies and leaves the
 * flow's active code alone). Written with the send's compare-and-set on the destination's version,
 * and only while the request's code is live.
 */
const INSERT_REDELIVERY = prepared(`
WITH claimed AS (
  INSERT INTO otp_destinations AS d (destination, version, updated_at)
  VALUES ($3, $4::bigint + 1, statement_timestamp())
  ON CONFLICT (destination) DO UPDATE SET version = d.version + 1, updated_at = EXCLUDED.updated_at
    WHERE d.version = $4::bigint
  RETURNING version)
INSERT INTO otp_requests (id, destination, purpose, channel, code_hash, code_length, max_attempts,
  created_at, expires_at, resend_available_at, superseded_at, subject)
SELECT $5::uuid, r.destination, r.purpose, $6::varchar, NULL, r.code_length, r.max_attempts,
  statement_timestamp(), r.expires_at, r.resend_available_at, statement_timestamp(), r.subject
  FROM otp_requests r
 WHERE r.id = $1::uuid AND r.created_at = $2::timestamptz AND ${ACTIVE}
   AND EXISTS (SELECT 1 FROM claimed)
RETURNING id, created_at`);

const MARK_REDELIVERY = prepared(`
UPDATE otp_requests SET delivery_status = $3::varchar,
  delivered_at = CASE WHEN $3::varchar = 'sent' THEN statement_timestamp() END,
  delivered_by = $4::varchar, delivered_to = $5::varchar
 WHERE id = $1::uuid AND created_at = $2::timestamptz`);

/** The channels a fallback used, written before it sends on the next: at most once a channel. */
const MARK_USED = prepared(
  `UPDATE otp_fallbacks SET channels_used = $2::text[] WHERE request_id = $1::uuid`,
);

const FORGET = prepared(`DELETE FROM otp_fallbacks WHERE request_id = $1::uuid`);

/** Fallbacks whose code expired: their sealed copies go (the trigger covers every other end). */
const SWEEP_EXPIRED = prepared(`
DELETE FROM otp_fallbacks WHERE request_id IN (
  SELECT request_id FROM otp_fallbacks WHERE expires_at <= statement_timestamp()
   ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)`);

/** Attempts older than the retention window, in a batch. */
const PURGE_ATTEMPTS = prepared(`
DELETE FROM otp_deliveries WHERE (request_id, seq) IN (
  SELECT request_id, seq FROM otp_deliveries
   WHERE created_at < statement_timestamp() - make_interval(secs => $1::int)
   ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)`);

const LIST = prepared(`
SELECT seq, channel, provider, delivered_to, status, cause, created_at, status_at
  FROM otp_deliveries WHERE request_id = $1::uuid ORDER BY seq`);

/**
 * The delivery log (otp_deliveries) and the fallback state (otp_fallbacks): every statement is one
 * round trip on the module's pool, and every write that decides something is one conditional
 * statement, like the request repository's.
 */
@Injectable()
export class OtpDeliveryLogRepository {
  private readonly deliveredSends = new StatementBatcher<DeliveredSend, boolean>(
    (sends) => this.recordDeliveredBatch(sends),
    (send) => this.recordDeliveredAlone(send),
    DELIVERY_BATCHES,
  );

  constructor(private readonly connection: OtpConnection) {}

  /**
   * Marks a send delivered and records its first delivery (see `RECORD_DELIVERED`). Throws when
   * the statement fails, like any write the send depends on: a code whose delivery could not be
   * recorded never verifies.
   */
  async recordDelivered(
    requestId: string,
    delivery: { channel: OtpChannel; provider: string; deliveredTo: string | null },
    attempts: readonly DeliveryRecord[],
    fallback: { sealed: Buffer; channelsUsed: OtpChannel[]; dueAfterSeconds: number | null } | null,
  ): Promise<{ fallback: boolean }> {
    if (!fallback) {
      // Most sends (delivered by their first provider, nothing more to write) are recorded with
      // the sends that end at the same time.
      const send = { requestId, delivery, attempts };
      const delivered = deliveredByItsOnlyAttempt(delivery, attempts)
        ? await this.deliveredSends.submit(send)
        : await this.recordDeliveredAlone(send);
      if (!delivered) gone(requestId);
      return { fallback: false };
    }
    const [row] = await this.query<{ delivered: boolean; fallback: boolean }>(RECORD_DELIVERED, [
      requestId,
      ...columns(attempts),
      delivery.channel,
      delivery.provider,
      delivery.deliveredTo,
      fallback.sealed,
      fallback.channelsUsed,
      fallback.dueAfterSeconds,
    ]);
    if (row?.delivered !== true) gone(requestId);
    return { fallback: row.fallback };
  }

  private async recordDeliveredAlone(send: DeliveredSend): Promise<boolean> {
    const [row] = await this.query<{ delivered: boolean }>(RECORD_DELIVERED_WITHOUT_FALLBACK, [
      send.requestId,
      ...columns(send.attempts),
      send.delivery.channel,
      send.delivery.provider,
      send.delivery.deliveredTo,
    ]);
    return row?.delivered === true;
  }

  private async recordDeliveredBatch(sends: DeliveredSend[]): Promise<boolean[]> {
    if (sends.length === 1) return [await this.recordDeliveredAlone(sends[0] as DeliveredSend)];
    let size = 2;
    while (size < sends.length) size *= 2;
    const values: unknown[] = sends.flatMap((send) => {
      const attempt = send.attempts[0] as DeliveryRecord;
      return [
        send.requestId,
        send.delivery.channel,
        send.delivery.provider,
        send.delivery.deliveredTo,
        attempt.messageId,
        attempt.status,
      ];
    });
    // The unused places of the statement: a null id matches no row.
    while (values.length < size * TOGETHER_PARAMS) values.push(null);
    const rows = await this.query<{ id: string }>(
      RECORD_DELIVERED_TOGETHER.get(size) as PreparedStatement,
      values,
    );
    const marked = new Set(rows.map((row) => row.id.toLowerCase()));
    return sends.map((send) => marked.has(send.requestId.toLowerCase()));
  }

  async appendAttempts(
    requestId: string,
    attempts: readonly DeliveryRecord[],
    cause: DeliveryCause,
  ): Promise<void> {
    if (attempts.length === 0) return;
    await this.query(APPEND_ATTEMPTS, [requestId, ...columns(attempts), cause]);
  }

  /** Applies a receipt; `due` is the request whose fallback it made due now, if any. */
  async applyReceipt(receipt: {
    provider: string;
    messageId: string;
    status: DeliveryReceiptStatus;
    errorCode: string | null;
  }): Promise<{ updated: boolean; due: string | null }> {
    const [row] = await this.query<{ updated: number; due: string | null }>(APPLY_RECEIPT, [
      receipt.provider,
      receipt.messageId,
      receipt.status,
      receipt.errorCode,
    ]);
    return { updated: (row?.updated ?? 0) > 0, due: row?.due ?? null };
  }

  async claimDue(
    requestId: string | null,
    limit: number,
    leaseSeconds: number,
  ): Promise<ClaimedFallback[]> {
    const rows = await this.query<{
      request_id: string;
      request_created_at: Date;
      sealed: Buffer;
      channels_used: OtpChannel[];
      due_at: Date;
      due_exact: string;
      due_cause: 'receipt' | 'silence' | null;
      expires_at: Date;
    }>(CLAIM_DUE, [requestId, limit, leaseSeconds]);
    return rows.map((r) => ({
      requestId: r.request_id,
      requestCreatedAt: r.request_created_at,
      sealed: r.sealed,
      channelsUsed: r.channels_used,
      dueAt: r.due_at,
      dueExact: r.due_exact,
      dueCause: r.due_cause ?? 'silence',
      expiresAt: r.expires_at,
    }));
  }

  async finishClaim(claim: ClaimedFallback, channelsUsed: readonly OtpChannel[]): Promise<void> {
    await this.query(FINISH_CLAIM, [claim.requestId, channelsUsed, claim.dueExact]);
  }

  async findRequest(id: string, createdAt: Date): Promise<FallbackRequest | null> {
    const [row] = await this.query<{
      id: string;
      destination: string;
      purpose: string;
      channel: OtpChannel;
      created_at: Date;
      expires_at: Date;
      active: boolean;
    }>(FIND_REQUEST, [id, createdAt]);
    return row
      ? {
          id: row.id,
          destination: row.destination,
          purpose: row.purpose,
          channel: row.channel,
          createdAt: row.created_at,
          expiresAt: row.expires_at,
          active: row.active,
        }
      : null;
  }

  /** Inserts a re-delivery's own row; null when the version moved or the code is no longer live. */
  async insertRedelivery(
    request: FallbackRequest,
    expectedVersion: string,
    id: string,
    channel: OtpChannel,
  ): Promise<{ id: string; createdAt: Date } | null> {
    const [row] = await this.query<{ id: string; created_at: Date }>(INSERT_REDELIVERY, [
      request.id,
      request.createdAt,
      request.destination,
      expectedVersion,
      id,
      channel,
    ]);
    return row ? { id: row.id, createdAt: row.created_at } : null;
  }

  async markRedelivery(
    row: { id: string; createdAt: Date },
    outcome: { status: 'sent' | 'failed'; provider: string | null; deliveredTo: string | null },
  ): Promise<void> {
    await this.query(MARK_REDELIVERY, [
      row.id,
      row.createdAt,
      outcome.status,
      outcome.provider,
      outcome.deliveredTo,
    ]);
  }

  async markUsed(requestId: string, channelsUsed: readonly OtpChannel[]): Promise<void> {
    await this.query(MARK_USED, [requestId, channelsUsed]);
  }

  async forget(requestId: string): Promise<void> {
    await this.query(FORGET, [requestId]);
  }

  async sweepExpired(limit = 500): Promise<number> {
    return (await this.connection.run(SWEEP_EXPIRED, [limit])).rowCount ?? 0;
  }

  async purgeAttempts(olderThanSeconds: number, limit = 1000): Promise<number> {
    return (await this.connection.run(PURGE_ATTEMPTS, [olderThanSeconds, limit])).rowCount ?? 0;
  }

  async list(requestId: string): Promise<DeliveryLogEntry[]> {
    const rows = await this.query<{
      seq: string;
      channel: OtpChannel;
      provider: string;
      delivered_to: string | null;
      status: DeliveryReceiptStatus;
      cause: DeliveryCause;
      created_at: Date;
      status_at: Date;
    }>(LIST, [requestId]);
    return rows.map((r) => ({
      seq: Number(r.seq),
      channel: r.channel,
      provider: r.provider,
      deliveredTo: r.delivered_to,
      status: r.status,
      cause: r.cause,
      createdAt: r.created_at,
      statusAt: r.status_at,
    }));
  }

  private async query<Row>(statement: PreparedStatement, values: unknown[]): Promise<Row[]> {
    return (await this.connection.run<Row & QueryResultRow>(statement, values)).rows;
  }
}

/**
 * A send its first provider delivered (one attempt, that one), whose provider name fits the log's
 * column: what `recordDeliveredTogether` writes. Any other goes alone, as before.
 */
function deliveredByItsOnlyAttempt(
  delivery: { channel: OtpChannel; provider: string; deliveredTo: string | null },
  attempts: readonly DeliveryRecord[],
): boolean {
  const [only] = attempts;
  return (
    attempts.length === 1 &&
    only !== undefined &&
    only.status !== 'failed' &&
    only.channel === delivery.channel &&
    only.provider === delivery.provider &&
    only.deliveredTo === delivery.deliveredTo &&
    delivery.provider.length <= 64
  );
}

function gone(requestId: string): never {
  throw new Error(`request ${requestId} is gone: cannot mark it delivered`);
}

/** The attempts as the parallel arrays `unnest` reads. */
function columns(attempts: readonly DeliveryRecord[]): string[][] {
  return [
    attempts.map((a) => a.channel),
    attempts.map((a) => a.provider.slice(0, 64)),
    attempts.map((a) => a.messageId as string),
    attempts.map((a) => a.deliveredTo as string),
    attempts.map((a) => a.status),
  ];
}
