import { type LoadOptions, type LoadResult, runLoad } from './load.js';
import { percentile } from './stats.js';

/**
 * Drives a server with Node's own `fetch` (undici, keep-alive): `connections` workers, each with
 * one request in flight, each request with its own body from `nextBody`, for `durationSeconds`.
 * The client a Node service calling another would use: it costs far more CPU a request than
 * autocannon, and on 2 cores that CPU is taken from the server under test, as it would be from
 * any server sharing a machine with its callers.
 */
export async function runFetchLoad(options: LoadOptions): Promise<LoadResult> {
  const url = `http://127.0.0.1:${options.port}${options.path}`;
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let errors = 0;
  let ranDry = false;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round((options.durationSeconds ?? 5) * 1e9));
  let remaining = options.amount ?? Infinity;
  const worker = async (): Promise<void> => {
    while (remaining > 0 && process.hrtime.bigint() < deadline) {
      const body = options.nextBody();
      if (body === undefined) {
        ranDry = true;
        return;
      }
      remaining -= 1;
      const sent = process.hrtime.bigint();
      try {
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...options.headers },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(30_000),
        });
        await response.arrayBuffer();
        statuses[String(response.status)] = (statuses[String(response.status)] ?? 0) + 1;
        if (response.status === options.expect) {
          latencies.push(Number(process.hrtime.bigint() - sent) / 1e6);
        }
      } catch {
        errors += 1;
      }
    }
  };
  await Promise.all(Array.from({ length: options.connections }, worker));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const ok = statuses[String(options.expect)] ?? 0;
  return {
    rps: ok / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    ok,
    statuses,
    errors,
    seconds,
    ranDry,
  };
}

export type Client = 'fetch' | 'autocannon';
export const CLIENTS: readonly Client[] = ['fetch', 'autocannon'];

/** One load run with either client. */
export const drive = (client: Client, options: LoadOptions): Promise<LoadResult> =>
  client === 'fetch' ? runFetchLoad(options) : runLoad(options);
