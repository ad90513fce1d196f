/**
 * `npm run bench`: the benchmark suite, against the real example app (in a child
 * process, on 127.0.0.1) on a real Postgres, in a database of its own that is dropped at the end.
 * See bench/README.md for what each figure means and a recorded run.
 */
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { AppHandle } from './app-handle.js';
import { BenchDb } from './bench-db.js';
import { hmacApp, sectionEnabled, settings, threadPoolSize } from './config.js';
import { explainSection } from './explain.js';
import { Figures } from './figures.js';
import { growthSection } from './growth.js';
import { hashSection } from './hash-ceiling.js';
import { closeHttp } from './http.js';
import { memorySection, type MemoryRow } from './memory.js';
import { PeerHandle, WebhookHandle } from './peers/peer-handle.js';
import { sideBySideSection } from './side-by-side.js';
import { slowProviderSection } from './slow-provider.js';
import { retentionSection } from './retention.js';
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
  /** Section 5 and 6: the webhook sink, nest-otp delivering to it (on each adapter), the peers. */
  const others: { kill(): void; stop(): Promise<void> }[] = [];
  /** Databases of their own (sections 5 and 6), dropped before the main one. */
  const siblings: BenchDb[] = [];
  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) return;
    interrupted = true;
    console.error('\ninterrupted: stopping the app and dropping the bench database');
    app?.kill();
    for (const other of others) other.kill();
    void Promise.all(siblings.map((s) => s.drop().catch(() => undefined)))
      .then(() => db.drop())
      .finally(() => process.exit(130));
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
    if (sectionEnabled('hash')) memory.push(...(await hashSection(db.url, figures)));
    if (sectionEnabled('throughput') || sectionEnabled('growth')) {
      app = await AppHandle.start(db.url, hmacApp);
      if (sectionEnabled('throughput')) memory.push(...(await throughputSection(app, db, figures)));
      if (sectionEnabled('growth')) {
        memory.push(...(await growthSection(app, db, figures)));
        await explainSection(app, db, figures);
      }
      await app.stop();
      app = undefined;
    }
    if (memory.length > 0) memorySection(memory, figures);
    if (sectionEnabled('side') || sectionEnabled('slow')) {
      // A fresh database: the growth section left a million rows behind, and after a TRUNCATE
      // Postgres would keep planning with their statistics (reserveAttempt then scanned every
      // live code's index entry: 7-9 ms of Postgres CPU a verify; see README).
      const fresh = await db.sibling('nest_otp_bench_side');
      siblings.push(fresh);
      const sink = await WebhookHandle.start();
      others.push(sink);
      const webhookApp = await AppHandle.start(fresh.url, hmacApp, sink.url);
      others.push(webhookApp);
      if (sectionEnabled('side')) {
        // The same app on Fastify, same options and sink, for section 5 only. Its own database
        // (fresh too): both apps' sessions are named 'nest-otp' by the module, and the section
        // tells their Postgres backends apart by database.
        const freshFastify = await db.sibling('nest_otp_bench_side_fastify');
        siblings.push(freshFastify);
        const fastifyApp = await AppHandle.start(freshFastify.url, hmacApp, sink.url, 'fastify');
        others.push(fastifyApp);
        const peersUrl = await db.peersUrl();
        const betterAuth = await PeerHandle.start('better-auth', peersUrl, sink.url);
        others.push(betterAuth);
        const bare = await PeerHandle.start('bare', peersUrl);
        others.push(bare);
        const nestBare = await PeerHandle.start('nest-bare', peersUrl);
        others.push(nestBare);
        const nestBareFastify = await PeerHandle.start('nest-bare-fastify', peersUrl);
        others.push(nestBareFastify);
        await sideBySideSection(
          { app: webhookApp, fastifyApp, betterAuth, bare, nestBare, nestBareFastify },
          sink,
          fresh,
          figures,
        );
        // The slow-provider section runs on the Express app alone, as before.
        await fastifyApp.stop();
        await betterAuth.stop();
        await bare.stop();
        await nestBare.stop();
        await nestBareFastify.stop();
      }
      if (sectionEnabled('slow')) await slowProviderSection(webhookApp, fresh, sink, figures);
    }
    // Last, with no app running: it writes and removes a day of rows on each layout, and reads
    // the server's WAL position, which any other writer would move.
    if (sectionEnabled('retention')) await retentionSection(db, figures);
    figures.printTargets();
    figures.add('bench-seconds', secondsSince(started), 0);
    // Other work on the machine skews every figure: the load average says how much there was.
    figures.add('host-load-average-at-start', startLoad);
    figures.add('host-load-average-at-end', loadAverage());
    figures.print();
  } finally {
    await app?.stop();
    for (const other of others) await other.stop();
    closeHttp();
    if (!interrupted) {
      for (const sibling of siblings) await sibling.drop();
      await db.drop();
    }
    console.log(
      `(bench database dropped; bench process peak RSS ${mb(process.resourceUsage().maxRSS * 1024)} MiB)`,
    );
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
