import bcrypt from 'bcrypt';
import { availableParallelism } from 'node:os';
import { AppHandle } from './app-handle.js';
import {
  BCRYPT_CONNECTIONS,
  BCRYPT_COST,
  bcryptApp,
  CEILING_IN_FLIGHT,
  settings,
  threadPoolSize,
} from './config.js';
import { CLIENTS, drive } from './fetch-load.js';
import type { Figures } from './figures.js';
import type { MemoryRow } from './memory.js';
import { median, round, secondsSince } from './stats.js';

/** Codes guessed against in the verify load: enough that no single row is hot. */
const GUESSED_CODES = 64;

/** A code of the same length that is certainly wrong. */
export function wrongCode(code: string): string {
  const modulus = 10 ** code.length;
  return String((Number(code) + 1) % modulus).padStart(code.length, '0');
}

/**
 * bcrypt.compare calls per second at `cost`, keeping `inFlight` calls queued on libuv's pool so
 * every pool thread is always busy: what the machine can hash, the ceiling for verify.
 */
async function bcryptCeiling(hash: string, seconds: number, inFlight: number): Promise<number> {
  // Same input shape as the app's (`<request id>:<code>`), and a wrong guess like the load's.
  const guess = '2f1d0f9e-7a3c-4f51-9a6e-0c4b7e2d9a11:654321';
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(seconds * 1e9));
  let done = 0;
  const worker = async (): Promise<void> => {
    while (process.hrtime.bigint() < deadline) {
      await bcrypt.compare(guess, hash);
      done += 1;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return done / secondsSince(start);
}

/**
 * Section 1: the hash ceiling against what the app serves, with autocannon and with a Node
 * `fetch` client (16 requests in flight each). The verify load guesses wrong codes,
 * spread over 64 codes with 30 000 attempts each, so every request reserves an attempt (one UPDATE)
 * and runs exactly one bcrypt.compare before its 401. Ceiling and load alternate, repeat by
 * repeat, with the app idle while the ceiling is measured here in the bench process.
 */
export async function hashSection(databaseUrl: string, figures: Figures): Promise<MemoryRow[]> {
  console.log(
    `\n== 1. hash ceiling: bcrypt cost ${BCRYPT_COST}, UV_THREADPOOL_SIZE ${threadPoolSize()}, ` +
      `${availableParallelism()} CPUs ==`,
  );
  const app = await AppHandle.start(databaseUrl, bcryptApp);
  try {
    await app.call('mint', { prefix: 'bcrypt', count: GUESSED_CODES, concurrency: 8 });
    const codes = await app.call('takeCodes', {});
    let next = 0;
    const nextBody = (): unknown => {
      const [destination, code] = codes[next++ % codes.length] as [string, string];
      return { destination, code: wrongCode(code) };
    };
    const hash = await bcrypt.hash('2f1d0f9e-7a3c-4f51-9a6e-0c4b7e2d9a11:123456', BCRYPT_COST);

    // Warm-up (JIT, pool threads, connections), not measured.
    await bcryptCeiling(hash, 1, CEILING_IN_FLIGHT);
    const load = { port: app.port, path: '/otp/verify', connections: BCRYPT_CONNECTIONS };
    for (const client of CLIENTS) {
      await drive(client, { ...load, durationSeconds: 1, nextBody, expect: 401 });
    }

    await app.call('settle', {});
    await app.call('memoryPhase', {});
    const rows: {
      repeat: number;
      client: string;
      'ceiling compare/s': number;
      'verify req/s': number;
      'verify p50 ms': number;
      'verify p99 ms': number;
      ratio: number;
      'app CPU ms/req': number;
      statuses: string;
      errors: number;
    }[] = [];
    for (let repeat = 1; repeat <= settings.repeats; repeat++) {
      const ceiling = await bcryptCeiling(hash, settings.ceilingSeconds, CEILING_IN_FLIGHT);
      for (const client of CLIENTS) {
        const before = await app.call('stats', {});
        const verify = await drive(client, {
          ...load,
          durationSeconds: settings.loadSeconds,
          nextBody,
          expect: 401,
        });
        await app.call('settle', {});
        const after = await app.call('stats', {});
        rows.push({
          repeat,
          client,
          'ceiling compare/s': round(ceiling, 1),
          'verify req/s': round(verify.rps, 1),
          'verify p50 ms': round(verify.p50, 1),
          'verify p99 ms': round(verify.p99, 1),
          ratio: round(verify.rps / ceiling, 3),
          // Includes the compare itself, which runs on libuv's pool threads of the same process.
          'app CPU ms/req': round(
            (after.cpuMicros - before.cpuMicros) / 1000 / Math.max(verify.ok, 1),
            2,
          ),
          statuses: JSON.stringify(verify.statuses),
          errors: verify.errors,
        });
      }
    }
    const memory = await app.call('memory', {});
    console.table(rows);

    const ceiling = median(
      rows.filter((r) => r.client === 'fetch').map((r) => r['ceiling compare/s']),
    );
    const verify = (client: string): number =>
      median(rows.filter((r) => r.client === client).map((r) => r['verify req/s']));
    figures.add('cpus', availableParallelism());
    figures.add('uv-threadpool-size', threadPoolSize());
    figures.add('bcrypt-cost', BCRYPT_COST);
    figures.add('bcrypt-ceiling-ops/s', ceiling, 1);
    figures.add('verify-bcrypt-req/s', verify('autocannon'), 1);
    figures.add('ratio-verify-to-ceiling', verify('autocannon') / ceiling, 3);
    figures.add('verify-bcrypt-fetch-req/s', verify('fetch'), 1);
    figures.target('bcrypt-verify-fetch-vs-ceiling', {
      figure: 'bcrypt-verify-fetch-vs-ceiling',
      mine: verify('fetch'),
      reference: `${CEILING_IN_FLIGHT} parallel bcrypt.compare (cost ${BCRYPT_COST})`,
      theirs: ceiling,
      atLeast: 0.9,
    });
    return [
      {
        app: 'bcrypt',
        phase: `verify load (${BCRYPT_CONNECTIONS} connections)`,
        bootRss: app.bootRss,
        ...memory,
      },
    ];
  } finally {
    await app.stop();
  }
}
