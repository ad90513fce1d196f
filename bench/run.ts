/**
 * `npm run bench`: the benchmark suite, against the real example app (in a child
 * process, on 127.0.0.1) on a real Postgres, in a database of its own that is dropped at the end.
 * See bench/README.md for what each figure means and a recorded run.
 */
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { AppHandle } from './app-handle.js';
import { BenchDb } from './bench-db.js';
import { hmacApp, settings, threadPoolSize } from './config.js';
import { explainSection } from './explain.js';
import { Figures } from './figures.js';
import { growthSection } from './growth.js';
import { hashSection } from './hash-ceiling.js';
import { closeHttp } from './http.js';
import { memorySection, type MemoryRow } from './memory.js';
import { mb, round, secondsSince } from './stats.js';
import { throughputSection } from './throughput.js';

/** 1, 5 and 15 minute load averages of the host. */
const loadAverage = (): string =>
  loadavg()
    .map((l) => round(l, 2))
    .join(' / ');

async function main(): Promise<void> {
  const startLoad = loadAverage();
  const started = process.hrtime.bigint();
  const figures = new Figures();
  const db = await BenchDb.create();
  let app: AppHandle | undefined;
  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) return;
    interrupted = true;
    console.error('\ninterrupted: stopping the app and dropping the bench database');
    app?.kill();
    void db.drop().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    const [serverVersion] = await db.query<{ v: string }>(
      "SELECT current_setting('server_version') AS v",
    );
    console.log('nest-otp bench');
    console.table({
      node: process.version,
      cpu: cpus()[0]?.model ?? 'unknown',
      cpus: availableParallelism(),
      'memory GiB': round(totalmem() / 1024 ** 3, 1),
      UV_THREADPOOL_SIZE: threadPoolSize(),
      postgres: serverVersion?.v ?? 'unknown',
      database: db.describe(),
      'load average (1/5/15 min)': loadAverage(),
      ...settings,
    });

    const memory: MemoryRow[] = [];
    memory.push(...(await hashSection(db.url, figures)));
    app = await AppHandle.start(db.url, hmacApp);
    memory.push(...(await throughputSection(app, figures)));
    memory.push(...(await growthSection(app, db, figures)));
    await explainSection(app, db, figures);
    memorySection(memory, figures);
    figures.add('bench-seconds', secondsSince(started), 0);
    // Other work on the machine skews every figure: the load average says how much there was.
    figures.add('host-load-average-at-start', startLoad);
    figures.add('host-load-average-at-end', loadAverage());
    figures.print();
  } finally {
    await app?.stop();
    closeHttp();
    if (!interrupted) await db.drop();
    console.log(
      `(bench database dropped; bench process peak RSS ${mb(process.resourceUsage().maxRSS * 1024)} MiB)`,
    );
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
