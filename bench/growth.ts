import type { AppHandle } from './app-handle.js';
import type { BenchDb } from './bench-db.js';
import { settings } from './config.js';
import type { Figures } from './figures.js';
import { expectStatus, post } from './http.js';
import type { MemoryRow } from './memory.js';
import { seedDestination, seedOtherDestinations } from './seed.js';
import { median, percentile, round, secondsSince } from './stats.js';

/** The destination whose own history grows in the third state. */
export const DESTINATION_UNDER_TEST = 'under-test@bench.example';

interface State {
  key: 'empty' | 'other' | 'own';
  name: string;
  /** Fills the table for this state (on top of the previous one); returns what it did. */
  prepare: () => Promise<string>;
  /** The destination of the next send+verify pair. */
  destination: () => string;
}

/**
 * Section 3: latency as the table grows. In each state the bench makes sequential send+verify
 * pairs (one keep-alive connection, nothing else running) and times each request: p50/p99 of
 * send and of verify, per repeat, medians over repeats. States, in order on one table:
 * empty; plus 1,000,000 rows of other destinations (sends to fresh destinations); plus 10,000 rows
 * of the destination under test, all within the last 24 h (sends and verifies to that destination:
 * each send reads its whole history).
 */
export async function growthSection(
  app: AppHandle,
  db: BenchDb,
  figures: Figures,
): Promise<MemoryRow[]> {
  console.log(
    `\n== 3. growth: sequential send+verify pairs, ${settings.growthPairs} per repeat ==`,
  );
  let sequence = 0;
  const fresh = (): string => `growth-${sequence++}@bench.example`;
  const timed = async (what: string, run: () => Promise<unknown>): Promise<string> => {
    const start = process.hrtime.bigint();
    await run();
    const took = round(secondsSince(start), 1);
    const [size] = await db.query<{ size: string }>(
      `SELECT pg_size_pretty(pg_total_relation_size('otp_requests')) AS size`,
    );
    return `${what} in ${took} s; table + indexes ${size?.size ?? '?'}`;
  };
  const states: State[] = [
    {
      key: 'empty',
      name: 'empty table',
      prepare: () =>
        timed('TRUNCATE + VACUUM ANALYZE', async () => {
          await db.query('TRUNCATE otp_requests');
          await db.query('VACUUM ANALYZE otp_requests');
        }),
      destination: fresh,
    },
    {
      key: 'other',
      name: `+${settings.historyRows.toLocaleString('en')} rows of other destinations`,
      prepare: () =>
        timed(`inserted ${settings.historyRows} rows + VACUUM ANALYZE`, () =>
          seedOtherDestinations(db, settings.historyRows),
        ),
      destination: fresh,
    },
    {
      key: 'own',
      name: `+${settings.destinationRows.toLocaleString('en')} rows of the destination under test`,
      prepare: () =>
        timed(`inserted ${settings.destinationRows} rows + VACUUM ANALYZE`, () =>
          seedDestination(db, DESTINATION_UNDER_TEST, settings.destinationRows),
        ),
      destination: () => DESTINATION_UNDER_TEST,
    },
  ];

  const pair = async (destination: string): Promise<[send: number, verify: number]> => {
    const send = expectStatus(await post(app.port, '/otp/send', { destination }), 202, 'send');
    const codes = await app.call('takeCodes', {});
    const code = codes.reverse().find(([d]) => d === destination)?.[1];
    if (!code) throw new Error(`no code captured for ${destination}`);
    const verify = expectStatus(
      await post(app.port, '/otp/verify', { destination, code }),
      200,
      'verify',
    );
    return [send.ms, verify.ms];
  };

  type Metric = 'send p50 ms' | 'send p99 ms' | 'verify p50 ms' | 'verify p99 ms';
  type Row = { state: string; key: State['key']; repeat: number; 'table rows': number } & Record<
    Metric,
    number
  >;
  await app.call('memoryPhase', {});
  const rows: Row[] = [];
  const prepared: Record<string, string> = {};
  for (const state of states) {
    prepared[state.name] = await state.prepare();
    const [count] = await db.query<{ n: string }>('SELECT count(*) AS n FROM otp_requests');
    // Warm-up pairs, not measured (caches, plans for this state).
    for (let i = 0; i < 30; i++) await pair(state.destination());
    for (let repeat = 1; repeat <= settings.repeats; repeat++) {
      const sends: number[] = [];
      const verifies: number[] = [];
      for (let i = 0; i < settings.growthPairs; i++) {
        const [send, verify] = await pair(state.destination());
        sends.push(send);
        verifies.push(verify);
      }
      rows.push({
        state: state.name,
        key: state.key,
        repeat,
        'table rows': Number(count?.n),
        'send p50 ms': round(percentile(sends, 50), 3),
        'send p99 ms': round(percentile(sends, 99), 3),
        'verify p50 ms': round(percentile(verifies, 50), 3),
        'verify p99 ms': round(percentile(verifies, 99), 3),
      });
    }
  }
  const memory = await app.call('memory', {});
  console.table(Object.entries(prepared).map(([state, setup]) => ({ state, setup })));
  console.table(rows.map(({ key: _key, ...row }) => row));

  const metrics: Metric[] = ['send p50 ms', 'send p99 ms', 'verify p50 ms', 'verify p99 ms'];
  const med = (key: State['key'], metric: Metric): number =>
    median(rows.filter((r) => r.key === key).map((r) => r[metric]));
  const ratios = [];
  for (const state of states) {
    const row: Record<string, string | number> = { state: state.name };
    for (const metric of metrics) {
      const value = med(state.key, metric);
      const ratio = value / med('empty', metric);
      row[metric] = round(value, 3);
      row[`${metric.replace(' ms', '')} ratio`] = round(ratio, 2);
      const name = `growth-${metric.replace(/ /g, '-').replace('-ms', '')}`;
      figures.add(`${name}-ms-${state.key}`, value, 3);
      if (state.key !== 'empty') figures.add(`${name}-ratio-${state.key}`, ratio, 2);
    }
    ratios.push(row);
  }
  console.log(
    'medians, and ratios to the empty table (targets: 1.2x for other destinations, 1.5x for own)',
  );
  console.table(ratios);
  return [{ app: 'hmac', phase: 'growth (sequential pairs)', bootRss: app.bootRss, ...memory }];
}
