import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MigrationInterface, QueryRunner } from 'typeorm';
import { otpMigrations, otpPartitionedMigrations } from '../migrations/index.js';

/**
 * `npm run migrations:sql`: writes `migrations/sql/<timestamp>-<Name>.up.sql` and `.down.sql`, the
 * SQL of every TypeORM migration, for DBAs who apply plain SQL (psql, Flyway, Sqitch) and for
 * squawk (`npm run lint:migrations`). Each migration's `up` and `down` run against a recording
 * QueryRunner, so no database is needed; test/migrations-sql.spec.ts fails when the files drift.
 */

/** A migration class, as `otpMigrations` lists them. */
export type MigrationClass = new () => MigrationInterface;

export type Direction = 'up' | 'down';

/** One generated file: its name in migrations/sql/ and its text. */
export interface MigrationSqlFile {
  name: string;
  content: string;
}

interface Recorded {
  sql: string;
  /** A SELECT: the migration reads something to decide what to run; it is not a change. */
  read: boolean;
}

/** `queryRunner` members the migrations use; anything else fails loudly instead of recording less. */
const SUPPORTED = new Set(['query', 'isTransactionActive']);

/**
 * A QueryRunner stand-in that records every `query()` and answers it with no rows: the state of
 * a database that never ran the migration, which is the one a plain SQL file is written for. It
 * reports a transaction as active unless the migration declares `transaction = false`, as TypeORM
 * runs it with `transaction: 'each'`.
 */
class RecordingQueryRunner {
  readonly recorded: Recorded[] = [];

  constructor(readonly isTransactionActive: boolean) {}

  query(sql: string, parameters?: unknown[]): Promise<unknown[]> {
    if (parameters !== undefined && parameters.length > 0) {
      // A plain SQL file has nowhere to put them.
      throw new Error(`migrations-sql: a migration passed bind parameters; inline them: ${sql}`);
    }
    this.recorded.push({ sql: dedent(sql), read: /^\s*(--[^\n]*\n\s*)*select\b/i.test(sql) });
    return Promise.resolve([]);
  }

  asQueryRunner(): QueryRunner {
    return new Proxy(this, {
      get(target, property, receiver) {
        if (typeof property === 'string' && SUPPORTED.has(property)) {
          const value: unknown = Reflect.get(target, property, receiver);
          return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
        }
        if (property === 'then' || typeof property === 'symbol') return undefined;
        throw new Error(
          `migrations-sql: a migration used queryRunner.${property}, which the recording QueryRunner ` +
            'does not support; add it to scripts/migrations-sql.ts',
        );
      },
    }) as unknown as QueryRunner;
  }
}

/**
 * Removes the indentation a template literal in a migration gives its lines. A statement written
 * right after the backtick (`query(\`CREATE …`) is kept as written.
 */
function dedent(sql: string): string {
  const lines = sql.split('\n').map((line) => line.trimEnd());
  while (lines[0] === '') lines.shift();
  while (lines.at(-1) === '') lines.pop();
  if (!lines[0]?.startsWith(' ')) return lines.join('\n');
  const cut = Math.min(
    ...lines.filter((line) => line !== '').map((line) => line.length - line.trimStart().length),
  );
  return lines.map((line) => line.slice(cut)).join('\n');
}

/**
 * squawk rules that cannot apply to one migration's file, or that it breaks by design, and why.
 * Each becomes a `-- squawk-ignore-file` line with its reason in that file only, so a new
 * migration is held to every rule.
 */
const SQUAWK_EXCEPTIONS: Readonly<Record<string, Partial<Record<Direction, [string, string][]>>>> =
  {
    '1795300000006-AddDeliveryReceipts': {
      down: [
        [
          'ban-drop-table',
          "it undoes up's CREATE TABLEs of otp_deliveries and otp_fallbacks, which only this " +
            'module reads',
        ],
      ],
    },
    '1795300000000-CreateOtpRequests': {
      up: [
        [
          'require-lock-timeout, require-statement-timeout',
          'the table is created in this transaction: no other session sees it until commit, so ' +
            'nothing waits on its locks, and its indexes are built on no rows',
        ],
        [
          'prefer-text-field',
          "varchar(n) keeps the HTTP contract's length limits (an email address is at most 254 " +
            'characters) in the database too; widening one later is a catalog-only ALTER (no table ' +
            'rewrite), run under a lock_timeout like any other',
        ],
        [
          'ban-char-field',
          'request_fingerprint and token_hash hold 64-character hex SHA-256 digests: always full, ' +
            'so char(64) pads nothing',
        ],
        [
          'prefer-bigint-over-smallint',
          'code_length is 4 to 10 (CHECK); max_attempts and attempts_used count guesses at one ' +
            'code, a handful (default 3)',
        ],
      ],
      down: [
        [
          'ban-drop-table',
          "it undoes up's CREATE TABLE: reverting the first migration removes the module",
        ],
        [
          'require-lock-timeout, require-statement-timeout',
          'removing the module happens with the app stopped (it refuses to start without this ' +
            'table): no traffic waits on the lock',
        ],
      ],
    },
    '1795300000001-AddOtpDestinations': {
      up: [
        [
          'require-lock-timeout, require-statement-timeout',
          'the table is created in this transaction: no other session sees it until commit, so ' +
            'nothing waits on its locks, and its index is built on no rows',
        ],
        ['prefer-text-field', 'destination is varchar(254), as in otp_requests'],
      ],
      down: [
        [
          'ban-drop-table',
          "it undoes up's CREATE TABLE, with a module version that does not use the table",
        ],
        [
          'require-lock-timeout, require-statement-timeout',
          'reverting it means running a module version that does not use the table: nothing ' +
            'reads or writes it, so no traffic waits on the lock',
        ],
      ],
    },
    '1795300000003-AddDeliveredBy': {
      up: [
        [
          'prefer-text-field',
          'varchar(64) and varchar(254) as the columns of otp_requests it sits with (a provider ' +
            'name, an email address); adding a nullable column without a default rewrites nothing',
        ],
      ],
      down: [
        [
          'ban-drop-column',
          "it undoes up's ADD COLUMN, with a module version that does not write these columns",
        ],
      ],
    },
    '1795300000008-MoveChecksToDomains': {
      up: [
        [
          'changing-column-type',
          'each column goes to a domain over its own type, created without a constraint: a ' +
            'binary-compatible change, no table rewrite and no index rebuilt (no column it ' +
            'retypes is indexed or named by a CHECK it keeps), so the lock is held for a catalog ' +
            'change only, under the lock timeout; readers see the base type',
        ],
        [
          'ban-alter-domain-with-add-constraint',
          'the domains are created in this transaction and each constraint is added NOT VALID: ' +
            'it checks what is written from now on and scans no table; a later change of a rule ' +
            'is the same drop and NOT VALID add',
        ],
        [
          'prefer-bigint-over-smallint',
          'otp_code_length is over smallint, the type code_length already has (4 to 10)',
        ],
      ],
      down: [
        [
          'changing-column-type',
          'each column goes back from its domain to the base type: a catalog change, no rewrite ' +
            '(channel to varchar, unbounded: back to varchar(8) would rewrite the table; the ' +
            'CHECK bounds it)',
        ],
        ['prefer-bigint-over-smallint', 'code_length goes back to smallint, the type it had'],
      ],
    },
    '1795300000004-AddPurposePolicy': {
      down: [
        [
          'ban-drop-column',
          "it undoes up's ADD COLUMN, with a module version that does not write these columns",
        ],
      ],
    },
  };

/** `AddPolicyIndexes1795300000002` → `1795300000002-AddPolicyIndexes`, the migration's file name. */
export function migrationFileStem(migration: MigrationInterface): string {
  const name = migration.name ?? migration.constructor.name;
  const match = /^(.*?)(\d{13})$/.exec(name);
  if (!match) throw new Error(`migrations-sql: ${name} does not end in a 13-digit timestamp`);
  return `${match[2]}-${match[1]}`;
}

async function record(migration: MigrationInterface, direction: Direction): Promise<Recorded[]> {
  const runner = new RecordingQueryRunner(migration.transaction !== false);
  await migration[direction](runner.asQueryRunner());
  return runner.recorded;
}

function render(migration: MigrationInterface, direction: Direction, recorded: Recorded[]): string {
  const stem = migrationFileStem(migration);
  const outside = migration.transaction === false;
  const partitionedOnly = !otpMigrations.some((M) => migrationFileStem(new M()) === stem);
  const header = [
    `-- Generated by \`npm run migrations:sql\` from migrations/${stem}.ts (${direction}).`,
    '-- Do not edit: change the migration and regenerate.',
    ...(partitionedOnly
      ? [
          '-- The partitioned layout only (otpPartitionedMigrations, docs/scaling.md): up on a new database',
          '-- right after 1795300000000-CreateOtpRequests.up.sql, down right before its down. The later',
          "-- index migrations must then run through TypeORM, which builds each partition's index.",
        ]
      : []),
    ...(outside
      ? [
          '-- Run OUTSIDE a transaction (the migration sets `transaction = false`), one statement at a time:',
          '-- psql -v ON_ERROR_STOP=1 -f <file>, without --single-transaction.',
          '-- squawk-disable-assume-in-transaction',
        ]
      : ['-- Run in ONE transaction: psql -v ON_ERROR_STOP=1 --single-transaction -f <file>.']),
    ...(SQUAWK_EXCEPTIONS[stem]?.[direction] ?? []).flatMap(([rules, why]) => [
      ...wrapComment(`${rules}: ${why}.`),
      `-- squawk-ignore-file ${rules}`,
    ]),
  ];
  const body = recorded.map(({ sql, read }) =>
    read
      ? [
          '-- The migration reads (on a database that never ran it, no rows):',
          ...sql.split('\n').map((line) => `--   ${line}`.trimEnd()),
        ].join('\n')
      : sql.endsWith(';')
        ? sql
        : `${sql};`,
  );
  return `${[header.join('\n'), ...body].join('\n\n')}\n`;
}

/** `text` as `-- ` comment lines of at most 100 characters. */
function wrapComment(text: string): string[] {
  const lines: string[] = [];
  let line = '--';
  for (const word of text.split(' ')) {
    if (line.length + 1 + word.length > 100 && line !== '--') {
      lines.push(line);
      line = '--';
    }
    line += ` ${word}`;
  }
  return [...lines, line];
}

/**
 * The files migrations/sql/ should hold, in order, from the migrations as they are now: every
 * migration of both layouts (`otpPartitionedMigrations` is `otpMigrations` plus
 * `PartitionOtpRequests`, which a DBA applies right after `CreateOtpRequests` for that layout).
 */
export async function renderMigrationSql(
  migrations: readonly MigrationClass[] = otpPartitionedMigrations,
): Promise<MigrationSqlFile[]> {
  const stems = migrations.map((Migration) => migrationFileStem(new Migration()));
  const orphan = Object.keys(SQUAWK_EXCEPTIONS).find((stem) => !stems.includes(stem));
  if (orphan !== undefined && migrations === otpPartitionedMigrations) {
    throw new Error(`migrations-sql: SQUAWK_EXCEPTIONS names ${orphan}, which is no migration`);
  }
  const files: MigrationSqlFile[] = [];
  for (const Migration of migrations) {
    for (const direction of ['up', 'down'] as const) {
      const migration = new Migration();
      files.push({
        name: `${migrationFileStem(migration)}.${direction}.sql`,
        content: render(migration, direction, await record(migration, direction)),
      });
    }
  }
  return files;
}

/** migrations/sql/ of this package, found from this file in scripts/ or in build/scripts/. */
export function migrationsSqlDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('migrations-sql: no package.json above ' + import.meta.url);
    dir = parent;
  }
  return join(dir, 'migrations', 'sql');
}

async function main(): Promise<void> {
  const dir = migrationsSqlDir();
  const files = await renderMigrationSql();
  mkdirSync(dir, { recursive: true });
  const wanted = new Set(files.map((f) => f.name));
  for (const stale of readdirSync(dir).filter((f) => f.endsWith('.sql') && !wanted.has(f))) {
    rmSync(join(dir, stale));
  }
  let changed = 0;
  for (const file of files) {
    const path = join(dir, file.name);
    if (existsSync(path) && readFileSync(path, 'utf8') === file.content) continue;
    writeFileSync(path, file.content);
    changed += 1;
  }
  process.stdout.write(`migrations:sql: ${files.length} files in ${dir}, ${changed} written\n`);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    process.stderr.write(
      `migrations:sql failed: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    process.exit(1);
  });
}
