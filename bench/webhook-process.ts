/**
 * The local webhook every peer delivers its codes to (nest-otp's `WebhookOtpProvider`, Better
 * Auth's `sendVerificationOTP`): one JSON POST a code, answered 204, after `delayMs` (0, or 300 ms
 * for a slow provider). It keeps each code until the bench takes it, so verifies use real codes,
 * and counts the deliveries it holds open (in flight) at once.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Handlers, RssSampler, type ProcessStats, serveCommands } from './child.js';

export interface WebhookCommands {
  start: { args: { delayMs: number }; result: { port: number } };
  setDelay: { args: { delayMs: number }; result: null };
  /** Codes received since the last call, oldest first. */
  takeCodes: { args: Record<string, never>; result: [destination: string, code: string][] };
  /** Deliveries received, and the most held open at once since the last call. */
  deliveries: { args: Record<string, never>; result: { received: number; maxInFlight: number } };
  /** Deliveries held open right now. */
  inFlight: { args: Record<string, never>; result: number };
  stats: { args: Record<string, never>; result: ProcessStats };
  stop: { args: Record<string, never>; result: null };
}

let server: http.Server | undefined;
let delayMs = 0;
let fresh: [string, string][] = [];
let received = 0;
let inFlight = 0;
let maxInFlight = 0;
const sampler = new RssSampler();

function onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
  inFlight += 1;
  maxInFlight = Math.max(maxInFlight, inFlight);
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    received += 1;
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        destination?: unknown;
        code?: unknown;
      };
      if (typeof body.destination === 'string' && typeof body.code === 'string') {
        fresh.push([body.destination, body.code]);
      }
    } catch {
      // Not ours to judge: the bench only needs the codes it can read.
    }
    const answer = (): void => {
      inFlight -= 1;
      res.writeHead(204).end();
    };
    if (delayMs > 0) setTimeout(answer, delayMs);
    else answer();
  });
}

const handlers: Handlers<WebhookCommands> = {
  async start(args) {
    delayMs = args.delayMs;
    server = http.createServer({ keepAliveTimeout: 60_000 }, onRequest);
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    return { port: (server.address() as AddressInfo).port };
  },
  setDelay(args) {
    delayMs = args.delayMs;
    return Promise.resolve(null);
  },
  takeCodes() {
    const taken = fresh;
    fresh = [];
    return Promise.resolve(taken);
  },
  deliveries() {
    const result = { received, maxInFlight };
    maxInFlight = inFlight;
    return Promise.resolve(result);
  },
  inFlight() {
    return Promise.resolve(inFlight);
  },
  stats() {
    return Promise.resolve(sampler.stats());
  },
  async stop() {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    return null;
  },
};

serveCommands(handlers, () => handlers.stop({}));
