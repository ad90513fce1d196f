import http from 'node:http';

/** One keep-alive connection: sequential requests, timed from write to the last byte. */
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

export interface Timed {
  status: number;
  body: Record<string, unknown>;
  /** Milliseconds from sending the request to the end of the response. */
  ms: number;
}

/** A request to the app on 127.0.0.1 (the only host the bench talks to). */
export function request(
  port: number,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Timed> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent,
        headers: {
          ...(payload === undefined
            ? {}
            : {
                'content-type': 'application/json',
                'content-length': Buffer.byteLength(payload),
              }),
          ...headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const ms = Number(process.hrtime.bigint() - start) / 1e6;
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: Record<string, unknown> = {};
          try {
            parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
          } catch {
            parsed = { raw: text };
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, ms });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

export const post = (
  port: number,
  path: string,
  body: unknown,
  headers?: Record<string, string>,
): Promise<Timed> => request(port, 'POST', path, body, headers);

/** Fails loudly when the app answers something the bench did not expect. */
export function expectStatus(response: Timed, status: number, what: string): Timed {
  if (response.status !== status) {
    throw new Error(
      `${what}: expected ${status}, got ${response.status} ${JSON.stringify(response.body)}`,
    );
  }
  return response;
}

/** Frees the keep-alive socket so the process can exit. */
export function closeHttp(): void {
  agent.destroy();
}
