import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { freePort } from './free-port.js';

/**
 * A throwaway `redis-server` on 127.0.0.1 and a port of its own, nothing persisted, for tests that
 * kill and restart Redis without touching the shared one at REDIS_URL.
 */
export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** SIGKILL, as a crash or an OOM kill would: no goodbye to the clients. Resolves once it exited. */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: nothing was persisted). */
  restart(): Promise<void>;
  /** Stops it for good (SIGKILL too: there is nothing to save). */
  stop(): Promise<void>;
}

/** Spawns redis-server and resolves once it accepts connections. */
async function spawnRedis(port: number): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      tmpdir(),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`redis-server on port ${port} not ready within 10 s:\n${output}`));
    }, 10_000);
    const settle = (error?: Error): void => {
      clearTimeout(timer);
      child.stdout?.removeAllListeners('data');
      child.removeAllListeners('exit');
      child.removeAllListeners('error');
      if (error) reject(error);
      else resolve();
    };
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) settle();
    });
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', (error) => settle(error));
    child.once('exit', (code) => {
      settle(new Error(`redis-server on port ${port} exited (${code}):\n${output}`));
    });
  });
  await ready;
  // Keep draining its output, so a full pipe never blocks it.
  child.stdout?.resume();
  return child;
}

async function killAndWait(child: ChildProcess | null): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

export async function startRedisServer(): Promise<RedisServer> {
  const port = await freePort();
  let child: ChildProcess | null = await spawnRedis(port);
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill: async () => {
      await killAndWait(child);
      child = null;
    },
    restart: async () => {
      await killAndWait(child);
      child = await spawnRedis(port);
    },
    stop: async () => {
      await killAndWait(child);
      child = null;
    },
  };
}
