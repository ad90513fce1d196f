import { Inject, Injectable } from '@nestjs/common';
import { AsyncLocalStorage } from 'node:async_hooks';
import type { QueryResultRow } from 'pg';
import type { DataSource, EntityManager } from 'typeorm';
import { OTP_OPTIONS } from '../otp.constants.js';
import { OtpConnection, prepared, type PreparedStatement } from './otp-connection.js';
import type { OtpModuleOptions } from '../otp.options.js';
import type { DeliveryStatus, OtpChannel } from '../otp.types.js';
import type { CapMarks, SendHistory } from '../policy/send-policy.js';
import { POLICY_WINDOW_SECONDS } from '../policy/send-policy.js';
import { purposePoliciesOf } from '../policy/purpose-policy.js';
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
  delivered_by: string | null;
  delivered_to: string | null;
  verified_at: Date | null;
  exhausted_at: Date | null;
  superseded_at: Date | null;
  idempotency_key: string | null;
  request_fingerprint: string | null;
  token_hash: string | null;
  token_expires_at: Date | null;
  token_used_at: Date | null;
  cancelled_at: Date | null;
  subject: string | null;
  token_client_hash: string | null;
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
  deliveredBy: r.delivered_by ?? null,
  deliveredTo: r.delivered_to ?? null,
  verifiedAt: r.verified_at,
  exhaustedAt: r.exhausted_at,
  supersededAt: r.superseded_at,
  idempotencyKey: r.idempotency_key,
  requestFingerprint: r.request_fingerprint,
  tokenHash: r.token_hash,
  tokenExpiresAt: r.token_expires_at,
  cancelledAt: r.cancelled_at ?? null,
  subject: r.subject ?? null,
  tokenClientHash: r.token_client_hash ?? null,
  tokenUsedAt: r.token_used_at,
});

/**
 * A statement written with named parameters (`:name`), compiled once to Postgres's positional
 * `$1, $2, …`. Each statement binds its own values by name, so a fragment shared between
 * statements says what it binds, and values are always bound parameters, never spliced into the
 * text. A name used twice binds one value; `::type` casts are not parameters. `Name` lists the
 * statement's parameters, so a call that misses one or adds a stray one does not compile, and
 * `bind` checks at run time that the text names the same ones; `Row` is what a row of its result
 * holds.
 */
class Statement<Name extends string, Row = never> implements PreparedStatement {
  readonly text: string;
  /**
   * The name it is prepared under on each of the module's connections (a digest of its text, so
   * two texts never share one): Postgres parses and plans it once a connection, not once a call.
   */
  readonly name: string;
  private readonly names: readonly string[];
  /** Type only: carries `Row` to `query()`. */
  declare readonly row?: Row;

  constructor(named: string) {
    const names: string[] = [];
    this.text = named.replace(/(?<![:\w]):([A-Za-z_]\w*)/g, (_match, name: string) => {
      const at = names.indexOf(name);
      return `$${at < 0 ? names.push(name) : at + 1}`;
    });
    this.names = names;
    this.name = prepared(this.text).name;
  }

  /** The values in `$n` order. */
  bind(values: Readonly<Record<Name, unknown>>): unknown[] {
    const given: Readonly<Record<string, unknown>> = values;
    // The common case, checked without allocating: exactly the statement's names.
    let present = 0;
    for (const name of this.names) if (name in given) present += 1;
    if (present === this.names.length && Object.keys(given).length === present) {
      return this.names.map((name) => given[name]);
    }
    const missing = this.names.filter((name) => !(name in given));
    const stray = Object.keys(given).filter((name) => !this.names.includes(name));
    if (missing.length > 0 || stray.length > 0) {
      throw new Error(
        `SQL parameters do not match the statement: missing [${missing.join(', ')}], unknown [${stray.join(', ')}]`,
      );
    }
    return this.names.map((name) => given[name]);
  }
}

/*
 * Why the writes that decide something read `WITH x AS (UPDATE … WHERE <condition> … RETURNING …)
 * SELECT * FROM x` (and the send's `WITH claimed AS (INSERT … ON CONFLICT … WHERE …) …`):
 * - The WHERE is the check and the SET the change, in one statement: an atomic compare-and-set.
 *   Postgres locks each row it changes; a statement that had to wait for a concurrent writer
 *   re-checks its WHERE against the committed row (READ COMMITTED), so of N concurrent requests only
 *   those the condition still admits change anything: at most `max_attempts` reservations, one
 *   verify, one use of a token, one send per destination version. No transaction block, no lock
 *   held across round trips, no gap between reading and writing.
 * - RETURNING hands back exactly the rows this statement changed, so the caller learns in the same
 *   round trip whether it won.
 * - Several data-modifying CTEs in one statement share one snapshot and commit or fail together:
 *   the delivery log's `recordDelivered` marks a send delivered and logs it, `insertIfUnchanged` bumps the
 *   destination's version, supersedes and inserts. One round trip does all of it or none of it.
 * - The outer SELECT makes TypeORM's `query()` return the rows alone: for a bare UPDATE it returns
 *   `[rows, rowCount]`.
 */

/**
 * A code still able to verify, as far as its row says (its expiry is checked apart): the predicate
 * of the one-live-code-per-flow index (`IndexLiveFlows`). Every way a code ends drops its hash, a
 * failed delivery too; the predicate names no column a delivery changes, so recording one is a HOT
 * update.
 */
const ACTIVE = `verified_at IS NULL AND exhausted_at IS NULL AND superseded_at IS NULL
  AND code_hash IS NOT NULL`;

/** The flow's active code: `:destination`, `:purpose`. */
const IN_FLOW = `(destination = :destination AND purpose = :purpose AND ${ACTIVE})`;

/**
 * What marking a code verified writes: the hash goes, the token's hash, client binding and expiry
 * come. `MARK_VERIFIED` writes it; `RESERVE_ATTEMPT` writes it on a claimed code the guess matched.
 */
const VERIFIED_SET: readonly (readonly [column: string, value: string])[] = [
  ['verified_at', 'statement_timestamp()'],
  ['code_hash', 'NULL'],
  ['token_hash', ':tokenHash::char(64)'],
  ['token_client_hash', ':clientHash::text'],
  ['token_expires_at', 'statement_timestamp() + make_interval(secs => :tokenTtlSeconds::int)'],
];

/** `VERIFIED_SET` as a SET list; with `when`, each column keeps its value unless `when` holds. */
const verifiedSet = (when?: string): string =>
  VERIFIED_SET.map(([column, value]) =>
    when
      ? `${column} = CASE WHEN ${when} THEN ${value} ELSE ${column} END`
      : `${column} = ${value}`,
  ).join(',\n       ');

/** The row is the claimed request and the guess bound to it is its hash (`RESERVE_ATTEMPT`). */
const CLAIM_MATCHES = `(id = :claimedId::uuid AND code_hash = :claimedHash::varchar)`;

/**
 * A row holding idempotency key `:idempotencyKey` created more than `:keyWindowSeconds` before
 * `:now`: its key may be taken again. A recent holder is never released, so a concurrent send with
 * the same key hits the unique index instead.
 */
const STALE_KEY = `(:idempotencyKey::text IS NOT NULL AND idempotency_key = :idempotencyKey
  AND created_at < :now::timestamptz - make_interval(secs => :keyWindowSeconds))`;

/** The parameters of a history read, fixed by the options (see `historyParams`). */
type HistoryParam =
  | 'lookbackSeconds'
  | 'windowSeconds'
  | 'cooldownRows'
  | 'lockoutRows'
  | 'hourlyOffset'
  | 'hourlyLimit'
  | 'dailyOffset'
  | 'dailyLimit';

/**
 * How far back a history read looks (`:lookbackSeconds`), inline in each part rather than a CTE
 * joined in: the module runs its statements on generic plans (see `OtpConnection`), and a join
 * with a CTE hides from the planner that an index range scan on `(destination, created_at)` is
 * already in order, so it sorted every row of a heavy destination instead of stopping at the LIMIT.
 */
const SINCE = `statement_timestamp() - make_interval(secs => :lookbackSeconds)`;

/**
 * The select-list of a history read (`entries`, `hourly`, `daily`: a bounded `SendHistory`) for the
 * flow whose destination and purpose are the SQL expressions `destination` and `purpose` (bound
 * parameters, or a subquery on the request being shown; never values).
 * Each part is an index range scan with a LIMIT, on `(destination, created_at)` or the partial
 * indexes of exhausted and verified codes.
 */
const historyColumns = (destination: string, purpose: string): string => `
  COALESCE((SELECT json_agg(json_build_object(
      'purpose', e.purpose, 'channel', e.channel, 'createdAt', e.created_at,
      'deliveryStatus', e.delivery_status, 'verifiedAt', e.verified_at,
      -- An unlock (OtpService.unlock) ends the lockouts of every code exhausted before it, also
      -- of the rows read for the cooldown or the last verify, not only of the lockout rows.
      'exhaustedAt', CASE WHEN e.exhausted_at > COALESCE((SELECT unlocked_at
        FROM otp_destinations WHERE destination = ${destination}), '-infinity')
        THEN e.exhausted_at END))
    FROM (
      (SELECT id, purpose, channel, created_at, delivery_status, verified_at, exhausted_at
         FROM otp_requests WHERE destination = ${destination} AND purpose = ${purpose}
           AND delivery_status <> 'failed' AND cancelled_at IS NULL AND created_at > ${SINCE}
         ORDER BY created_at DESC LIMIT :cooldownRows)
      UNION
      (SELECT id, purpose, channel, created_at, delivery_status, verified_at, exhausted_at
         FROM otp_requests WHERE destination = ${destination} AND exhausted_at IS NOT NULL
           AND created_at > ${SINCE} AND exhausted_at > COALESCE((SELECT unlocked_at
             FROM otp_destinations WHERE destination = ${destination}), '-infinity')
         ORDER BY exhausted_at DESC LIMIT :lockoutRows)
      UNION
      (SELECT id, purpose, channel, created_at, delivery_status, verified_at, exhausted_at
         FROM otp_requests WHERE destination = ${destination} AND verified_at IS NOT NULL
           -- Implied by the creation bound (a code is verified after it is sent); it lets a
           -- generic plan read the verified index in order rather than sort the destination's rows.
           AND verified_at > ${SINCE} AND created_at > ${SINCE}
         ORDER BY verified_at DESC LIMIT 1)
      UNION
      (SELECT id, purpose, channel, created_at, delivery_status, verified_at, exhausted_at
         FROM otp_requests WHERE destination = ${destination} AND purpose = ${purpose}
           AND verified_at IS NOT NULL AND created_at > ${SINCE}
         ORDER BY verified_at DESC LIMIT 1)
    ) e), '[]') AS entries,
  (SELECT array_agg(created_at ORDER BY created_at DESC) FROM (
     SELECT created_at FROM otp_requests WHERE destination = ${destination}
       AND created_at > statement_timestamp() - interval '1 hour'
     ORDER BY created_at DESC OFFSET :hourlyOffset LIMIT :hourlyLimit) w) AS hourly,
  (SELECT array_agg(created_at ORDER BY created_at DESC) FROM (
     SELECT created_at FROM otp_requests WHERE destination = ${destination}
       AND created_at > statement_timestamp() - make_interval(secs => :windowSeconds)
     ORDER BY created_at DESC OFFSET :dailyOffset LIMIT :dailyLimit) w) AS daily`;

type HistoryRow = HistoryColumns & {
  now: Date;
  version: string;
  hard_locked_at: Date | null;
  idempotent: JsonRow | null;
};

/** A send's snapshot: the clock, the destination's version, its history, and `idempotent`. */
const loadHistory = (idempotent: string): string => `SELECT statement_timestamp() AS now,
     COALESCE((SELECT version FROM otp_destinations WHERE destination = :destination), 0) AS version,
     (SELECT hard_locked_at FROM otp_destinations WHERE destination = :destination) AS hard_locked_at,
     ${historyColumns(':destination', ':purpose')},
     ${idempotent} AS idempotent`;

/** The snapshot of a send with an idempotency key: also the row the key already names, if any. */
const LOAD_HISTORY = new Statement<
  HistoryParam | 'destination' | 'purpose' | 'idempotencyKey',
  HistoryRow
>(
  loadHistory(`(SELECT row_to_json(i) FROM otp_requests i
       WHERE i.idempotency_key = :idempotencyKey
         AND i.created_at > statement_timestamp() - make_interval(secs => :windowSeconds))`),
);

/**
 * The snapshot of a send without a key (most sends): no lookup by key, whose index scan the
 * statement would otherwise set up on every call to skip it.
 */
const LOAD_HISTORY_WITHOUT_KEY = new Statement<
  HistoryParam | 'destination' | 'purpose',
  HistoryRow
>(loadHistory('NULL::json'));

/** One request and the history of its flow, on one clock. */
const READ_STATUS = new Statement<
  HistoryParam | 'id',
  HistoryColumns & { now: Date; request: JsonRow | null }
>(
  `WITH target AS (SELECT * FROM otp_requests r WHERE r.id = :id)
   SELECT statement_timestamp() AS now,
     (SELECT row_to_json(target) FROM target) AS request,
     ${historyColumns('(SELECT destination FROM target)', '(SELECT purpose FROM target)')}`,
);

/** The parameters of the send's insert (`insertIfUnchanged`). */
type InsertParam =
  | 'expectedVersion'
  | 'now'
  | 'id'
  | 'destination'
  | 'purpose'
  | 'channel'
  | 'codeHash'
  | 'codeLength'
  | 'maxAttempts'
  | 'expiresAt'
  | 'resendAvailableAt'
  | 'idempotencyKey'
  | 'requestFingerprint'
  | 'subject';

/**
 * The send's compare-and-set on the destination's version, supersede, and insert. `released`
 * changes the rows the new send replaces: the flow's active code and, for a send with an
 * idempotency key, a stale holder of that key (one UPDATE, since a row may be both). A send without
 * a key has its own statement with only the flow's condition: under the OR a generic plan has to
 * serve both, and on a young table (before its first ANALYZE) it chose to scan the whole table.
 *
 * `lazy` turns `synchronous_commit` off for this statement's transaction only: its commit is
 * visible to every session at once (the compare-and-set and the one-active-code index hold across
 * instances as before) but does not wait for its WAL to reach disk. Nothing the API answers rests
 * on it alone: the send answers only after the delivery is recorded (or the failure marked), a
 * synchronous commit later in the same WAL, which makes this one durable with it. A database crash
 * in between loses a send that was never acknowledged, and its code, which could not verify anyway
 * (`RESERVE_ATTEMPT` wants a recorded delivery). It saves a WAL flush a send: a fifth of the
 * statement's Postgres CPU and half its time (bench/README.md, round 4).
 */
const insertIfUnchanged = (released: string): string => `WITH lazy AS (
     SELECT set_config('synchronous_commit', 'off', true) AS commit_mode),
   claimed AS (
     INSERT INTO otp_destinations AS d (destination, version, updated_at)
     VALUES (:destination, :expectedVersion::bigint + 1, :now)
     ON CONFLICT (destination) DO UPDATE SET version = d.version + 1, updated_at = EXCLUDED.updated_at
       WHERE d.version = :expectedVersion::bigint
     RETURNING version),
   released AS (${released}
       AND EXISTS (SELECT 1 FROM claimed)
     RETURNING 1)
   INSERT INTO otp_requests (id, destination, purpose, channel, code_hash, code_length,
     max_attempts, created_at, expires_at, resend_available_at, idempotency_key,
     request_fingerprint, subject)
   SELECT :id::uuid, :destination::varchar, :purpose::varchar, :channel::varchar,
     :codeHash::varchar, :codeLength::smallint, :maxAttempts::smallint, :now::timestamptz,
     :expiresAt::timestamptz, :resendAvailableAt::timestamptz, :idempotencyKey::varchar,
     :requestFingerprint::char(64), :subject::text
   FROM (SELECT count(*) FROM released) AS superseded
   -- A CTE no part of the statement reads is never run: the flush setting is read here.
   WHERE EXISTS (SELECT 1 FROM claimed) AND (SELECT commit_mode FROM lazy) = 'off'
   RETURNING id`;

/** A send without an idempotency key: supersedes the flow's active code. */
const INSERT_IF_UNCHANGED = new Statement<InsertParam, { id: string }>(
  insertIfUnchanged(`
     UPDATE otp_requests SET superseded_at = :now, code_hash = NULL
     WHERE ${IN_FLOW}`),
);

/** A send with an idempotency key: also releases the key from a holder older than the window. */
const INSERT_IF_UNCHANGED_WITH_KEY = new Statement<
  InsertParam | 'keyWindowSeconds',
  { id: string }
>(
  insertIfUnchanged(`
     UPDATE otp_requests SET
       superseded_at = CASE WHEN ${IN_FLOW} THEN :now ELSE superseded_at END,
       code_hash = CASE WHEN ${IN_FLOW} THEN NULL ELSE code_hash END,
       idempotency_key = CASE WHEN ${STALE_KEY} THEN NULL ELSE idempotency_key END
     WHERE (${IN_FLOW} OR ${STALE_KEY})`),
);

/** The parameters of a destination's first send (`insertFirst`): times are offsets, no key. */
type FirstSendParam =
  | Exclude<
      InsertParam,
      | 'expectedVersion'
      | 'now'
      | 'expiresAt'
      | 'resendAvailableAt'
      | 'idempotencyKey'
      | 'requestFingerprint'
    >
  | 'lookbackSeconds'
  | 'ttlSeconds'
  | 'resendAfterMs';

/**
 * A destination's first send, without reading its history first: `insertIfUnchanged`'s claim,
 * supersede and insert, taken only while the destination has no version row and no send in the
 * history window (`:lookbackSeconds`). Such a destination's history is empty, so the policy's
 * answer is known without a read (`FirstSend`): the row's times are the statement's clock plus the
 * purpose's offsets. Any other destination inserts nothing and the send takes the usual way.
 * - The probe of the window is what makes "no version row" mean "no history", whatever removed a
 *   version row or never wrote one (a purge, an upgrade from before `otp_destinations`).
 * - `ON CONFLICT DO NOTHING` (a version is never 0) is what makes two first sends to one
 *   destination race safely: the second waits for the first's insert, inserts nothing, and decides
 *   on the history it then reads, as after a lost compare-and-set.
 * - The supersede finds nothing on a destination without history; it is there so that the
 *   one-active-code index can never be what refuses the insert.
 * - The commit is lazy, as `insertIfUnchanged`'s, and for the same reasons.
 */
const INSERT_FIRST = new Statement<
  FirstSendParam,
  { created_at: Date; expires_at: Date; resend_available_at: Date }
>(
  `WITH lazy AS (
     SELECT set_config('synchronous_commit', 'off', true) AS commit_mode),
   -- In milliseconds, as every other send's row is (its clock comes back as a JS Date): a fallback
   -- and the partitioned layout find a request by its id and creation time.
   clock AS (SELECT date_trunc('milliseconds', statement_timestamp()) AS now),
   claimed AS (
     INSERT INTO otp_destinations (destination, version, updated_at)
     SELECT :destination::varchar, 1, statement_timestamp()
      WHERE NOT EXISTS (SELECT 1 FROM otp_requests
        WHERE destination = :destination AND created_at > ${SINCE})
     ON CONFLICT (destination) DO NOTHING
     RETURNING version),
   released AS (
     UPDATE otp_requests SET superseded_at = (SELECT now FROM clock), code_hash = NULL
      WHERE ${IN_FLOW} AND EXISTS (SELECT 1 FROM claimed)
     RETURNING 1)
   INSERT INTO otp_requests (id, destination, purpose, channel, code_hash, code_length,
     max_attempts, created_at, expires_at, resend_available_at, subject)
   SELECT :id::uuid, :destination::varchar, :purpose::varchar, :channel::varchar,
     :codeHash::varchar, :codeLength::smallint, :maxAttempts::smallint, clock.now,
     clock.now + make_interval(secs => :ttlSeconds::int),
     clock.now + make_interval(secs => :resendAfterMs::bigint / 1000.0),
     :subject::text
   FROM (SELECT count(*) FROM released) AS superseded, clock
   WHERE EXISTS (SELECT 1 FROM claimed) AND (SELECT commit_mode FROM lazy) = 'off'
   RETURNING created_at, expires_at, resend_available_at`,
);

const MARK_FAILED = new Statement<'id'>(
  `UPDATE otp_requests SET delivery_status = 'failed', code_hash = NULL, idempotency_key = NULL
    WHERE id = :id`,
);

/*
 * Reserves on the flow's live code through the one-live-code-per-flow unique index: its WHERE
 * names the index's columns and predicate. The predicate's hash condition also fits the partial
 * index of live hashes, whose scan by expiry would read every live code of every destination
 * (cheap while few are live, ruinous once many are, and a plan is kept until the table is analyzed
 * again); the flow's two equalities on a unique index are what the planner takes instead
 * (test/prepared-statements.e2e-spec.ts plans it generically on an unanalyzed table).
 *
 * A verify that knows the flow's request (`:claimedId`, a code this instance sent) binds its guess
 * to it beforehand (`:claimedHash`, `CodeHasher.digest`). If the row reserved is that request, the
 * statement compares the two itself, on the attempt it reserves, and a right guess is marked
 * verified with its token in the same UPDATE, as `MARK_VERIFIED` would: one statement and one
 * commit. Any other row is only reserved, and the caller compares as usual. The SET sees the row
 * before the UPDATE, so the comparison is with the hash as it was. Every verify runs this one
 * statement, claim or none: where no row qualifies (no code, used up, expired) the work is the same
 * whatever the guess. The stored hash and the bound guess are both HMACs keyed with the server's
 * secret: how much of them matches says nothing of the code (`SECURITY.md`).
 */
const RESERVE_ATTEMPT = new Statement<
  | 'destination'
  | 'purpose'
  | 'subject'
  | 'claimedId'
  | 'claimedHash'
  | 'tokenHash'
  | 'tokenTtlSeconds'
  | 'clientHash',
  Pick<OtpRequestRow, 'id' | 'code_hash' | 'attempts_used' | 'max_attempts' | 'token_expires_at'>
>(
  `WITH reserved AS (
     UPDATE otp_requests SET attempts_used = attempts_used + 1,
       ${verifiedSet(CLAIM_MATCHES)}
      WHERE ${IN_FLOW}
        AND attempts_used < max_attempts AND expires_at > statement_timestamp()
        -- A code verifies only for the account it was sent for (none for none): a verify made
        -- without the account (a caller leaving the session out) must not try an account's code
        -- outside the account's guess budget.
        AND subject IS NOT DISTINCT FROM :subject::text
        -- Only a code whose delivery was recorded: one whose outcome could not be written (the
        -- database refused it) is never usable, so a 503 send leaves no working code behind.
        AND delivery_status = 'sent'
      RETURNING id, code_hash, attempts_used, max_attempts, token_expires_at)
   SELECT * FROM reserved`,
);

/**
 * Drops the hash of the flow's active code `:id` once past its expiry: it can never verify. Keyed
 * by the flow too, so that the unique index serves it, whatever the statistics say.
 */
const DROP_EXPIRED_HASH = new Statement<'id' | 'destination' | 'purpose'>(
  `UPDATE otp_requests SET code_hash = NULL
    WHERE ${IN_FLOW} AND id = :id AND expires_at <= statement_timestamp()
      AND code_hash IS NOT NULL`,
);

const MARK_VERIFIED = new Statement<
  'id' | 'tokenHash' | 'tokenTtlSeconds' | 'clientHash',
  { token_expires_at: Date }
>(
  `WITH verified AS (
     UPDATE otp_requests SET ${verifiedSet()},
       exhausted_at = NULL
      WHERE id = :id AND verified_at IS NULL AND superseded_at IS NULL
        AND delivery_status <> 'failed' AND expires_at > statement_timestamp()
      RETURNING token_expires_at)
   SELECT * FROM verified`,
);

/**
 * By the primary key, and without `ACTIVE`'s hash: a code whose last attempt was reserved before
 * its expiry is marked exhausted (it counts toward the lockout) even if its expired hash was
 * dropped meanwhile. Its conditions do not imply the live-flow index's predicate, so no plan reads
 * that index for it.
 */
const MARK_EXHAUSTED = new Statement<'id' | 'destination' | 'purpose'>(
  `UPDATE otp_requests SET exhausted_at = statement_timestamp(), code_hash = NULL
    WHERE id = :id AND destination = :destination AND purpose = :purpose
      AND verified_at IS NULL AND exhausted_at IS NULL AND superseded_at IS NULL
      AND delivery_status <> 'failed' AND attempts_used >= max_attempts`,
);

const FIND_LATEST_IN_FLOW = new Statement<
  'destination' | 'purpose',
  { now: Date; latest: JsonRow | null }
>(
  `SELECT statement_timestamp() AS now,
     (SELECT row_to_json(r) FROM otp_requests r
       WHERE r.destination = :destination AND r.purpose = :purpose AND r.superseded_at IS NULL
         AND r.delivery_status <> 'failed'
       ORDER BY r.created_at DESC LIMIT 1) AS latest`,
);

const CONSUME_TOKEN = new Statement<
  'tokenHash' | 'purpose' | 'clientHash',
  { id: string; destination: string; purpose: string }
>(
  `WITH consumed AS (
     UPDATE otp_requests SET token_used_at = statement_timestamp()
      WHERE token_hash = :tokenHash AND purpose = :purpose AND token_used_at IS NULL
        AND token_expires_at > statement_timestamp()
        -- A token bound to a client passes only from that client (and is not used up by another).
        AND (token_client_hash IS NULL OR token_client_hash = :clientHash::text)
      RETURNING id, destination, purpose)
   SELECT * FROM consumed`,
);

/**
 * Cancels an active request: it stops verifying (superseded) and is marked cancelled. Keyed by the
 * row's flow too, read through the primary key: by id alone its conditions imply the active-code
 * index's predicate, and on a table Postgres has not analyzed yet the generic plan read that whole
 * index, every live code, to find one row.
 */
const CANCEL = new Statement<'id', { id: string }>(
  `WITH cancelled AS (
     UPDATE otp_requests SET cancelled_at = statement_timestamp(),
       superseded_at = statement_timestamp(), code_hash = NULL
      WHERE id = :id AND ${ACTIVE} AND expires_at > statement_timestamp()
        AND attempts_used < max_attempts
        AND (destination, purpose) = (SELECT t.destination, t.purpose FROM otp_requests t
                                       WHERE t.id = :id)
      RETURNING id)
   SELECT * FROM cancelled`,
);

/** Records a hard lock (the newest moment it began), unless an unlock came after it. */
const PERSIST_HARD_LOCK = new Statement<'destination' | 'since'>(
  `UPDATE otp_destinations SET hard_locked_at = :since::timestamptz
    WHERE destination = :destination
      AND (hard_locked_at IS NULL OR hard_locked_at < :since::timestamptz)
      AND (unlocked_at IS NULL OR unlocked_at < :since::timestamptz)`,
);

/**
 * Lifts a hard lock: exhausted codes before now stop counting, for the hard and the progressive
 * lockout. Bumps the version, so a send deciding meanwhile decides again.
 */
const UNLOCK = new Statement<'destination'>(
  `INSERT INTO otp_destinations AS d (destination, version, updated_at, unlocked_at)
   VALUES (:destination, 1, statement_timestamp(), statement_timestamp())
   ON CONFLICT (destination) DO UPDATE SET hard_locked_at = NULL,
     unlocked_at = statement_timestamp(), version = d.version + 1,
     updated_at = statement_timestamp()`,
);

/** Wrong guesses at rows of `:where` created in the window (a verified row's success is not one). */
const failedGuesses = (where: string): string => `
  SELECT COALESCE(sum(attempts_used - CASE WHEN verified_at IS NULL THEN 0 ELSE 1 END), 0)::int
    FROM otp_requests WHERE ${where}
     AND created_at > statement_timestamp() - make_interval(secs => :windowSeconds)`;

/**
 * Failed verifies of a destination in the window since its last successful verify (challenge
 * escalation). Reads at most the window's sends, bounded by the send caps.
 */
const COUNT_FAILED_VERIFIES = new Statement<'destination' | 'windowSeconds', { failed: number }>(
  `SELECT (${failedGuesses(`destination = :destination AND created_at > COALESCE((
       SELECT max(verified_at) FROM otp_requests WHERE destination = :destination
          AND verified_at IS NOT NULL
          AND created_at > statement_timestamp() - make_interval(secs => :windowSeconds)),
       '-infinity')`)}) AS failed`,
);

/** One account's sends in the last hour and day (newest first, up to the caps) and its wrong guesses. */
const SUBJECT_HISTORY = new Statement<
  'subject' | 'hourlyCap' | 'dailyCap' | 'windowSeconds',
  { now: Date; hourly: Date[] | null; daily: Date[] | null; failed: number; oldest: Date | null }
>(
  `SELECT statement_timestamp() AS now,
     (SELECT array_agg(created_at ORDER BY created_at DESC) FROM (
        SELECT created_at FROM otp_requests WHERE subject = :subject
           AND created_at > statement_timestamp() - interval '1 hour'
         ORDER BY created_at DESC LIMIT :hourlyCap) w) AS hourly,
     (SELECT array_agg(created_at ORDER BY created_at DESC) FROM (
        SELECT created_at FROM otp_requests WHERE subject = :subject
           AND created_at > statement_timestamp() - make_interval(secs => :windowSeconds)
         ORDER BY created_at DESC LIMIT :dailyCap) w) AS daily,
     (${failedGuesses('subject = :subject')}) AS failed,
     (SELECT min(created_at) FROM otp_requests WHERE subject = :subject
        AND attempts_used > CASE WHEN verified_at IS NULL THEN 0 ELSE 1 END
        AND created_at > statement_timestamp() - make_interval(secs => :windowSeconds)) AS oldest`,
);

/** What a send decides on: history, the database's clock, and the destination's version. */
export interface SendSnapshot {
  now: Date;
  /** A hard lock recorded on the destination (null when none, or unlocked). */
  hardLockedAt: Date | null;
  /** Bumped by every send to the destination (bigint, as a string). */
  version: string;
  history: SendHistory;
  idempotent: OtpRequest | null;
}

/**
 * What the policy answers a destination's first send (an empty history), as offsets from the send's
 * creation: its code's lifetime, and how long until the next send is allowed.
 */
export interface FirstSend {
  ttlSeconds: number;
  resendAfterMs: number;
}

/** A request and the history of its flow, read on one database clock (for the status route). */
export interface StatusSnapshot {
  now: Date;
  request: OtpRequest | null;
  /** The same history `readHistory` returns for the request's destination and purpose. */
  history: SendHistory;
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
  /** The account the send was made for, if the host named one. */
  subject: string | null;
}

/** One account's recent sends and wrong guesses (per-account limits). */
export interface SubjectSnapshot {
  now: Date;
  /** Creation times of its newest sends in the last hour / 24 h, newest first, up to the caps. */
  hourly: Date[];
  daily: Date[];
  /** Wrong guesses at its codes in the last 24 h (reserved attempts not yet judged included). */
  failedVerifies: number;
  /** Creation time of its oldest code with a wrong guess in the last 24 h. */
  oldestFailure: Date | null;
}

/** What `reserveAttempt` reserved: enough to check the guess outside any lock, if it has not been. */
export type Reservation =
  /** An attempt on request `id`, whose hash the caller compares the guess with. */
  | { kind: 'reserved'; id: string; codeHash: string; attemptsUsed: number; maxAttempts: number }
  /** An attempt on the claimed request, whose hash the statement found the guess was not. */
  | { kind: 'wrong'; id: string; attemptsUsed: number; maxAttempts: number }
  /** The claimed request, reserved and verified in one statement; its token expires then. */
  | { kind: 'verified'; id: string; tokenExpiresAt: Date };

/** A guess bound to a request this instance sent, and what its token needs if it verifies. */
export interface VerifyClaim {
  /** The request the guess is bound to. */
  id: string;
  /** The guess as that request's stored hash would be, if right (`CodeHasher.digest`). */
  codeHash: string;
  tokenHash: string;
  tokenTtlSeconds: number;
  clientHash: string | null;
}

/**
 * Every query on `otp_requests`. All SQL is parameterized, and every write that decides something
 * is one conditional statement (a compare-and-set on the destination's version for sends, a
 * conditional UPDATE for attempts, verification and tokens), so concurrent requests on one or many
 * instances cannot overrun a limit. No statement waits on another request for longer than a row lock.
 */
@Injectable()
export class OtpRequestRepository {
  /** The history reads' parameters, fixed by the options. */
  private readonly historyParams: Readonly<Record<HistoryParam, number>>;
  private readonly dataSource: DataSource;
  /** The transaction a per-account lock holds, when the current call runs inside one. */
  private readonly transaction = new AsyncLocalStorage<EntityManager>();

  constructor(
    private readonly connection: OtpConnection,
    @Inject(OTP_OPTIONS) private readonly options: OtpModuleOptions,
  ) {
    // Positions cap-1 and cap (1-based) are rows cap-2 and cap-1 (0-based); a cap of 1 has only one.
    // No cap (Infinity) reads no row: `LIMIT 0` ends the probe before its scan starts, where a huge
    // cap's OFFSET would walk every send of the window.
    this.dataSource = connection.dataSource;
    const marks = (cap: number) =>
      Number.isFinite(cap)
        ? { offset: Math.max(cap - 2, 0), limit: cap >= 2 ? 2 : 1 }
        : { offset: 0, limit: 0 };
    const hourly = marks(options.maxSendsPerHour);
    const daily = marks(options.maxSendsPerDay);
    // Sized for the most demanding purpose: the rows read serve every purpose's decision.
    const policies = purposePoliciesOf(options).all();
    const most = (of: (p: (typeof policies)[number]) => number) => Math.max(...policies.map(of));
    this.historyParams = {
      // The policy window plus a code's lifetime: a code sent just before the window may have been
      // exhausted inside it, and so still counts for lockout.
      lookbackSeconds: POLICY_WINDOW_SECONDS + most((p) => p.ttlSeconds),
      windowSeconds: POLICY_WINDOW_SECONDS,
      // See `SendHistory` for why these few rows (and the cap marks) are all the policy needs; a
      // hard lockout needs its count of exhausted codes.
      cooldownRows: most((p) => p.resendCooldownSeconds.length),
      lockoutRows: most((p) =>
        Math.max(p.lockoutStepSeconds.length, p.hardLockout?.afterExhaustedCodes ?? 0),
      ),
      hourlyOffset: hourly.offset,
      hourlyLimit: hourly.limit,
      dailyOffset: daily.offset,
      dailyLimit: daily.limit,
    };
  }

  /**
   * What a send to `destination` for `purpose` decides on, in one round trip: the database's clock,
   * the destination's version, the bounded `SendHistory` the policy reads (see its doc: a few rows
   * and the cap marks, however long the history), and the row an idempotency key already names.
   */
  async loadHistory(
    destination: string,
    purpose: string,
    idempotencyKey: string | null,
  ): Promise<SendSnapshot> {
    const [head] =
      idempotencyKey !== null
        ? await this.query(LOAD_HISTORY, {
            ...this.historyParams,
            destination,
            purpose,
            idempotencyKey,
          })
        : await this.query(LOAD_HISTORY_WITHOUT_KEY, {
            ...this.historyParams,
            destination,
            purpose,
          });
    if (!head) throw new Error('history query returned no row');
    return {
      now: head.now,
      hardLockedAt: head.hard_locked_at,
      version: String(head.version),
      history: this.toHistory(head),
      idempotent: head.idempotent ? toEntity(reviveRow(head.idempotent)) : null,
    };
  }

  /**
   * A destination's first send, in one round trip (see `INSERT_FIRST`), with the times `first`
   * gives for an empty history: the row as inserted, or null when the destination has a history
   * (nothing was written; the send reads it and decides as usual).
   */
  async insertFirst(
    send: Omit<NewOtpRequest, 'createdAt' | 'expiresAt' | 'resendAvailableAt'> & {
      idempotencyKey: null;
      requestFingerprint: null;
    },
    first: FirstSend,
  ): Promise<NewOtpRequest | null> {
    const [row] = await this.query(INSERT_FIRST, {
      lookbackSeconds: this.historyParams.lookbackSeconds,
      id: send.id,
      destination: send.destination,
      purpose: send.purpose,
      channel: send.channel,
      codeHash: send.codeHash,
      codeLength: send.codeLength,
      maxAttempts: send.maxAttempts,
      ttlSeconds: first.ttlSeconds,
      resendAfterMs: first.resendAfterMs,
      subject: send.subject,
    });
    if (!row) return null;
    return {
      ...send,
      createdAt: row.created_at,
      expiresAt: row.expires_at,
      resendAvailableAt: row.resend_available_at,
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
    // Inside a per-account lock's transaction, a unique violation would abort the transaction and
    // fail every later statement of the retry: a savepoint keeps it to this statement. Only a send
    // with an idempotency key can hit one, so the others pay no extra round trips.
    const held = row.idempotencyKey === null ? undefined : this.transaction.getStore();
    if (held) await held.query('SAVEPOINT otp_insert');
    try {
      const values = {
        expectedVersion,
        now: row.createdAt,
        id: row.id,
        destination: row.destination,
        purpose: row.purpose,
        channel: row.channel,
        codeHash: row.codeHash,
        codeLength: row.codeLength,
        maxAttempts: row.maxAttempts,
        expiresAt: row.expiresAt,
        resendAvailableAt: row.resendAvailableAt,
        idempotencyKey: row.idempotencyKey,
        requestFingerprint: row.requestFingerprint,
        subject: row.subject,
      };
      const inserted =
        row.idempotencyKey === null
          ? await this.query(INSERT_IF_UNCHANGED, values)
          : await this.query(INSERT_IF_UNCHANGED_WITH_KEY, {
              ...values,
              keyWindowSeconds: POLICY_WINDOW_SECONDS,
            });
      if (held) await held.query('RELEASE SAVEPOINT otp_insert');
      return inserted.length === 1;
    } catch (error) {
      // Another send took the same idempotency key (for another destination) first.
      if (isUniqueViolation(error, 'otp_requests_idempotency_key_uq')) {
        if (held) await held.query('ROLLBACK TO SAVEPOINT otp_insert');
        return false;
      }
      throw error;
    }
  }

  /**
   * Records a failed delivery: the code can never verify (its hash is dropped) and the
   * idempotency key is released, so a retry with the same key sends again.
   */
  async markFailed(id: string): Promise<void> {
    await this.query(MARK_FAILED, { id });
  }

  /**
   * Reserves one attempt on the flow's active code, if it has one left and has not expired: a single
   * conditional UPDATE, so N concurrent guesses reserve at most `max_attempts` between them. With a
   * `claim` on the request reserved, the statement has compared the guess: the answer is `verified`
   * (with the token attached) or `wrong`; otherwise it is `reserved`, for the caller to compare.
   */
  async reserveAttempt(
    destination: string,
    purpose: string,
    subject: string | null = null,
    claim: VerifyClaim | null = null,
  ): Promise<Reservation | null> {
    const [row] = await this.query(RESERVE_ATTEMPT, {
      destination,
      purpose,
      subject,
      claimedId: claim?.id ?? null,
      claimedHash: claim?.codeHash ?? null,
      tokenHash: claim?.tokenHash ?? null,
      tokenTtlSeconds: claim?.tokenTtlSeconds ?? 0,
      clientHash: claim?.clientHash ?? null,
    });
    if (!row) return null;
    const attempts = { attemptsUsed: row.attempts_used, maxAttempts: row.max_attempts };
    if (claim && row.id === claim.id) {
      return row.token_expires_at
        ? { kind: 'verified', id: row.id, tokenExpiresAt: row.token_expires_at }
        : { kind: 'wrong', id: row.id, ...attempts };
    }
    if (!row.code_hash) return null;
    return { kind: 'reserved', id: row.id, codeHash: row.code_hash, ...attempts };
  }

  /** Drops the hash of the flow's code `id` if it is still active and past its expiry. */
  async dropExpiredHash(id: string, destination: string, purpose: string): Promise<void> {
    await this.query(DROP_EXPIRED_HASH, { id, destination, purpose });
  }

  /**
   * Marks a code verified and attaches the verification token, unless a resend superseded it or
   * it expired meanwhile. A right guess that held a reserved attempt wins even if a wrong guess
   * holding a later attempt marked the code exhausted first: it was evaluated within the budget,
   * as if the guesses had run one after another. Returns the token's expiry, or null.
   */
  async markVerified(
    id: string,
    tokenHash: string,
    tokenTtlSeconds: number,
    clientHash: string | null = null,
  ): Promise<Date | null> {
    const [row] = await this.query(MARK_VERIFIED, {
      id,
      tokenHash,
      tokenTtlSeconds,
      clientHash,
    });
    return row?.token_expires_at ?? null;
  }

  /** Marks the flow's code `id` exhausted once its attempts are all used, unless verified meanwhile. */
  async markExhausted(id: string, destination: string, purpose: string): Promise<void> {
    await this.query(MARK_EXHAUSTED, { id, destination, purpose });
  }

  /**
   * The flow's newest code that was not superseded or failed, with the database clock: why a
   * verify found nothing to reserve (never sent, expired, used, exhausted).
   */
  async findLatestInFlow(
    destination: string,
    purpose: string,
  ): Promise<{ now: Date; latest: OtpRequest | null }> {
    const [head] = await this.query(FIND_LATEST_IN_FLOW, {
      destination,
      purpose,
    });
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

  /**
   * One request by id and the history of its flow (what `readHistory` returns for its destination
   * and purpose), in one round trip, so the request's state and the next send moment are computed
   * on the same database clock. An unknown id gives a null request and an empty history.
   */
  async readStatus(requestId: string): Promise<StatusSnapshot> {
    const [head] = await this.query(READ_STATUS, { ...this.historyParams, id: requestId });
    if (!head) throw new Error('status query returned no row');
    return {
      now: head.now,
      request: head.request ? toEntity(reviveRow(head.request)) : null,
      history: this.toHistory(head),
    };
  }

  /**
   * Consumes a verification token: one conditional UPDATE, so a token passes exactly once even
   * when presented many times at once. Returns what it verified, or null.
   */
  async consumeToken(
    tokenHash: string,
    purpose: string,
    clientHash: string | null = null,
  ): Promise<{ requestId: string; destination: string; purpose: string } | null> {
    const [row] = await this.query(CONSUME_TOKEN, { tokenHash, purpose, clientHash });
    return row ? { requestId: row.id, destination: row.destination, purpose: row.purpose } : null;
  }

  /** Cancels an active request; false when it is unknown or already finished. */
  async cancel(id: string): Promise<boolean> {
    const rows = await this.query(CANCEL, { id });
    return rows.length === 1;
  }

  /** Records that `destination` is hard-locked since `since` (it outlives the history). */
  async persistHardLock(destination: string, since: Date): Promise<void> {
    await this.query(PERSIST_HARD_LOCK, { destination, since });
  }

  /** Lifts a destination's hard lock; exhausted codes before now no longer count. */
  async unlock(destination: string): Promise<void> {
    await this.query(UNLOCK, { destination });
  }

  /** Failed verifies of `destination` in the last `windowSeconds`, since its last success. */
  async countFailedVerifies(destination: string, windowSeconds: number): Promise<number> {
    const [row] = await this.query(COUNT_FAILED_VERIFIES, { destination, windowSeconds });
    return row?.failed ?? 0;
  }

  /** One account's recent sends and wrong guesses; caps size the reads (`null`: not needed). */
  async subjectHistory(
    subject: string,
    caps: { hourly: number | null; daily: number | null },
  ): Promise<SubjectSnapshot> {
    const [row] = await this.query(SUBJECT_HISTORY, {
      subject,
      hourlyCap: caps.hourly ?? 1,
      dailyCap: caps.daily ?? 1,
      windowSeconds: POLICY_WINDOW_SECONDS,
    });
    if (!row) throw new Error('subject history query returned no row');
    const dates = (list: Date[] | null): Date[] => (list ?? []).map((d) => new Date(d));
    return {
      now: row.now,
      hourly: caps.hourly === null ? [] : dates(row.hourly),
      daily: caps.daily === null ? [] : dates(row.daily),
      failedVerifies: row.failed,
      oldestFailure: row.oldest ? new Date(row.oldest) : null,
    };
  }

  /**
   * Runs `work` holding an account's lock: a transaction that takes a transaction-scoped advisory
   * lock on the subject first, so the per-account checks and the write they allow are serialized
   * across every destination of the account (and every instance). Each statement inside runs under
   * READ COMMITTED with a fresh snapshot, so it sees what the previous holder committed.
   */
  withSubjectLock<T>(subject: string, work: () => Promise<T>): Promise<T> {
    return this.dataSource.transaction(async (manager) => {
      await manager.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [
        `nest-otp:subject:${subject}`,
      ]);
      return this.transaction.run(manager, work);
    });
  }

  /**
   * Runs one statement with its own named values: one round trip (in the held transaction, if any).
   * Outside a transaction it goes to the module's pg pool directly rather than through TypeORM's
   * `query()`, which creates, connects and releases a QueryRunner for every statement, and as a
   * named prepared statement: Postgres parses and plans the history read once a connection
   * instead of on every send (most of its cost: bench/README.md). Same connections, same session
   * settings, same rows back, same single round trip. Where the server side cannot keep prepared
   * statements (a transaction-pooling PgBouncer before 1.21), the first refusal turns naming off
   * for the process and the statement runs again unnamed: it was refused before it ran.
   */
  private async query<Name extends string, Row>(
    statement: Statement<Name, Row>,
    values: Readonly<Record<Name, unknown>>,
  ): Promise<Row[]> {
    const manager = this.transaction.getStore();
    if (manager) return manager.query<Row[]>(statement.text, statement.bind(values));
    return (await this.connection.run<Row & QueryResultRow>(statement, statement.bind(values)))
      .rows;
  }

  private toHistory(head: HistoryColumns): SendHistory {
    return {
      entries: head.entries.map((h) => ({
        purpose: h.purpose,
        channel: h.channel,
        createdAt: new Date(h.createdAt),
        deliveryStatus: h.deliveryStatus,
        verifiedAt: h.verifiedAt ? new Date(h.verifiedAt) : null,
        exhaustedAt: h.exhaustedAt ? new Date(h.exhaustedAt) : null,
      })),
      hourly: toCapMarks(head.hourly, this.options.maxSendsPerHour),
      daily: toCapMarks(head.daily, this.options.maxSendsPerDay),
    };
  }
}

/** The history columns of a history read, as Postgres returns them. */
interface HistoryColumns {
  entries: JsonHistory[];
  hourly: string[] | null;
  daily: string[] | null;
}

/** json_agg / row_to_json hand timestamps back as strings. */
interface JsonHistory {
  purpose: string;
  channel: OtpChannel;
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
  'cancelled_at',
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
