import type { AppHandle } from './app-handle.js';
import type { BenchDb } from './bench-db.js';
import { CONCURRENCIES, settings } from './config.js';
import type { Figures } from './figures.js';
import { wrongCode } from './hash-ceiling.js';
import { expectStatus, post } from './http.js';
import { runLoad } from './load.js';
import type { MemoryRow } from './memory.js';
import { median, round } from './stats.js';
import { labelOf } from './statements.js';
import { isHeapOnly } from '../test/support/heap-only.js';

type Code = [destination: string, code: string];

/** Requests per path for the round-trip count. */
const ROUND_TRIP_SAMPLE = 100;

/**
 * Section 2a: send and verify throughput and latency with the HMAC hasher at 1, 16 and 64
 * connections. Every send goes to a destination never used before; every verify uses a real,
 * unused code once (right code, 200), taken from the sends so far or, when those are not enough
 * for the run ahead, minted through OtpService.send in the app process beforehand (not measured).
 */
export async function throughputSection(
  app: AppHandle,
  db: BenchDb,
  figures: Figures,
): Promise<MemoryRow[]> {
  console.log(`\n== 2. HMAC hasher: throughput and latency (${settings.loadSeconds} s runs) ==`);
  const pool: Code[] = [];
  let sequence = 0;
  const nextSend = (): unknown => ({ destination: `load-${sequence++}@bench.example` });
  const nextVerify = (): unknown => {
    const entry = pool.pop();
    return entry && { destination: entry[0], code: entry[1] };
  };
  let mints = 0;
  const refill = async (wanted: number): Promise<void> => {
    pool.push(...(await app.call('takeCodes', {})));
    if (pool.length >= wanted) return;
    mints += 1;
    const count = wanted - pool.length;
    await app.call('mint', { prefix: `mint${mints}`, count, concurrency: 16 });
    pool.push(...(await app.call('takeCodes', {})));
  };

  // Warm-up, not measured.
  const base = { port: app.port };
  await runLoad({
    ...base,
    path: '/otp/send',
    connections: 16,
    durationSeconds: 2,
    nextBody: nextSend,
    expect: 202,
  });
  await refill(0);
  await runLoad({
    ...base,
    path: '/otp/verify',
    connections: 16,
    durationSeconds: 1,
    nextBody: nextVerify,
    expect: 200,
  });

  await app.call('settle', {});
  await app.call('memoryPhase', {});
  const verifyRate = new Map<number, number>();
  const rows = [];
  for (let repeat = 1; repeat <= settings.repeats; repeat++) {
    for (const connections of CONCURRENCIES) {
      const load = { ...base, connections, durationSeconds: settings.loadSeconds };
      const send = await runLoad({ ...load, path: '/otp/send', nextBody: nextSend, expect: 202 });
      await app.call('settle', {});
      // Enough codes for the verify run: 1.5x its expected rate (first guess: 3x the send rate).
      const expected = verifyRate.get(connections) ?? send.rps * 3;
      await refill(Math.ceil(expected * settings.loadSeconds * 1.5) + 100);
      const verify = await runLoad({
        ...load,
        path: '/otp/verify',
        nextBody: nextVerify,
        expect: 200,
      });
      await app.call('settle', {});
      verifyRate.set(connections, Math.max(verifyRate.get(connections) ?? 0, verify.rps));
      for (const [path, r] of [
        ['send', send],
        ['verify', verify],
      ] as const) {
        rows.push({
          repeat,
          path,
          connections,
          'req/s': round(r.rps, 1),
          'p50 ms': round(r.p50, 2),
          'p99 ms': round(r.p99, 2),
          statuses: JSON.stringify(r.statuses),
          errors: r.errors,
          'ran dry': r.ranDry,
        });
      }
    }
  }
  const memory = await app.call('memory', {});
  console.table(rows);

  for (const path of ['send', 'verify'] as const) {
    for (const connections of CONCURRENCIES) {
      const mine = rows.filter((r) => r.path === path && r.connections === connections);
      const name = `${path}-hmac-c${connections}`;
      figures.add(`${name}-req/s`, median(mine.map((r) => r['req/s'])), 1);
      figures.add(`${name}-p50-ms`, median(mine.map((r) => r['p50 ms'])));
      figures.add(`${name}-p99-ms`, median(mine.map((r) => r['p99 ms'])));
    }
  }
  await roundTrips(app, figures);
  await hotDeliveries(db, figures);
  return [
    {
      app: 'hmac',
      phase: `send/verify load (1, 16, 64 connections)`,
      bootRss: app.bootRss,
      ...memory,
    },
  ];
}

/**
 * Section 2b: database round trips per request, counted on the app's pg client over a batch of
 * sequential requests (nothing else runs meanwhile): each `pg.Client#query` is one round trip.
 */
async function roundTrips(app: AppHandle, figures: Figures): Promise<void> {
  const n = ROUND_TRIP_SAMPLE;
  console.log(`\n-- 2b. database round trips per request (mean over ${n} sequential requests) --`);
  const destinations = Array.from({ length: n }, (_, i) => `rt-${i}@bench.example`);
  // The last load run's requests may still be in the app (autocannon stops sending, the app
  // finishes what it received): count only once they are done.
  await app.call('settle', {});

  await app.call('countQueries', {});
  for (const destination of destinations) {
    expectStatus(await post(app.port, '/otp/send', { destination }), 202, 'send');
  }
  const sends = await app.call('queries', {});

  const codes = new Map(await app.call('takeCodes', {}));
  await app.call('countQueries', {});
  for (const destination of destinations) {
    const code = codes.get(destination) as string;
    expectStatus(await post(app.port, '/otp/verify', { destination, code }), 200, 'verify');
  }
  const verifies = await app.call('queries', {});

  // The same destinations again: each has a history now, which this instance knows of.
  await app.call('countQueries', {});
  for (const destination of destinations) {
    expectStatus(await post(app.port, '/otp/send', { destination }), 202, 'send again');
  }
  const sendsAgain = await app.call('queries', {});
  await app.call('takeCodes', {});

  await app.call('mint', { prefix: 'rt-wrong', count: n, concurrency: 8 });
  const wrong = await app.call('takeCodes', {});
  await app.call('countQueries', {});
  for (const [destination, code] of wrong) {
    const body = { destination, code: wrongCode(code) };
    expectStatus(await post(app.port, '/otp/verify', body), 401, 'wrong verify');
  }
  const wrongVerifies = await app.call('queries', {});

  const columns = [
    ['send (202)', sends],
    ['verify, right code (200)', verifies],
    ['send again (202)', sendsAgain],
    ['verify, wrong code (401)', wrongVerifies],
  ] as const;
  const labels = [...new Set(columns.flatMap(([, qs]) => qs.map((q) => labelOf(q.text))))];
  const perRequest = (qs: typeof sends, label?: string): number =>
    round(
      qs
        .filter((q) => label === undefined || labelOf(q.text) === label)
        .reduce((a, q) => a + q.count, 0) / n,
      2,
    );
  const table = labels.map((label) => ({
    statement: label,
    ...Object.fromEntries(columns.map(([name, qs]) => [name, perRequest(qs, label)])),
  }));
  table.push({
    statement: 'TOTAL round trips per request',
    ...Object.fromEntries(columns.map(([name, qs]) => [name, perRequest(qs)])),
  });
  console.table(table);
  figures.add('db-round-trips-per-send', perRequest(sends));
  figures.add('db-round-trips-per-verify', perRequest(verifies));
  figures.add('db-round-trips-per-send-again', perRequest(sendsAgain));
  figures.add('db-round-trips-per-wrong-verify', perRequest(wrongVerifies));
}

/**
 * Section 2c: how many of the load runs' delivery records were HOT updates (a new row version on
 * the same page, no new index entry): of the rows written under load whose only update was that
 * record (never verified nor superseded), the share whose current version is a heap-only tuple,
 * which only a HOT update writes (pageinspect). The one-live-code index names no column a delivery
 * changes (`IndexLiveFlows`); a page with no room left is what still makes one a plain update.
 */
async function hotDeliveries(db: BenchDb, figures: Figures): Promise<void> {
  console.log('\n-- 2c. delivery records written as HOT updates (sends of the load runs) --');
  await db.query('CREATE EXTENSION IF NOT EXISTS pageinspect');
  const [row] = await db.query<{ rows: number; hot: number }>(
    `SELECT count(*)::int AS rows, count(*) FILTER (WHERE ${isHeapOnly('r')})::int AS hot
       FROM otp_requests r
      WHERE r.destination LIKE 'load-%' AND r.delivery_status = 'sent'
        AND r.verified_at IS NULL AND r.superseded_at IS NULL AND r.attempts_used = 0`,
  );
  const rows = row?.rows ?? 0;
  const share = rows === 0 ? 0 : round((100 * (row?.hot ?? 0)) / rows, 1);
  console.log(`${row?.hot ?? 0} of ${rows} delivery records were HOT updates (${share}%)`);
  figures.add('delivery-records-hot-pct', share, 1);
}
