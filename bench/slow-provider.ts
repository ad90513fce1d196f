import pg from 'pg';
import type { AppHandle } from './app-handle.js';
import type { BenchDb } from './bench-db.js';
import { SLOW_CONNECTIONS, SLOW_WEBHOOK_MS, settings } from './config.js';
import type { Figures } from './figures.js';
import { type LoadResult, runLoad } from './load.js';
import type { WebhookHandle } from './peers/peer-handle.js';
import { mb, median, round } from './stats.js';

/** Answers other than 202. */
const unexpected = (r: LoadResult): number =>
  Object.entries(r.statuses)
    .filter(([status]) => status !== '202')
    .reduce((sum, [, n]) => sum + n, 0);

/** Samples pg_stat_activity for the module's sessions every 10 ms while a run goes on. */
class ActivitySampler {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  samples = 0;
  maxActive = 0;
  maxIdleInTransaction = 0;
  maxSessions = 0;

  constructor(private readonly client: pg.Client) {}

  start(): void {
    this.timer = setInterval(() => {
      if (this.busy) return;
      this.busy = true;
      this.client
        .query<{ active: number; idle_tx: number; total: number }>(
          `SELECT count(*) FILTER (WHERE state = 'active')::int AS active,
                  count(*) FILTER (WHERE state LIKE 'idle in transaction%')::int AS idle_tx,
                  count(*)::int AS total
             FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = 'nest-otp'`,
        )
        .then(({ rows: [row] }) => {
          this.samples += 1;
          this.maxActive = Math.max(this.maxActive, row?.active ?? 0);
          this.maxIdleInTransaction = Math.max(this.maxIdleInTransaction, row?.idle_tx ?? 0);
          this.maxSessions = Math.max(this.maxSessions, row?.total ?? 0);
        })
        .catch(() => undefined)
        .finally(() => (this.busy = false));
    }, 10);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/**
 * Section 6: a slow provider, and memory. Sends at 64 connections (autocannon) with the webhook
 * answering at once, then after 300 ms, three times over, on the app that delivers through nest-otp's
 * own `WebhookOtpProvider`. During the slow runs the app samples its pool (connections checked out,
 * clients waiting) and the deliveries in flight at the same instants, and the bench samples
 * pg_stat_activity: with 64 deliveries held open by the webhook and a pool of 10, a send that kept
 * its connection through the delivery would cap the rate at 10 / 0.3 s = 33/s. After each repeat
 * the app runs a full GC: heap and RSS after it, repeat by repeat, show whether anything grows.
 */
export async function slowProviderSection(
  app: AppHandle,
  db: BenchDb,
  sink: WebhookHandle,
  figures: Figures,
): Promise<void> {
  const connections = SLOW_CONNECTIONS;
  console.log(
    `\n== 6. slow provider (webhook answers after ${SLOW_WEBHOOK_MS} ms) and memory: sends at ` +
      `${connections} connections (autocannon), ${settings.loadSeconds} s runs ==`,
  );
  let sequence = 0;
  const nextSend = (): unknown => ({ destination: `slow-${sequence++}@bench.example` });
  const send = () =>
    runLoad({
      port: app.port,
      path: '/otp/send',
      connections,
      durationSeconds: settings.loadSeconds,
      nextBody: nextSend,
      expect: 202,
    });
  const client = new pg.Client({ connectionString: db.url, application_name: 'nest-otp-bench' });
  await client.connect();
  try {
    await sink.call('setDelay', { delayMs: 0 });
    await runLoad({
      port: app.port,
      path: '/otp/send',
      connections,
      durationSeconds: 1,
      nextBody: nextSend,
      expect: 202,
    });
    await app.call('settle', {});
    await sink.call('takeCodes', {});
    const rows = [];
    for (let repeat = 1; repeat <= settings.repeats; repeat++) {
      await sink.call('setDelay', { delayMs: 0 });
      await app.call('memoryPhase', {});
      const fast = await send();
      await app.call('settle', {});
      const fastPeak = (await app.call('stats', {})).peakRss;

      await sink.call('setDelay', { delayMs: SLOW_WEBHOOK_MS });
      await sink.call('deliveries', {});
      await app.call('memoryPhase', {});
      const activity = new ActivitySampler(client);
      await app.call('samplePool', { on: true });
      activity.start();
      const slow = await send();
      activity.stop();
      const pool = await app.call('samplePool', { on: false });
      await app.call('settle', {});
      const slowPeak = (await app.call('stats', {})).peakRss;
      const webhook = await sink.call('deliveries', {});
      await sink.call('takeCodes', {});
      const afterGc = await app.call('gc', {});
      rows.push({
        repeat,
        'fast req/s': round(fast.rps, 1),
        'fast p50 ms': round(fast.p50, 1),
        'slow req/s': round(slow.rps, 1),
        'slow p50 ms': round(slow.p50, 1),
        'slow p99 ms': round(slow.p99, 1),
        'deliveries in flight, max (webhook)': webhook.maxInFlight,
        'deliveries in flight, mean (app)': round(pool?.meanDeliveries ?? NaN, 1),
        'pool in use, mean': round(pool?.meanInUse ?? NaN, 2),
        'pool in use, max': pool?.maxInUse,
        'pool waiting, max': pool?.maxWaiting,
        'pool size': pool?.max,
        'pg_stat_activity active, max': activity.maxActive,
        'idle in transaction, max': activity.maxIdleInTransaction,
        'errors or non-202': fast.errors + slow.errors + unexpected(fast) + unexpected(slow),
        'peak RSS MiB (fast)': mb(fastPeak),
        'peak RSS MiB (slow)': mb(slowPeak),
        'heap after GC MiB': mb(afterGc.heapUsed),
        'RSS after GC MiB': mb(afterGc.rss),
      });
    }
    console.table(rows);

    const fast = median(rows.map((r) => r['fast req/s']));
    const slow = median(rows.map((r) => r['slow req/s']));
    const allowed = connections / (SLOW_WEBHOOK_MS / 1000);
    const cap = Math.min(fast, allowed);
    console.log(
      `slow-provider send: ${round(slow, 1)} req/s against min(fast ${round(fast, 1)}, ` +
        `${connections} / ${SLOW_WEBHOOK_MS / 1000} s = ${round(allowed, 1)}) = ${round(cap, 1)} req/s`,
    );
    figures.add(`send-fast-webhook-c${connections}-req/s`, fast, 1);
    figures.add(`send-slow-webhook-c${connections}-req/s`, slow, 1);
    figures.target('slow-provider-send', {
      figure: `slow-provider send (${SLOW_WEBHOOK_MS} ms webhook, ${connections} connections)`,
      mine: slow,
      reference: `min(fast webhook, ${connections}/${SLOW_WEBHOOK_MS / 1000} s)`,
      theirs: cap,
      atLeast: 0.8,
    });
    figures.add('slow-pool-in-use-max', Math.max(...rows.map((r) => r['pool in use, max'] ?? 0)));
    figures.add('slow-pool-in-use-mean', median(rows.map((r) => r['pool in use, mean'])), 2);
    figures.add(
      'slow-deliveries-in-flight-max',
      Math.max(...rows.map((r) => r['deliveries in flight, max (webhook)'])),
    );
    figures.add(
      'slow-idle-in-transaction-max',
      Math.max(...rows.map((r) => r['idle in transaction, max'])),
    );

    const peak = Math.max(
      ...rows.map((r) => Math.max(r['peak RSS MiB (fast)'], r['peak RSS MiB (slow)'])),
    );
    const first = rows[0];
    const last = rows[rows.length - 1];
    figures.add(`app-peak-rss-mib-c${connections}`, peak, 1);
    if (first && last) {
      const heapGrowth = last['heap after GC MiB'] / first['heap after GC MiB'];
      const rssGrowth = last['RSS after GC MiB'] / first['RSS after GC MiB'];
      console.log(
        `memory: peak RSS ${peak} MiB; after GC, repeat ${rows.length} vs repeat 1: heap ` +
          `${round(heapGrowth, 3)}x, RSS ${round(rssGrowth, 3)}x (growth means > 1.1x)`,
      );
      figures.add('memory-heap-after-gc-growth', heapGrowth, 3);
      figures.add('memory-rss-after-gc-growth', rssGrowth, 3);
      figures.add('memory-grows', heapGrowth > 1.1 || rssGrowth > 1.1 ? 'yes' : 'no');
    }
  } finally {
    await sink.call('setDelay', { delayMs: 0 });
    await client.end();
  }
}
