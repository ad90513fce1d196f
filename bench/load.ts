import autocannon from 'autocannon';
import { percentile } from './stats.js';

export interface LoadOptions {
  port: number;
  path: string;
  connections: number;
  /** Seconds to run; ignored when `amount` is given. */
  durationSeconds?: number;
  /** Stop after this many requests instead of after a duration. */
  amount?: number;
  /** The body of the next request; undefined when there is nothing left to send. */
  nextBody: () => unknown;
  /** The status a successful request answers (202 for send, 200/401 for verify). */
  expect: number;
  /** Sent with every request, besides `content-type: application/json`. */
  headers?: Record<string, string>;
}

export interface LoadResult {
  /** Responses with the expected status per second of the run. */
  rps: number;
  p50: number;
  p99: number;
  /** Responses with the expected status. */
  ok: number;
  /** Responses by status code. */
  statuses: Record<string, number>;
  /** Connection errors and timeouts. */
  errors: number;
  seconds: number;
  /** True when `nextBody` ran dry and the run was cut short. */
  ranDry: boolean;
}

/**
 * Drives the app with autocannon (keep-alive connections, one request in flight on each). Each
 * request gets its own body from `nextBody`. Latencies are kept from autocannon's `response`
 * events (hrtime, sub-millisecond) rather than its histogram, which counts whole milliseconds.
 */
export function runLoad(options: LoadOptions): Promise<LoadResult> {
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let ranDry = false;
  let lastBody = '{}';
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: `http://127.0.0.1:${options.port}`,
        connections: options.connections,
        pipelining: 1,
        ...(options.amount === undefined
          ? { duration: options.durationSeconds ?? 5 }
          : { amount: options.amount }),
        timeout: 30,
        headers: { 'content-type': 'application/json', ...options.headers },
        requests: [
          {
            method: 'POST',
            path: options.path,
            setupRequest: (req) => {
              const body = options.nextBody();
              if (body === undefined) {
                // Nothing left: repeat the last body (the app answers it with an error status,
                // left out of the figures) and end the run.
                if (!ranDry) setImmediate(() => instance.stop());
                ranDry = true;
              } else {
                lastBody = JSON.stringify(body);
              }
              return { ...req, body: lastBody };
            },
          },
        ],
      },
      (error: unknown, result: autocannon.Result) => {
        if (error) {
          reject(
            error instanceof Error ? error : new Error(`autocannon: ${JSON.stringify(error)}`),
          );
          return;
        }
        const ok = statuses[String(options.expect)] ?? 0;
        resolve({
          rps: ok / result.duration,
          p50: percentile(latencies, 50),
          p99: percentile(latencies, 99),
          ok,
          statuses,
          errors: result.errors + result.timeouts,
          seconds: result.duration,
          ranDry,
        });
      },
    );
    instance.on('response', (_client, statusCode: number, _bytes, responseTime: number) => {
      statuses[String(statusCode)] = (statuses[String(statusCode)] ?? 0) + 1;
      if (statusCode === options.expect) latencies.push(responseTime);
    });
  });
}
