import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import type { Test } from 'supertest';
import { wrongCodes } from './races.js';
import type { TestApp } from './test-app.js';

/**
 * Live traffic for the online-migration tests: clients that send and verify through the real
 * routes, back to back, spread over several app instances on one database, and a watcher of the
 * module's sessions waiting on a lock.
 */

/** One answer: which step, what came back, what was expected, how long it took (ms), when. */
export interface TrafficCall {
  step: 'send' | 'wrong verify' | 'verify';
  status: number;
  expected: number;
  ms: number;
  at: number;
  body?: unknown;
}

export interface HttpTraffic {
  calls: TrafficCall[];
  /** Stops every client after its current request; resolves when all have stopped. */
  stop(): Promise<void>;
}

/**
 * `clients` loops, each over the apps in turn: POST /otp/send (202), a wrong code (401), the right
 * code (200), every time to a new destination, so each call's expected answer is known.
 */
export function httpTraffic(apps: readonly TestApp[], clients: number): HttpTraffic {
  const calls: TrafficCall[] = [];
  let running = true;
  const timed = async (
    step: TrafficCall['step'],
    expected: number,
    request: Test,
  ): Promise<boolean> => {
    const at = performance.now();
    const response = await request;
    const call: TrafficCall = {
      step,
      status: response.status,
      expected,
      ms: performance.now() - at,
      at,
    };
    if (response.status !== expected) call.body = response.body;
    calls.push(call);
    return response.status === expected;
  };
  const loops = Array.from({ length: clients }, async (_, client) => {
    for (let n = 0; running; n += 1) {
      const t = apps[(client + n) % apps.length] as TestApp;
      const destination = `live-${randomUUID()}@example.com`;
      if (!(await timed('send', 202, t.http.post('/otp/send').send({ destination })))) {
        // A refused send is recorded; the next one waits a moment instead of spinning.
        await new Promise((resolve) => setTimeout(resolve, 20));
        continue;
      }
      const code = t.provider.lastCode(destination);
      const [wrong] = wrongCodes(code, 1);
      await timed(
        'wrong verify',
        401,
        t.http.post('/otp/verify').send({ destination, code: wrong }),
      );
      await timed('verify', 200, t.http.post('/otp/verify').send({ destination, code }));
    }
  });
  return {
    calls,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

export interface LockWaits {
  /** The longest any of the module's sessions had been running a statement found waiting on a lock, ms. */
  stop(): Promise<{ maxMs: number; samples: number; waiting: number }>;
}

/**
 * Samples pg_stat_activity every 50 ms for the module's sessions (application_name `nest-otp`)
 * waiting on a lock, and keeps the longest time such a statement had been running.
 */
export async function watchLockWaits(url: string): Promise<LockWaits> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let running = true;
  let maxMs = 0;
  let samples = 0;
  let waiting = 0;
  const loop = (async () => {
    while (running) {
      const { rows } = await client.query<{ ms: number }>(
        `SELECT extract(epoch FROM clock_timestamp() - query_start)::float8 * 1000 AS ms
           FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'nest-otp'
            AND wait_event_type = 'Lock'`,
      );
      samples += 1;
      waiting += rows.length;
      for (const row of rows) maxMs = Math.max(maxMs, row.ms);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      await client.end();
      return { maxMs, samples, waiting };
    },
  };
}
