import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { freePort } from './free-port.js';

/** A webhook receiver on 127.0.0.1 that keeps every message the app posts. */
export interface WebhookSink {
  url: string;
  messages: { destination: string; code: string; requestId: string }[];
  /** Milliseconds to wait before answering each delivery. */
  delayMs: number;
  lastCode(destination: string): string;
  close(): Promise<void>;
}

export async function startWebhookSink(): Promise<WebhookSink> {
  const sink = { messages: [], delayMs: 0 } as unknown as WebhookSink;
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      sink.messages.push(JSON.parse(body) as WebhookSink['messages'][number]);
      setTimeout(() => res.writeHead(204).end(), sink.delayMs);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  sink.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/otp`;
  sink.lastCode = (destination) => {
    const found = [...sink.messages].reverse().find((m) => m.destination === destination);
    if (!found) throw new Error(`no message for ${destination}`);
    return found.code;
  };
  sink.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return sink;
}

/** The example app (`node build/example/main.js`, what `npm start` runs) in a child process. */
export interface ChildApp {
  url: string;
  process: ChildProcess;
  output: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startChildApp(
  env: Record<string, string>,
  nodeArgs: string[] = [],
): Promise<ChildApp> {
  const port = await freePort();
  const child = spawn(process.execPath, [...nodeArgs, 'build/example/main.js'], {
    env: {
      ...process.env,
      PORT: String(port),
      OTP_HASHER: 'hmac',
      OTP_SECRET: 'x'.repeat(40),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`example app exited: ${output}`);
    const up = await fetch(`${url}/otp/requests/x`).then(
      () => true,
      () => false,
    );
    if (up) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    process: child,
    output: () => output,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null) return child.exitCode;
      child.kill(signal);
      const [code] = (await once(child, 'exit')) as [number | null];
      return code;
    },
  };
}

/** POSTs JSON and returns status, headers and parsed body. */
export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return {
    status: res.status,
    headers: res.headers,
    body: (await res.json()) as Record<string, unknown>,
  };
}
