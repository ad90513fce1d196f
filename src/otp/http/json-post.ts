import http from 'node:http';
import https from 'node:https';

/**
 * POSTs bodies to one http(s) URL over kept-alive connections (`node:http`'s Agent), resolving with
 * the answer's status once its body is drained. Used by the webhook provider instead of `fetch`:
 * undici's fetch (WHATWG Request, Headers, streams, AbortSignal plumbing) cost about a fifth of a
 * send's CPU in the app, several times what this does (bench/README.md). Redirects are not
 * followed: a 3xx is an answer like any other non-2xx.
 */
export class JsonPoster {
  private readonly target: URL;
  private readonly client: typeof http | typeof https;
  private readonly agent: http.Agent;

  constructor(url: string) {
    this.target = new URL(url);
    this.client = this.target.protocol === 'https:' ? https : http;
    this.agent = new this.client.Agent({ keepAlive: true });
  }

  /** Resolves with the status; rejects on a network error or when `signal` aborts. */
  post(body: Buffer, headers: Record<string, string>, signal: AbortSignal): Promise<number> {
    return new Promise((resolve, reject) => {
      const request = this.client.request(
        this.target,
        {
          method: 'POST',
          agent: this.agent,
          signal,
          headers: { ...headers, 'content-length': String(body.length) },
        },
        (response) => {
          // Drained so the connection is reused; its content is not ours to log.
          response.resume();
          response.once('end', () => resolve(response.statusCode ?? 0));
          response.once('error', reject);
        },
      );
      request.once('error', reject);
      request.end(body);
    });
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.agent.destroy();
  }
}
