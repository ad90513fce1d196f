/**
 * `npm run bench:profile`: where the app's CPU goes. Boots the example app (HMAC, delivering
 * through nest-otp's webhook provider to the bench's sink), drives one path (send, then verify,
 * each in a fresh app process) with the `fetch` client at 16 concurrent requests, profiles the app
 * over the measured window only (V8's CPU profiler, as `node --cpu-prof` runs it, started and
 * stopped through the inspector so boot and minting stay out), and prints the top entries by self
 * time, by function and by package. On Express unless `BENCH_PROFILE_PLATFORM=fastify`. The
 * `.cpuprofile` files stay in BENCH_PROFILE_DIR (default a folder under the OS temp dir), for
 * Chrome DevTools or speedscope.
 */
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExamplePlatform } from '../example/bootstrap.js';
import { AppHandle } from './app-handle.js';
import { BenchDb } from './bench-db.js';
import { hmacApp, settings } from './config.js';
import { summarizeProfile } from './cpu-profile.js';
import { runFetchLoad } from './fetch-load.js';
import { WebhookHandle } from './peers/peer-handle.js';
import { round } from './stats.js';

/** `BENCH_PROFILE_PLATFORM`: the example app on `express` (default) or `fastify`. */
function platform(): ExamplePlatform {
  const wanted = process.env.BENCH_PROFILE_PLATFORM ?? 'express';
  if (wanted !== 'express' && wanted !== 'fastify') {
    throw new Error(`BENCH_PROFILE_PLATFORM must be express or fastify, got ${wanted}`);
  }
  return wanted;
}

async function profilePath(db: BenchDb, sink: WebhookHandle, path: 'send' | 'verify', dir: string) {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${path}.cpuprofile`);
  let answered = 1;
  const app = await AppHandle.start(db.url, hmacApp, sink.url, platform());
  try {
    let sequence = 0;
    const codes: [string, string][] = [];
    const body =
      path === 'send'
        ? () => ({ destination: `prof-${sequence++}@bench.example` })
        : () => {
            const entry = codes.pop();
            return entry && { destination: entry[0], code: entry[1] };
          };
    if (path === 'verify') {
      await app.call('mint', { prefix: 'prof', count: 12_000, concurrency: 16 });
      codes.push(...(await sink.call('takeCodes', {})));
    }
    const load = {
      port: app.port,
      path: `/otp/${path}`,
      connections: 16,
      nextBody: body,
      expect: path === 'send' ? 202 : 200,
    };
    await runFetchLoad({ ...load, durationSeconds: 1 });
    const before = await app.call('stats', {});
    await app.call('profile', {});
    const result = await runFetchLoad({ ...load, durationSeconds: settings.loadSeconds });
    await app.call('settle', {});
    await app.call('profile', { path: file });
    const after = await app.call('stats', {});
    answered = Object.values(result.statuses).reduce((a, n) => a + n, 0);
    console.log(
      `\n== ${path}: ${round(result.rps, 1)} req/s, app CPU ${round((after.cpuMicros - before.cpuMicros) / 1000 / answered, 3)} ms/request ` +
        `(${JSON.stringify(result.statuses)}) ==`,
    );
  } finally {
    await app.stop();
  }
  const summary = summarizeProfile(file);
  console.log(
    `profile ${file}: ${round(summary.total, 0)} ms sampled on the main thread, ` +
      `${round(summary.total / answered, 3)} ms a request; plus ${round(summary.offCpu, 0)} ms in ` +
      `socket writes (mostly preempted, off the CPU: see cpu-profile.ts), left out below`,
  );
  console.table(summary.owners.slice(0, 15));
  console.table(summary.functions);
}

async function main(): Promise<void> {
  const dir = process.env.BENCH_PROFILE_DIR ?? join(tmpdir(), `nest-otp-profile-${Date.now()}`);
  const db = await BenchDb.create();
  const sink = await WebhookHandle.start();
  try {
    const paths = (process.env.BENCH_PROFILE_PATHS ?? 'send,verify').split(',');
    for (const path of paths) await profilePath(db, sink, path as 'send' | 'verify', dir);
  } finally {
    await sink.stop();
    await db.drop();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
