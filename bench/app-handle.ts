import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { OtpModuleOptionsInput } from '../src/otp/otp.options.js';
import type { CommandName, Commands, Reply, Request } from './protocol.js';

/** The bench's side of the app process: forks it, boots the app, sends it commands. */
export class AppHandle {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void }
  >();
  port = 0;
  /** RSS of the app process right after boot, in bytes. */
  bootRss = 0;

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (message) => {
      const reply = message as Reply;
      const waiting = this.pending.get(reply.id);
      if (!waiting) return;
      this.pending.delete(reply.id);
      if (reply.ok) waiting.resolve(reply.result);
      else waiting.reject(new Error(`app process: ${reply.error}`));
    });
    child.on('exit', (code) => {
      for (const waiting of this.pending.values()) {
        waiting.reject(new Error(`app process exited (code ${String(code)})`));
      }
      this.pending.clear();
    });
  }

  static async start(databaseUrl: string, otp: OtpModuleOptionsInput): Promise<AppHandle> {
    const child = fork(fileURLToPath(new URL('./app-process.js', import.meta.url)), [], {
      // Structured clone over IPC: Dates in captured query parameters stay Dates.
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const handle = new AppHandle(child);
    const { port, rss } = await handle.call('start', { databaseUrl, otp });
    handle.port = port;
    handle.bootRss = rss;
    return handle;
  }

  call<K extends CommandName>(
    command: K,
    args: Commands[K]['args'],
  ): Promise<Commands[K]['result']> {
    const id = this.nextId++;
    const request: Request<K> = { id, command, args };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.child.send(request, (error) => {
        if (!error) return;
        this.pending.delete(id);
        reject(error);
      });
    });
  }

  /** Closes the app and waits for the process to exit (killing it after 10 s). */
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
