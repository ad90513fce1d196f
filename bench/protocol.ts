import type { OtpModuleOptionsInput } from '../src/otp/otp.options.js';
import type { CapturedStatement } from './query-counter.js';

/**
 * What the bench asks of the app process over IPC, and what each command answers. The app runs
 * in its own process so its RSS is its own and the load generator does not share its event loop.
 */
export interface Commands {
  /** Boots the example app on 127.0.0.1 (random port). */
  start: {
    args: { databaseUrl: string; otp: OtpModuleOptionsInput };
    result: { port: number; rss: number };
  };
  /** Sends `count` codes through `OtpService.send` (no HTTP), `concurrency` at a time. */
  mint: { args: { prefix: string; count: number; concurrency: number }; result: number };
  /** The codes delivered since the last `takeCodes`. */
  takeCodes: { args: Record<string, never>; result: [destination: string, code: string][] };
  /** Resolves once no HTTP request has been in flight for 200 ms (at most 10 s). */
  settle: { args: Record<string, never>; result: null };
  /** Starts counting the app's queries (forgetting earlier counts). */
  countQueries: { args: Record<string, never>; result: null };
  /** Stops counting and returns each distinct statement with its count and last parameters. */
  queries: { args: Record<string, never>; result: CapturedStatement[] };
  /** Starts a memory phase: the sampled peak RSS restarts from the current RSS. */
  memoryPhase: { args: Record<string, never>; result: null };
  /** Peak RSS sampled since `memoryPhase`, the current RSS, and the process's lifetime maximum. */
  memory: {
    args: Record<string, never>;
    result: { phasePeak: number; rss: number; maxRss: number };
  };
  /** Runs the retention purge (`OtpService.purge()`). */
  purge: { args: Record<string, never>; result: { deleted: number; hashesCleared: number } };
  /** Closes the app; the process then exits. */
  stop: { args: Record<string, never>; result: null };
}

export type CommandName = keyof Commands;

export interface Request<K extends CommandName = CommandName> {
  id: number;
  command: K;
  args: Commands[K]['args'];
}

export type Reply =
  { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };
