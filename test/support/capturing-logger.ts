import type { LoggerService, LogLevel } from '@nestjs/common';
import { inspect } from 'node:util';

/** One call to the logger: its level and every argument, rendered as text. */
export interface CapturedLogEntry {
  level: LogLevel;
  /** All arguments joined: messages, contexts, stack traces, and objects in full (util.inspect). */
  text: string;
}

/** An argument as text: strings as they are; errors with stack, cause and own properties. */
export function renderLogArgument(arg: unknown): string {
  if (typeof arg === 'string') return arg;
  return inspect(arg, {
    depth: 10,
    breakLength: Infinity,
    maxArrayLength: null,
    showHidden: false,
  });
}

/**
 * A Nest `LoggerService` that keeps every line logged at every level (nothing is printed), for
 * tests that grep what an app logged. Pass it as `NestFactory.create(module, { logger })`: Nest
 * then routes every `new Logger(context)` of the app to it.
 */
export class CapturingLogger implements LoggerService {
  readonly entries: CapturedLogEntry[] = [];

  log(message: unknown, ...rest: unknown[]): void {
    this.record('log', message, rest);
  }

  error(message: unknown, ...rest: unknown[]): void {
    this.record('error', message, rest);
  }

  warn(message: unknown, ...rest: unknown[]): void {
    this.record('warn', message, rest);
  }

  debug(message: unknown, ...rest: unknown[]): void {
    this.record('debug', message, rest);
  }

  verbose(message: unknown, ...rest: unknown[]): void {
    this.record('verbose', message, rest);
  }

  fatal(message: unknown, ...rest: unknown[]): void {
    this.record('fatal', message, rest);
  }

  /** Every level is kept, whatever the app asks for. */
  setLogLevels(_levels: LogLevel[]): void {}

  /** The entries of a level, as text. */
  at(level: LogLevel): string[] {
    return this.entries.filter((e) => e.level === level).map((e) => e.text);
  }

  private record(level: LogLevel, message: unknown, rest: unknown[]): void {
    this.entries.push({ level, text: [message, ...rest].map(renderLogArgument).join(' ') });
  }
}

/** What a process wrote while an {@link OutputCapture} was installed. */
export interface OutputCapture {
  /** Every chunk written to process.stdout and process.stderr, and every console call, as text. */
  readonly chunks: string[];
  /** How many writes and console calls were intercepted (an empty write counts too). */
  readonly calls: number;
  /** Puts back the original `write`s and console methods. */
  restore(): void;
}

const CONSOLE_METHODS = ['log', 'info', 'warn', 'error', 'debug', 'trace', 'dir'] as const;

/**
 * Records everything written to process.stdout and process.stderr (passing it through), and every
 * console call: under jest, `console` is jest's own buffered console, which never goes through
 * process.stdout in the test's process, so it is wrapped too.
 */
export function captureOutput(): OutputCapture {
  const chunks: string[] = [];
  const state = { calls: 0 };
  const restorers: (() => void)[] = [];

  for (const stream of [process.stdout, process.stderr]) {
    const original = Reflect.get(stream, 'write') as (...args: unknown[]) => boolean;
    const wrapped = function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]) {
      state.calls += 1;
      chunks.push(
        typeof chunk === 'string'
          ? chunk
          : chunk instanceof Uint8Array
            ? Buffer.from(chunk).toString('utf8')
            : String(chunk),
      );
      return original.call(this, chunk, ...rest);
    };
    Reflect.set(stream, 'write', wrapped);
    restorers.push(() => Reflect.set(stream, 'write', original));
  }

  const target = console as unknown as Record<string, (...args: unknown[]) => void>;
  for (const method of CONSOLE_METHODS) {
    const original = target[method];
    if (typeof original !== 'function') continue;
    target[method] = function (this: unknown, ...args: unknown[]) {
      state.calls += 1;
      chunks.push(args.map(renderLogArgument).join(' '));
      return original.apply(this, args);
    };
    restorers.push(() => {
      target[method] = original;
    });
  }

  return {
    chunks,
    get calls() {
      return state.calls;
    },
    restore: () =>
      restorers
        .splice(0)
        .reverse()
        .forEach((undo) => undo()),
  };
}
