import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, readdirSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './free-port.js';

/**
 * The packed library in a real host: `npm pack` of this repository, installed into
 * `test/fixtures/host-app` (copied to a temporary folder), built, migrated with the host's own
 * TypeORM CLI and started as a child process.
 */

/** The repository's root, from this file's location (test/support/). */
export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** The fixture host app's sources. */
export const hostFixtureDir = join(repoRoot, 'test', 'fixtures', 'host-app');

export interface RunResult {
  code: number | null;
  output: string;
}

/**
 * The environment of a nested npm or node: the caller's, without what `npm test` adds for its own
 * package (a nested npm would otherwise act on this repository instead of its `cwd`).
 */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const key of Object.keys(env)) {
    if (
      /^npm_(package|lifecycle)_/i.test(key) ||
      /^npm_config_(local_prefix|prefix|global)$/i.test(key)
    ) {
      delete env[key];
    }
  }
  return env;
}

/** Runs a command to its end; resolves with its exit code and combined output. */
export function run(
  command: string,
  args: string[],
  options: { cwd: string; env?: Record<string, string>; timeoutMs?: number },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: childEnv(options.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 180_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : null), output });
    });
  });
}

/** Like `run`, but a non-zero exit is an error that shows the command's output. */
export async function runOk(
  command: string,
  args: string[],
  options: { cwd: string; env?: Record<string, string>; timeoutMs?: number },
): Promise<string> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    throw new Error(
      `\`${command} ${args.join(' ')}\` in ${options.cwd} exited ${result.code}:\n${result.output}`,
    );
  }
  return result.output;
}

/** `npm pack` of the repository (its `prepack` builds dist/); returns the tarball's path. */
export async function packLibrary(destination: string): Promise<string> {
  await runOk('npm', ['pack', '--pack-destination', destination], { cwd: repoRoot });
  const tarball = readdirSync(destination).find((name) => name.endsWith('.tgz'));
  if (!tarball) throw new Error(`npm pack left no tarball in ${destination}`);
  return join(destination, tarball);
}

/**
 * Copies the fixture host app to `dir` and installs its own dependencies (from the npm cache where
 * it can): the app as it was before it added nest-otp.
 */
export async function prepareHostApp(dir: string): Promise<void> {
  cpSync(hostFixtureDir, dir, {
    recursive: true,
    filter: (source) => !/[\\/](node_modules|dist)$/.test(source),
  });
  await runOk('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline'], {
    cwd: dir,
    timeoutMs: 240_000,
  });
}

/** `npm install <tarball>` in the host app, then builds it with its own TypeScript. */
export async function installTarball(dir: string, tarball: string): Promise<void> {
  await runOk('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], {
    cwd: dir,
    timeoutMs: 240_000,
  });
  await runOk(process.execPath, [join('node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'], {
    cwd: dir,
  });
}

export interface HostApp {
  url: string;
  process: ChildProcess;
  output: () => string;
  /** Resolves with the exit code (or the signal's name) once the process has ended. */
  exited: Promise<number | string>;
  stop(): Promise<number | string>;
}

/** Spawns `node dist/main.js` in the host app's folder; does not wait for it to listen. */
export async function spawnHostApp(dir: string, env: Record<string, string>): Promise<HostApp> {
  const port = await freePort();
  const child = spawn(process.execPath, ['dist/main.js'], {
    cwd: dir,
    env: childEnv({ NO_COLOR: '1', ...env, PORT: String(port) }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  return {
    url: `http://127.0.0.1:${port}`,
    process: child,
    output: () => output,
    exited,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Spawns the host app and waits until it answers HTTP (any status); throws if it exits first. */
export async function startHostApp(dir: string, env: Record<string, string>): Promise<HostApp> {
  const app = await spawnHostApp(dir, env);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (app.process.exitCode !== null || app.process.signalCode !== null) {
      throw new Error(`the host app exited before listening:\n${app.output()}`);
    }
    const up = await send(app.url, { method: 'GET', path: '/' }).then(
      () => true,
      () => false,
    );
    if (up) return app;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  await app.stop();
  throw new Error(`the host app did not answer within 60 s:\n${app.output()}`);
}

export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** The parsed JSON body, or undefined when the body is not JSON. */
  body: Record<string, unknown> | undefined;
}

/**
 * One HTTP request with node:http. `from` picks the client's loopback address (any of
 * 127.0.0.0/8), so each test has its own per-IP throttling buckets on the same server.
 */
export function send(
  baseUrl: string,
  options: {
    method?: string;
    path: string;
    headers?: Record<string, string>;
    /** A string or Buffer is sent as is; anything else as JSON. */
    body?: unknown;
    from?: string;
  },
): Promise<HttpResult> {
  const url = new URL(options.path, baseUrl);
  let payload: Buffer | undefined;
  const headers: Record<string, string> = { ...options.headers };
  if (options.body !== undefined) {
    if (typeof options.body === 'string' || Buffer.isBuffer(options.body)) {
      payload = Buffer.from(options.body);
    } else {
      payload = Buffer.from(JSON.stringify(options.body));
      headers['content-type'] ??= 'application/json';
    }
    headers['content-length'] = String(payload.length);
  }
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path: `${url.pathname}${url.search}`,
        method: options.method ?? (payload ? 'POST' : 'GET'),
        headers,
        localAddress: options.from,
        agent: false,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          let body: Record<string, unknown> | undefined;
          try {
            body = JSON.parse(text) as Record<string, unknown>;
          } catch {
            body = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error(`${url.pathname}: no answer in 30 s`)));
    req.on('error', reject);
    req.end(payload);
  });
}
