import type { ExamplePlatform } from '../example/bootstrap.js';
import type { OtpModuleOptionsInput } from '../src/otp/otp.options.js';
import type { ProcessStats } from './child.js';
import type { CapturedStatement } from './query-counter.js';

/**
 * What the bench asks of the app process over IPC, and what each command answers. The app runs
 * in its own process so its RSS is its own and the load generator does not share its event loop.
 */
export interface Commands {
  /**
   * Boots the example app on 127.0.0.1 (random port). Codes go to the capturing provider, or with
   * `webhookUrl` to nest-otp's own `WebhookOtpProvider` posting there (the bench's webhook sink).
   * `platform`: Express (the default, every section) or Fastify (section 5's second app).
   */
  start: {
    args: {
      databaseUrl: string;
      otp: OtpModuleOptionsInput;
      webhookUrl?: string;
      platform?: ExamplePlatform;
    };
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
  /** CPU time and memory of the app process. */
  stats: { args: Record<string, never>; result: ProcessStats };
  /** Runs a full GC (the process has `--expose-gc`) and answers the heap and RSS after it. */
  gc: { args: Record<string, never>; result: { heapUsed: number; rss: number } };
  /** CPU µs the configured hasher costs for one hash and one check (mean over `count` pairs). */
  hashCost: { args: { count: number }; result: { hashMicros: number; matchMicros: number } };
  /**
   * Starts (`on: true`) or stops sampling the module's pool every 5 ms; stopping answers what was
   * seen: connections checked out (in use), clients waiting for one, the pool's size.
   */
  samplePool: { args: { on: boolean }; result: PoolSample | null };
  /**
   * Starts V8's CPU profiler in the app process (what `node --cpu-prof` runs for the whole
   * process), or stops it and writes the `.cpuprofile` to `path`: a profile of a load window alone,
   * without the boot or the minting before it.
   */
  profile: { args: { path?: string }; result: null };
  /** Closes the app; the process then exits. */
  stop: { args: Record<string, never>; result: null };
}

/** The module's pool as sampled during a run. */
export interface PoolSample {
  samples: number;
  max: number;
  maxInUse: number;
  meanInUse: number;
  maxWaiting: number;
  /** Deliveries the app had in flight (its webhook provider), at the same instants. */
  maxDeliveries: number;
  meanDeliveries: number;
}
