import { type ChildProcess, fork } from 'node:child_process';
import type { Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

/** What a child process answers over IPC: command name → its arguments and its result. */
export type CommandMap<C> = Record<keyof C, { args: unknown; result: unknown }> & {
  stop: { args: Record<string, never>; result: null };
};

interface Request {
  id: number;
  command: string;
  args: unknown;
}

type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

/**
 * The bench's side of a process it forked (the app under test, a peer service, the webhook sink):
 * typed commands over IPC. Each server under test runs in its own process, so its CPU time and
 * RSS are its own and the load generator does not share its event loop.
 */
export class ChildHandle<C extends CommandMap<C>> {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void }
  >();

  protected constructor(
    protected readonly child: ChildProcess,
    readonly label: string,
  ) {
    child.on('message', (message) => {
      const reply = message as Reply;
      const waiting = this.pending.get(reply.id);
      if (!waiting) return;
      this.pending.delete(reply.id);
      if (reply.ok) waiting.resolve(reply.result);
      else waiting.reject(new Error(`${label}: ${reply.error}`));
    });
    child.on('exit', (code) => {
      for (const waiting of this.pending.values()) {
        waiting.reject(new Error(`${label} exited (code ${String(code)})`));
      }
      this.pending.clear();
    });
  }

  /** Forks `script` (a path) with IPC; `execArgv` adds Node flags (e.g. `--cpu-prof`). */
  static spawn(script: string, execArgv: string[] = []): ChildProcess {
    return fork(script, [], {
      // Structured clone over IPC: Dates in captured query parameters stay Dates.
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: [...process.execArgv, ...execArgv],
    });
  }

  static of<C extends CommandMap<C>>(child: ChildProcess, label: string): ChildHandle<C> {
    return new ChildHandle<C>(child, label);
  }

  call<K extends keyof C & string>(command: K, args: C[K]['args']): Promise<C[K]['result']> {
    const id = this.nextId++;
    const request: Request = { id, command, args };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve, reject });
      this.child.send(request, (error) => {
        if (!error) return;
        this.pending.delete(id);
        reject(error);
      });
    });
  }

  /**
   * Sends `stop` (the child closes what it opened, answers, and exits) and waits for the exit,
   * killing the process after 10 s.
   */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.call('stop', {}).catch(() => this.child.kill('SIGKILL'));
    await exited;
    clearTimeout(timer);
  }

  /** Last resort on Ctrl-C: this process's own child only. */
  kill(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

export type Handlers<C extends CommandMap<C>> = {
  [K in keyof C]: (args: C[K]['args']) => Promise<C[K]['result']>;
};

/**
 * The child's side: answers the bench's commands with `handlers`; `stop` is answered, then the
 * process leaves IPC (and exits once nothing else keeps it alive). When the bench goes away
 * (crash, Ctrl-C), `onOrphaned` runs and the process exits.
 */
export function serveCommands<C extends CommandMap<C>>(
  handlers: Handlers<C>,
  onOrphaned: () => Promise<unknown>,
): void {
  const handle = async (request: Request): Promise<void> => {
    let reply: Reply;
    try {
      const handler = handlers[request.command as keyof C];
      reply = { id: request.id, ok: true, result: await handler(request.args) };
    } catch (error) {
      reply = {
        id: request.id,
        ok: false,
        error: error instanceof Error ? (error.stack ?? error.message) : String(error),
      };
    }
    process.send?.(reply);
    if (request.command === 'stop') process.disconnect();
  };
  process.on('message', (message) => void handle(message as Request));
  process.on('disconnect', () => {
    void onOrphaned()
      .catch(() => undefined)
      .finally(() => process.exit(0));
  });
}

/** CPU time of this process so far (user + system, all threads), in microseconds. */
export const cpuMicros = (): number => {
  const { user, system } = process.cpuUsage();
  return user + system;
};

/** What every server process reports: CPU time so far and its memory. */
export interface ProcessStats {
  /** process.cpuUsage() user + system, µs, since the process started. */
  cpuMicros: number;
  rss: number;
  /** Peak RSS sampled (every 100 ms) since the last `resetPeak`. */
  peakRss: number;
  heapUsed: number;
}

/**
 * RSS sampled every 100 ms, so a run's peak is seen without asking during the run. (Every 25 ms,
 * reading /proc cost this VM ~1.5% of a core in the app's own CPU figures.)
 */
export class RssSampler {
  private peak = process.memoryUsage.rss();

  constructor() {
    setInterval(() => {
      this.peak = Math.max(this.peak, process.memoryUsage.rss());
    }, 100).unref();
  }

  reset(): void {
    this.peak = process.memoryUsage.rss();
  }

  stats(): ProcessStats {
    const rss = process.memoryUsage.rss();
    this.peak = Math.max(this.peak, rss);
    return {
      cpuMicros: cpuMicros(),
      rss,
      peakRss: this.peak,
      heapUsed: process.memoryUsage().heapUsed,
    };
  }
}

/** The `stats` and `resetPeak` commands of a server process, answered from its sampler. */
export function samplerCommands(sampler: RssSampler): {
  stats: () => Promise<ProcessStats>;
  resetPeak: () => Promise<null>;
} {
  return {
    stats: () => Promise.resolve(sampler.stats()),
    resetPeak: () => {
      sampler.reset();
      return Promise.resolve(null);
    },
  };
}

/**
 * Closes a `node:http` server at the end of a load run: no new connections, idle ones closed at
 * once, requests still being handled (`inFlight()`, whose handlers may outlive their sockets) given
 * up to 5 s to finish before the rest are cut, so a pool ended after it is no longer in use.
 */
export async function closeServer(
  server: Server | undefined,
  inFlight: () => number,
): Promise<void> {
  const closed = new Promise<void>((resolve) =>
    server ? server.close(() => resolve()) : resolve(),
  );
  server?.closeIdleConnections();
  for (let waited = 0; inFlight() > 0 && waited < 5_000; waited += 20) await sleep(20);
  server?.closeAllConnections();
  await closed;
}
