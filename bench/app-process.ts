/**
 * The app under test, in its own process (forked by the bench): the real example app from
 * `createExampleApp`, listening on 127.0.0.1, with a capturing delivery provider and a query
 * counter on the pg client. It answers the bench's commands over IPC (see protocol.ts).
 */
import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AddressInfo } from 'node:net';
import { createExampleApp } from '../example/bootstrap.js';
import { OtpService } from '../src/otp/otp.service.js';
import { CapturingProvider } from './capturing-provider.js';
import type { CommandName, Commands, Reply, Request } from './protocol.js';
import { QueryCounter } from './query-counter.js';

const counter = new QueryCounter();
counter.install();
const provider = new CapturingProvider();
let app: INestApplication | undefined;
/** HTTP requests the app has received and not yet answered (a load run's tail outlives it). */
let inFlight = 0;

// RSS sampled every 25 ms: the peak of a phase is the largest sample since the phase began.
let phasePeak = process.memoryUsage.rss();
setInterval(() => {
  phasePeak = Math.max(phasePeak, process.memoryUsage.rss());
}, 25).unref();

function service(): OtpService {
  if (!app) throw new Error('app not started');
  return app.get(OtpService);
}

type Handlers = {
  [K in CommandName]: (args: Commands[K]['args']) => Promise<Commands[K]['result']>;
};

const handlers: Handlers = {
  async start({ databaseUrl, otp }) {
    app = await createExampleApp(
      { databaseUrl, otp: { ...otp, providers: [provider] } },
      {
        logger: false,
      },
    );
    await app.listen(0, '127.0.0.1');
    const server = app.getHttpServer() as Server;
    server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
      inFlight += 1;
      res.once('close', () => (inFlight -= 1));
    });
    const address = server.address() as AddressInfo;
    return { port: address.port, rss: process.memoryUsage.rss() };
  },

  async mint({ prefix, count, concurrency }) {
    const otp = service();
    let next = 0;
    let sent = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        const i = next++;
        await otp.send({ destination: `${prefix}-${i}@bench.example` });
        sent += 1;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return Promise.resolve(sent);
  },

  takeCodes() {
    return Promise.resolve(provider.take());
  },

  async settle() {
    let idleSince = Date.now();
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (inFlight > 0) idleSince = Date.now();
      else if (Date.now() - idleSince >= 200) break;
      await sleep(20);
    }
    return null;
  },

  countQueries() {
    counter.start();
    return Promise.resolve(null);
  },

  queries() {
    return Promise.resolve(counter.stop());
  },

  memoryPhase() {
    phasePeak = process.memoryUsage.rss();
    return Promise.resolve(null);
  },

  memory() {
    const rss = process.memoryUsage.rss();
    phasePeak = Math.max(phasePeak, rss);
    // getrusage's ru_maxrss, in KiB on Linux.
    return Promise.resolve({ phasePeak, rss, maxRss: process.resourceUsage().maxRSS * 1024 });
  },

  purge() {
    return service().purge();
  },

  async stop() {
    await app?.close();
    app = undefined;
    return null;
  },
};

async function handle(request: Request): Promise<void> {
  let reply: Reply;
  try {
    const handler = handlers[request.command] as (args: unknown) => Promise<unknown>;
    reply = { id: request.id, ok: true, result: await handler(request.args) };
  } catch (error) {
    reply = {
      id: request.id,
      ok: false,
      error: error instanceof Error ? (error.stack ?? error.message) : String(error),
    };
  }
  process.send?.(reply);
  if (request.command === 'stop') process.disconnect();
}

process.on('message', (message) => void handle(message as Request));
// The bench is gone (crash, Ctrl-C): do not outlive it.
process.on('disconnect', () => {
  void (app ? app.close() : Promise.resolve()).finally(() => process.exit(0));
});
