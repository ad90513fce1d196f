#!/usr/bin/env node
import 'reflect-metadata';
import { parseArgs } from 'node:util';
import { DataSource } from 'typeorm';
import {
  DEFAULT_PARTITION_DAYS_AHEAD,
  createOtpPartitions,
  dropOtpPartitions,
  listOtpPartitions,
  otpTableLayout,
} from '../otp/partitioning/otp-partitions.js';
import { POLICY_WINDOW_SECONDS } from '../otp/policy/send-policy.js';
import { purgeOtpRequests } from '../otp/retention/otp-retention.js';

const USAGE = `Usage: nest-otp purge [--database-url URL] [--older-than SECONDS] [--batch-size N] [--dry-run]
       nest-otp partitions [--database-url URL] [--days-ahead N] [--older-than SECONDS] [--dry-run]

purge: deletes otp_requests rows older than --older-than seconds (default and minimum ${POLICY_WINDOW_SECONDS},
the policy window; env OTP_RETENTION_SECONDS) in batches of --batch-size (default 1000), and drops the
hashes of expired codes. On the partitioned layout it drops the daily partitions that ended more
than --older-than seconds ago instead of deleting rows.

partitions (partitioned layout only): makes the daily partitions missing up to --days-ahead days
ahead (default ${DEFAULT_PARTITION_DAYS_AHEAD}; pg_partman's maintenance when it manages the table), then drops the ones that
ended more than --older-than seconds ago. Run it from cron, e.g. hourly.

--database-url defaults to DATABASE_URL. --dry-run prints what would change and changes nothing.
Safe to run from cron on several hosts at once.`;

/** `npx nest-otp purge`: the retention purge for DBAs and cron, without writing a script. */
async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'database-url': { type: 'string' },
      'older-than': { type: 'string' },
      'batch-size': { type: 'string' },
      'days-ahead': { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const command = positionals[0];
  if (positionals.length !== 1 || (command !== 'purge' && command !== 'partitions')) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const url = values['database-url'] ?? process.env.DATABASE_URL;
  if (!url) throw new Error('Give --database-url or set DATABASE_URL.');
  const olderThan = wholeNumber(
    values['older-than'] ?? process.env.OTP_RETENTION_SECONDS ?? String(POLICY_WINDOW_SECONDS),
    '--older-than',
  );
  const batchSize = wholeNumber(values['batch-size'] ?? '1000', '--batch-size');
  const daysAhead = wholeNumber(
    values['days-ahead'] ?? String(DEFAULT_PARTITION_DAYS_AHEAD),
    '--days-ahead',
  );
  const dryRun = values['dry-run'];
  const dataSource = new DataSource({ type: 'postgres', url, poolSize: 1 });
  await dataSource.initialize();
  try {
    if (command === 'partitions') {
      await partitions(dataSource, { olderThan, daysAhead, dryRun });
      return 0;
    }
    const result = await purgeOtpRequests(dataSource, {
      olderThanSeconds: olderThan,
      batchSize,
      dryRun,
    });
    const dropped = result.partitionsDropped
      ? ` (${result.partitionsDropped.length} daily partitions${listed(result.partitionsDropped)})`
      : '';
    process.stdout.write(
      dryRun
        ? `nest-otp purge (dry run): would remove ${result.deleted} rows older than ${olderThan} s${dropped} and clear ${result.hashesCleared} expired code hashes\n`
        : `nest-otp purge: removed ${result.deleted} rows older than ${olderThan} s${dropped} and cleared ${result.hashesCleared} expired code hashes\n`,
    );
  } finally {
    await dataSource.destroy();
  }
  return 0;
}

/** `nest-otp partitions`: the days ahead made, the old days dropped. */
async function partitions(
  dataSource: DataSource,
  options: { olderThan: number; daysAhead: number; dryRun: boolean },
): Promise<void> {
  const layout = await otpTableLayout(dataSource);
  if (!layout.partitioned) {
    throw new Error(
      'otp_requests is not partitioned (the default layout): `nest-otp purge` keeps it trimmed. ' +
        'The partitioned layout is otpPartitionedMigrations on a new database (docs/scaling.md).',
    );
  }
  if (options.daysAhead < 1) throw new Error('--days-ahead must be at least 1.');
  const by = layout.partman === null ? 'nest-otp' : `pg_partman (${layout.partman})`;
  const made = options.dryRun
    ? await missingDays(dataSource, options.daysAhead)
    : await createOtpPartitions(dataSource, { daysAhead: options.daysAhead });
  const dropped = await dropOtpPartitions(dataSource, {
    olderThanSeconds: options.olderThan,
    dryRun: options.dryRun,
  });
  const verb = options.dryRun ? 'would make' : 'made';
  process.stdout.write(
    `nest-otp partitions${options.dryRun ? ' (dry run)' : ''}, kept by ${by}: ${verb} ${made.length}${listed(made)}; ` +
      `${options.dryRun ? 'would drop' : 'dropped'} ${dropped.partitions.length}${listed(dropped.partitions)} ` +
      `older than ${options.olderThan} s, holding ${dropped.rows} rows\n`,
  );
}

/** The daily partitions (module's names) from today to `daysAhead` days ahead that do not exist. */
async function missingDays(dataSource: DataSource, daysAhead: number): Promise<string[]> {
  const have = new Set((await listOtpPartitions(dataSource)).map((p) => p.name));
  const [row] = await dataSource.query<{ names: string[] }[]>(
    `SELECT array_agg('otp_requests_p' || to_char(d, 'YYYY_MM_DD') ORDER BY d) AS names
       FROM generate_series((statement_timestamp() AT TIME ZONE 'UTC')::date,
                            (statement_timestamp() AT TIME ZONE 'UTC')::date + $1::int,
                            interval '1 day') AS d`,
    [daysAhead],
  );
  return (row?.names ?? []).filter((name) => !have.has(name));
}

function listed(names: readonly string[]): string {
  return names.length === 0 ? '' : `: ${names.join(', ')}`;
}

function wholeNumber(raw: string, name: string): number {
  if (!/^\d+$/.test(raw.trim())) throw new Error(`${name} must be a whole number, got "${raw}".`);
  return Number(raw);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`nest-otp: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
