import { Agent } from 'undici';
import { type LoadOptions, type LoadResult, runLoad } from './load.js';
import { percentile } from './stats.js';

/**
 * The loopback address connection `index` comes from: 127.0.0.2, .3 and so on, one a
 * connection, as if each were its own client. On Linux every address of 127.0.0.0/8 answers.
 */
export function clientAddress(index: number): string {
  if (!Number.isInteger(index) || index < 0 || index > 253) {
    throw new RangeError(`client address index must be 0-253, got ${index}`);
  }
  return `127.0.0.${index + 2}`;
}

/**
 * Drives a server with Node's own `fetch` (undici, keep-alive): `connections` workers, each with
 * one request in flight, each request with its own body from `nextBody`, for `durationSeconds`.
 * The client a Node service calling another would use: it costs far more CPU a request than
 * autocannon, and on 2 cores that CPU is taken from the server under test, as it would be from
 * any server sharing a machine with its callers.
 *
 * Each worker connects from its own loopback address (`clientAddress`), so the server sees
 * `connections` clients, not one: the app's per-IP throttle then keeps a key a client, as it does
 * for real traffic. From one address, the in-memory throttle store's one key held every hit of its
 * window (about 1,500 in a 1 s window) and filtered them all on every request, a cost a real
 * client, whose key holds at most `throttleLimit` hits, never causes.
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
  const agents = Array.from(
    { length: options.connections },
    (_, index) => new Agent({ localAddress: clientAddress(index) }),
  );
  const worker = async (dispatcher: Agent): Promise<void> => {
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
          dispatcher,
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
  await Promise.all(agents.map(worker));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await Promise.all(agents.map((agent) => agent.close()));
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
