/**
 * `npm run bench:instructions`: what a send, a verify and a send again cost Postgres, in
 * instructions, counted by valgrind (callgrind) on the statements the module sends. CPU time on a shared 2-core host
 * moves by a fifth between two runs of the same code; an instruction count moves by a few hundred
 * in two million, whatever else the machine does, so a change to a statement or to the schema can
 * be judged in one run.
 *
 * How: a Postgres cluster of its own (the server binaries of `pg_config --bindir`, or
 * `PG_BINDIR`) in a temporary folder, one database migrated and seeded with 20,000 rows of history;
 * the example app sends, verifies and sends again once on it (see `capture`), and the statements it
 * sends (texts and parameters) are captured. Postgres is then stopped and run in single-user mode (`postgres --single`, one
 * backend, no client protocol) under callgrind on a fresh copy of the folder, the statements
 * PREPAREd as the module's sessions have them (`plan_cache_mode = auto`) and EXECUTEd for fresh
 * destinations: `warm` sends and verifies first (so every statement has settled on its plan), then
 * `n` more of the path measured. A path's cost is the difference between runs with and without
 * those `n`, over `n`, so start-up and the warm-up cancel out; a statement's is the difference
 * its line makes. Each line also pays for what single-user mode does around a statement (parsing
 * the EXECUTE line, converting its literals, the transaction, printing the row: about 160k
 * instructions for a trivial SELECT of eleven parameters), the same before and after a change.
 * What it leaves out: the client protocol, and the kernel (the socket, the WAL's fsync), which
 * CPU time counts.
 *
 * `BENCH_INSTRUCTIONS_BEFORE=<migration name>` also measures a database migrated up to just before
 * that migration, with the same statements: a migration's effect, before and after, in one run.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createExampleApp } from '../example/bootstrap.js';
import { runOtpMigrations } from '../example/database.js';
import { otpMigrations } from '../migrations/index.js';
import { OtpService } from '../src/otp/otp.service.js';
import { CapturingProvider } from './capturing-provider.js';
import { hmacApp } from './config.js';
import { freePort } from '../test/support/free-port.js';
import { QueryCounter } from './query-counter.js';
import { labelOf, sqlLiteral } from './statements.js';

const WARM = 20;
const N = Number(process.env.BENCH_INSTRUCTIONS_N ?? 100);
const HISTORY_ROWS = 20_000;

interface Captured {
  label: string;
  text: string;
  params: unknown[];
}

/** Runs a server binary, as the `postgres` user when this process is root (Postgres refuses root). */
function asPostgres(bin: string, args: string[], input?: string): string {
  const [command, commandArgs] =
    process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  const result = spawnSync(command, commandArgs, { input, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (result.error) throw new Error(`${command}: ${result.error.message}`);
  if (result.status !== 0) {
    throw new Error(`${bin} ${args.join(' ')} failed: ${result.stderr || result.stdout}`);
  }
  return result.stdout;
}

function binDir(): string {
  if (process.env.PG_BINDIR) return process.env.PG_BINDIR;
  const found = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' });
  if (found.status !== 0) {
    throw new Error(
      'bench:instructions needs the Postgres server binaries: set PG_BINDIR to their folder ' +
        '(Debian: /usr/lib/postgresql/<version>/bin), or put pg_config on PATH',
    );
  }
  return found.stdout.trim();
}

/** History as a day of traffic leaves it: 4 sends a destination, none active, a third verified. */
const SEED = `
  SELECT setseed(0.5);
  INSERT INTO otp_requests (id, destination, purpose, channel, code_length, max_attempts,
    created_at, expires_at, resend_available_at, delivery_status, delivered_at, verified_at,
    superseded_at)
  SELECT gen_random_uuid(), 'hist-' || (g % ${HISTORY_ROWS / 4}) || '@history.example', 'login',
    'email', 6, 3, t, t + interval '5 minutes', t, 'sent', t,
    CASE WHEN g % 3 = 0 THEN t + interval '20 seconds' END,
    CASE WHEN g % 3 <> 0 THEN t + interval '45 seconds' END
  FROM (SELECT g, now() - interval '11 minutes' - random() * interval '23 hours' AS t
          FROM generate_series(1, ${HISTORY_ROWS}) AS g) AS rows;
  INSERT INTO otp_destinations (destination, version, updated_at)
  SELECT DISTINCT destination, 4, now() FROM otp_requests`;

/** A path measured: what it is called and the statements it sends, in order. */
interface Path {
  name: string;
  statements: Captured[];
}

/**
 * Through `OtpService`, on one destination: its first send, a right verify, a send again from the
 * instance that sent the first (it knows the destination), and one from another instance (it does
 * not: its first-send statement finds the history and writes nothing, then the usual way). The
 * module's statements of each, in that order, as each cycle replays them.
 */
async function capture(url: string): Promise<Path[]> {
  const counter = new QueryCounter();
  counter.install();
  const provider = new CapturingProvider();
  const start = async () => {
    const app = await createExampleApp(
      { databaseUrl: url, otp: { ...hmacApp, providers: [provider] } },
      { logger: false },
    );
    await app.init();
    return app;
  };
  const [app, other] = [await start(), await start()];
  const taken = (): Captured[] =>
    counter
      .stop()
      .filter((s) => /\botp_(requests|deliveries)\b/.test(s.text))
      .map((s) => ({ label: labelOf(s.text), text: s.text, params: s.variants[0] ?? [] }));
  try {
    const otp = app.get(OtpService);
    // Warm: the module's own start-up statements stay out of what is captured.
    await otp.send({ destination: 'probe-0@bench.example' });
    await other.get(OtpService).send({ destination: 'probe-0@bench.example' });
    const destination = 'probe-1@bench.example';
    counter.start();
    const sent = await otp.send({ destination });
    const send = taken();
    const code = provider.take().find(([to]) => to === destination);
    if (!code) throw new Error('bench:instructions: no code delivered');
    counter.start();
    const verified = await otp.verify({ destination, code: code[1] });
    const verify = taken();
    if (!verified.verified) throw new Error('bench:instructions: the probe code did not verify');
    counter.start();
    const again = await otp.send({ destination });
    const sendAgain = taken();
    counter.start();
    const elsewhere = await other.get(OtpService).send({ destination });
    const sendElsewhere = taken();
    const ids = [sent.requestId, again.requestId, elsewhere.requestId];
    return [
      { name: 'send', statements: rename(send, ids) },
      { name: 'verify', statements: rename(verify, ids) },
      { name: 'send again, same instance', statements: rename(sendAgain, ids) },
      { name: 'send again, another instance', statements: rename(sendElsewhere, ids) },
    ];
  } finally {
    await Promise.all([app.close(), other.close()]);
  }
}

/** Marks the values a cycle replaces: the probe's destination, its request ids, a token's hash. */
function rename(statements: Captured[], requestIds: string[]): Captured[] {
  return statements.map((s) => ({
    ...s,
    params: s.params.map((value) => {
      if (value === 'probe-1@bench.example') return { cycle: 'destination' };
      const request = requestIds.indexOf(value as string);
      if (request >= 0) return { cycle: `id-${request}` };
      if (typeof value === 'string' && /^[0-9a-f]{64}$/.test(value)) return { cycle: 'token' };
      return value;
    }),
  }));
}

const digest = (seed: string): string => createHash('sha256').update(seed).digest('hex');

/** The value of a parameter in cycle `i`, as a SQL literal. */
function literal(value: unknown, i: number): string {
  if (value && typeof value === 'object' && 'cycle' in value) {
    const kind = (value as { cycle: string }).cycle;
    const h = digest(`cycle-${i}-${kind}`);
    if (kind === 'destination') return `'cycle-${i}@bench.example'`;
    if (kind.startsWith('id-')) {
      return `'${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}'`;
    }
    return `'${digest(`token-${i}`)}'`;
  }
  return sqlLiteral(value);
}

const execute = (index: number, s: Captured, i: number): string =>
  `EXECUTE s${index}(${s.params.map((value) => literal(value, i)).join(', ')})`;

/**
 * The single-user script: the statements prepared, `WARM` whole cycles (every path, in order), then
 * for `n` fresh destinations the first `steps[0]` statements of the first path, after all of those
 * the first `steps[1]` of the second, and so on.
 */
function script(paths: Path[], n: number, steps: number[]): string {
  const lines = ['SET plan_cache_mode = auto'];
  const first: number[] = [];
  let index = 0;
  for (const path of paths) {
    first.push(index);
    for (const s of path.statements) lines.push(`PREPARE s${index++} AS ${s.text}`);
  }
  const run = (p: number, i: number, count: number) =>
    (paths[p]?.statements ?? [])
      .slice(0, count)
      .map((s, at) => execute((first[p] ?? 0) + at, s, i));
  for (let i = 0; i < WARM; i += 1) {
    paths.forEach((path, p) => lines.push(...run(p, i, path.statements.length)));
  }
  paths.forEach((_, p) => {
    for (let i = WARM; i < WARM + n; i += 1) lines.push(...run(p, i, steps[p] ?? 0));
  });
  // -j: a statement ends at a semicolon followed by an empty line.
  return `${lines.join(';\n\n')};\n\n`;
}

/** Instructions the backend executed for `input`, on a fresh copy of the data folder. */
function instructions(bin: string, data: string, database: string, input: string): number {
  const run = mkdtempSync(join(tmpdir(), 'nest-otp-ir-'));
  chmodSync(run, 0o777);
  try {
    execFileSync('cp', ['-a', data, join(run, 'data')]);
    const out = join(run, 'callgrind.out');
    const stdout = asPostgres(
      'valgrind',
      [
        '--tool=callgrind',
        `--callgrind-out-file=${out}`,
        join(bin, 'postgres'),
        '--single',
        '-j',
        '-D',
        join(run, 'data'),
        '-c',
        'fsync=off',
        database,
      ],
      input,
    );
    const failed = /^\s*(ERROR|FATAL):.*$/m.exec(stdout);
    if (failed) throw new Error(`bench:instructions: a statement failed: ${failed[0]}`);
    const summary = /^summary: (\d+)$/m.exec(readFileSync(out, 'utf8'));
    if (!summary) throw new Error('bench:instructions: callgrind wrote no summary');
    return Number(summary[1]);
  } finally {
    rmSync(run, { recursive: true, force: true });
  }
}

/** Per cycle: each statement of each path, and each path's sum. */
function measure(
  bin: string,
  data: string,
  database: string,
  paths: Path[],
): { label: string; instructions: number }[] {
  const count = (steps: number[], n = N) =>
    instructions(bin, data, database, script(paths, n, steps));
  let before = count([], 0);
  const rows: { label: string; instructions: number }[] = [];
  const sums: { label: string; instructions: number }[] = [];
  const done: number[] = [];
  paths.forEach((path) => {
    const start = before;
    for (let step = 1; step <= path.statements.length; step += 1) {
      const total = count([...done, step]);
      const label = `${path.name}: ${path.statements[step - 1]?.label}`;
      rows.push({ label, instructions: Math.round((total - before) / N) });
      before = total;
    }
    done.push(path.statements.length);
    sums.push({ label: path.name, instructions: Math.round((before - start) / N) });
  });
  return [...rows, ...sums];
}

async function main(): Promise<void> {
  const bin = binDir();
  const check = spawnSync('valgrind', ['--version'], { encoding: 'utf8' });
  if (check.status !== 0) {
    throw new Error('bench:instructions needs valgrind (Debian: apt-get install valgrind)');
  }
  const folder = mkdtempSync(join(tmpdir(), 'nest-otp-instructions-'));
  chmodSync(folder, 0o777);
  const data = join(folder, 'data');
  const port = await freePort();
  const before = process.env.BENCH_INSTRUCTIONS_BEFORE;
  const upTo = before ? otpMigrations.findIndex((M) => new M().name === before) : -1;
  if (before && upTo < 0) throw new Error(`BENCH_INSTRUCTIONS_BEFORE: no migration ${before}`);
  const databases = [
    { name: 'nest_otp_current', migrations: otpMigrations },
    ...(before ? [{ name: 'nest_otp_before', migrations: otpMigrations.slice(0, upTo) }] : []),
  ];
  let started = false;
  try {
    asPostgres(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres']);
    asPostgres(join(bin, 'pg_ctl'), [
      '-D',
      data,
      '-o',
      `-p ${port} -k ${folder} -c listen_addresses=127.0.0.1`,
      '-w',
      '-l',
      join(folder, 'log'),
      'start',
    ]);
    started = true;
    const admin = `postgres://postgres@127.0.0.1:${port}/postgres`;
    const client = new pg.Client(admin);
    await client.connect();
    for (const { name, migrations } of databases) {
      await client.query(`CREATE DATABASE ${name}`);
      const url = `postgres://postgres@127.0.0.1:${port}/${name}`;
      await runOtpMigrations(url, migrations);
      const db = new pg.Client(url);
      await db.connect();
      await db.query(SEED);
      await db.query('VACUUM ANALYZE');
      await db.end();
    }
    await client.end();
    const paths = await capture(`postgres://postgres@127.0.0.1:${port}/nest_otp_current`);
    asPostgres(join(bin, 'pg_ctl'), ['-D', data, '-w', 'stop']);
    started = false;

    const version = asPostgres(join(bin, 'postgres'), ['--version']).trim();
    console.log(
      `\n-- Postgres instructions a request (callgrind, ${version}, ${HISTORY_ROWS} rows of history, mean of ${N}) --`,
    );
    const results = databases.map(({ name }) => ({ name, rows: measure(bin, data, name, paths) }));
    const labels = results[0]?.rows.map((row) => row.label) ?? [];
    const header = ['statement', ...results.map((r) => r.name)];
    if (results.length === 2) header.push('change');
    console.log(`| ${header.join(' | ')} |`);
    console.log(`|${header.map(() => '---').join('|')}|`);
    labels.forEach((label, index) => {
      const values = results.map((r) => r.rows[index]?.instructions ?? Number.NaN);
      const cells = [label, ...values.map((v) => v.toLocaleString('en-US'))];
      const [now, then] = values as [number, number | undefined];
      if (then !== undefined) cells.push(`${(((now - then) / then) * 100).toFixed(1)}%`);
      console.log(`| ${cells.join(' | ')} |`);
    });
  } finally {
    if (started) asPostgres(join(bin, 'pg_ctl'), ['-D', data, '-w', '-m', 'immediate', 'stop']);
    rmSync(folder, { recursive: true, force: true });
  }
}

await main();
