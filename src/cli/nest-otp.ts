#!/usr/bin/env node
import 'reflect-metadata';
import { parseArgs } from 'node:util';
import { DataSource } from 'typeorm';
import { POLICY_WINDOW_SECONDS } from '../otp/policy/send-policy.js';
import { purgeOtpRequests } from '../otp/retention/otp-retention.js';

const USAGE = `Usage: nest-otp purge [--database-url URL] [--older-than SECONDS] [--batch-size N] [--dry-run]

Deletes otp_requests rows older than --older-than seconds (default and minimum ${POLICY_WINDOW_SECONDS},
the policy window; env OTP_RETENTION_SECONDS) in batches of --batch-size (default 1000), and drops the
hashes of expired codes. --database-url defaults to DATABASE_URL. --dry-run prints what would go and
changes nothing. Safe to run from cron on several hosts at once.`;

/** `npx nest-otp purge`: the retention purge for DBAs and cron, without writing a script. */
async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'database-url': { type: 'string' },
      'older-than': { type: 'string' },
      'batch-size': { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (positionals.length !== 1 || positionals[0] !== 'purge') {
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
  const dryRun = values['dry-run'];
  const dataSource = new DataSource({ type: 'postgres', url, poolSize: 1 });
  await dataSource.initialize();
  try {
    const result = await purgeOtpRequests(dataSource, {
      olderThanSeconds: olderThan,
      batchSize,
      dryRun,
    });
    process.stdout.write(
      dryRun
        ? `nest-otp purge (dry run): would remove ${result.deleted} rows older than ${olderThan} s and clear ${result.hashesCleared} expired code hashes\n`
        : `nest-otp purge: removed ${result.deleted} rows older than ${olderThan} s and cleared ${result.hashesCleared} expired code hashes\n`,
    );
  } finally {
    await dataSource.destroy();
  }
  return 0;
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
