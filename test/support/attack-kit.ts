import type { INestApplication } from '@nestjs/common';
import pg from 'pg';
import request, { type Response } from 'supertest';
import { createUniqueDatabase, dropDatabase, runOtpMigrations } from '../../example/database.js';
import type { CodeHasher } from '../../src/otp/crypto/code-hasher.js';
import { OTP_HASHER } from '../../src/otp/otp.constants.js';
import { OtpRequestRepository } from '../../src/otp/persistence/otp-request.repository.js';
import type { OtpModuleOptionsInput } from '../../src/otp/otp.options.js';
import {
  bootExampleApp,
  CapturingProvider,
  type Platform,
  TEST_SECRET,
  testDatabaseUrl,
  type TestApp,
} from './test-app.js';

/**
 * Helpers for the attack suite (test/attacks.e2e-spec.ts, test/attack/*.attack-spec.ts): a pooled
 * SQL client, a fingerprint of the whole table, an app on a database of its own, and a spy that
 * records which guesses the server really evaluated.
 */

/** A small connection pool: the attack tests query the database after nearly every request. */
export class AttackDb {
  private readonly pool: pg.Pool;

  constructor(readonly url: string = testDatabaseUrl()) {
    this.pool = new pg.Pool({ connectionString: url, max: 4 });
    // An idle connection closed by the server must not crash the worker; the next query reconnects.
    this.pool.on('error', () => undefined);
  }

  async query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
    return (await this.pool.query(sql, params)).rows as T[];
  }

  /** Every row of one (normalized) destination, oldest first. */
  rowsFor(destination: string): Promise<Record<string, unknown>[]> {
    return this.query('SELECT * FROM otp_requests WHERE destination = $1 ORDER BY created_at', [
      destination,
    ]);
  }

  /**
   * A cheap fingerprint of the module's tables: the row count and an md5 of every row of
   * `otp_requests`, the same md5 leaving out what evaluating a guess may change (the attempt
   * counter, the exhaustion mark, the dropped hash), the sum of attempts used, and an md5 of
   * `otp_destinations`. Meant for a database no other test writes.
   */
  async fingerprint(): Promise<TableFingerprint> {
    const [row] = await this.query<TableFingerprint>(
      `SELECT count(*)::int AS rows,
         md5(coalesce(string_agg(r::text, '|' ORDER BY r.id), '')) AS digest,
         md5(coalesce(string_agg(
           (to_jsonb(r) - 'attempts_used' - 'exhausted_at' - 'code_hash')::text, '|' ORDER BY r.id),
           '')) AS "digestBesidesAttempts",
         coalesce(sum(r.attempts_used), 0)::int AS "attemptsUsed",
         (SELECT md5(coalesce(string_agg(d::text, '|' ORDER BY d.destination), ''))
            FROM otp_destinations d) AS destinations
       FROM otp_requests r`,
    );
    if (!row) throw new Error('fingerprint query returned no row');
    return row;
  }

  end(): Promise<void> {
    return this.pool.end();
  }
}

export interface TableFingerprint {
  rows: number;
  digest: string;
  digestBesidesAttempts: string;
  attemptsUsed: number;
  destinations: string;
}

/** A test app with a database of its own, so a whole-table fingerprint sees only its requests. */
export interface PrivateApp extends TestApp {
  db: AttackDb;
}

/**
 * Boots the example app (HMAC hasher, capturing provider, throttling out of the way) on `platform`
 * (default Express) on a fresh, migrated database that only this app uses; `close()` drops it.
 */
export async function startPrivateApp(
  otp: OtpModuleOptionsInput = {},
  platform: Platform = 'express',
): Promise<PrivateApp> {
  const adminUrl = process.env.TEST_ADMIN_DATABASE_URL;
  if (!adminUrl) throw new Error('TEST_ADMIN_DATABASE_URL is not set: run through jest.');
  const databaseUrl = await createUniqueDatabase(adminUrl, 'nest_otp_attack');
  await runOtpMigrations(databaseUrl);
  const provider = new CapturingProvider();
  const app = await bootExampleApp(
    {
      databaseUrl,
      otp: {
        hasher: 'hmac',
        hmacSecret: TEST_SECRET,
        throttleLimit: 1_000_000,
        providers: [provider],
        ...otp,
      },
    },
    platform,
  );
  const db = new AttackDb(databaseUrl);
  return {
    app,
    http: request(app.getHttpServer()),
    provider,
    platform,
    db,
    close: async () => {
      await app.close();
      await db.end();
      await dropDatabase(adminUrl, databaseUrl);
    },
  };
}

/**
 * Records every guess the server compares against a stored code hash, by request id (the hash
 * binding): what was really evaluated, as opposed to what the responses say. Decoy comparisons
 * (made when there is no code to check) are counted apart. Observes only: answers are unchanged.
 */
export interface GuessSpy {
  /**
   * Request id → the codes compared against its hash, in order: by the hasher (`matches`) or by
   * the reserving statement (a guess bound to a code the instance sent, `digest`).
   */
  evaluated: Map<string, string[]>;
  decoys: number;
  reset(): void;
}

export function spyOnGuesses(app: INestApplication): GuessSpy {
  const hasher = app.get<CodeHasher>(OTP_HASHER);
  const requests = app.get(OtpRequestRepository);
  const spy: GuessSpy = {
    evaluated: new Map(),
    decoys: 0,
    reset() {
      spy.evaluated.clear();
      spy.decoys = 0;
    },
  };
  const record = (id: string, code: string): void => {
    spy.evaluated.set(id, [...(spy.evaluated.get(id) ?? []), code]);
  };
  const matches = hasher.matches.bind(hasher);
  hasher.matches = (code: string, binding: string, storedHash: string): Promise<boolean> => {
    if (binding === 'decoy') spy.decoys += 1;
    else record(binding, code);
    return matches(code, binding, storedHash);
  };
  // A bound guess is compared by the statement only if it reserves the attempt on that request:
  // the guess is recorded then, and not when it is bound.
  const bound = new Map<string, string>();
  const digest = hasher.digest?.bind(hasher);
  if (digest) {
    hasher.digest = (code: string, binding: string): string => {
      const hash = digest(code, binding);
      bound.set(hash, code);
      return hash;
    };
  }
  const reserve = requests.reserveAttempt.bind(requests);
  requests.reserveAttempt = async (...args: Parameters<OtpRequestRepository['reserveAttempt']>) => {
    const reservation = await reserve(...args);
    const claim = args[3];
    if (claim && reservation && reservation.kind !== 'reserved') {
      record(reservation.id, bound.get(claim.codeHash) ?? '(unknown)');
    }
    return reservation;
  };
  return spy;
}

/** The middle value (mean of the two middle values for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of nothing');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Wall-clock milliseconds one request takes, with its response. */
export async function timed(
  send: () => PromiseLike<Response>,
): Promise<{ ms: number; res: Response }> {
  const start = process.hrtime.bigint();
  const res = await send();
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, res };
}

/** Headers that legitimately differ between two answers of the same kind. */
const VARYING_HEADERS = /^(date|etag|content-length|x-ratelimit-.*)$/;

/** The header names of a response, minus the ones that vary by nature, sorted. */
export const stableHeaderNames = (res: Response): string[] =>
  Object.keys(res.headers)
    .map((h) => h.toLowerCase())
    .filter((h) => !VARYING_HEADERS.test(h))
    .sort();

/** The body's key set, sorted. */
export const bodyKeys = (res: Response): string[] => Object.keys(res.body as object).sort();

/** Prints a figure for the issue note, one line, easy to grep: `[attack] ...`. */
export function report(line: string): void {
  console.log(`[attack] ${line}`);
}
