/**
 * The app under test, in its own process (forked by the bench): the real example app from
 * `createExampleApp` (on Express; on Fastify for section 5's second app), listening on 127.0.0.1,
 * with a capturing delivery provider (or nest-otp's own webhook provider, posting to the bench's
 * webhook sink) and a query counter on the pg client. It answers the bench's commands over IPC
 * (see protocol.ts).
 */
import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { writeFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Session } from 'node:inspector/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AddressInfo } from 'node:net';
import { createExampleApp } from '../example/bootstrap.js';
import type { CodeHasher } from '../src/otp/crypto/code-hasher.js';
import type { OtpMessage, OtpProvider } from '../src/otp/delivery/otp-provider.interface.js';
import { WebhookOtpProvider } from '../src/otp/delivery/webhook.provider.js';
import type { OtpChannel } from '../src/otp/otp.types.js';
import { OTP_HASHER } from '../src/otp/otp.constants.js';
import { OtpService } from '../src/otp/otp.service.js';
import { OtpConnection } from '../src/otp/persistence/otp-connection.js';
import { CapturingProvider } from './capturing-provider.js';
import { cpuMicros, type Handlers, RssSampler, serveCommands } from './child.js';
import type { Commands, PoolSample } from './protocol.js';
import { QueryCounter } from './query-counter.js';

/** nest-otp's webhook provider, counting the deliveries in flight (for the pool samples). */
class CountingWebhookProvider implements OtpProvider {
  readonly name = 'webhook';
  inFlight = 0;
  private readonly inner: WebhookOtpProvider;

  constructor(url: string) {
    this.inner = new WebhookOtpProvider(url);
  }

  supports(channel: OtpChannel): boolean {
    return this.inner.supports(channel);
  }

  close(): void {
    this.inner.close?.();
  }

  async deliver(message: OtpMessage, signal: AbortSignal): Promise<void> {
    this.inFlight += 1;
    try {
      await this.inner.deliver(message, signal);
    } finally {
      this.inFlight -= 1;
    }
  }
}

const counter = new QueryCounter();
counter.install();
const provider = new CapturingProvider();
const sampler = new RssSampler();
let webhook: CountingWebhookProvider | undefined;
let profiler: Session | undefined;
let app: INestApplication | undefined;
/** HTTP requests the app has received and not yet answered (a load run's tail outlives it). */
let inFlight = 0;

function service(): OtpService {
  if (!app) throw new Error('app not started');
  return app.get(OtpService);
}

/** The module's own pg pool: what a request holds while it talks to Postgres. */
interface PoolLike {
  totalCount: number;
  idleCount: number;
  waitingCount: number;
  options: { max?: number };
}

function otpPool(): PoolLike {
  if (!app) throw new Error('app not started');
  return app.get(OtpConnection).pool;
}

let poolTimer: NodeJS.Timeout | undefined;
const emptySample = (max: number): PoolSample & { sumInUse: number; sumDeliveries: number } => ({
  samples: 0,
  max,
  maxInUse: 0,
  meanInUse: 0,
  maxWaiting: 0,
  maxDeliveries: 0,
  meanDeliveries: 0,
  sumInUse: 0,
  sumDeliveries: 0,
});
let poolSample = emptySample(0);

const handlers: Handlers<Commands> = {
  async start({ databaseUrl, otp, webhookUrl, platform }) {
    webhook = webhookUrl ? new CountingWebhookProvider(webhookUrl) : undefined;
    const providers = webhook ? [webhook] : [provider];
    app = await createExampleApp(
      { databaseUrl, otp: { ...otp, providers } },
      { logger: false, platform },
    );
    await app.listen(0, '127.0.0.1');
    // Fastify's adapter also answers from a node:http server: the same counting works on both.
    const server = app.getHttpServer() as Server;
    server.keepAliveTimeout = 60_000;
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
    sampler.reset();
    return Promise.resolve(null);
  },

  memory() {
    const { rss, peakRss } = sampler.stats();
    // getrusage's ru_maxrss, in KiB on Linux.
    return Promise.resolve({
      phasePeak: peakRss,
      rss,
      maxRss: process.resourceUsage().maxRSS * 1024,
    });
  },

  stats() {
    return Promise.resolve(sampler.stats());
  },

  gc() {
    (globalThis as { gc?: () => void }).gc?.();
    return Promise.resolve({
      heapUsed: process.memoryUsage().heapUsed,
      rss: process.memoryUsage.rss(),
    });
  },

  async hashCost({ count }) {
    if (!app) throw new Error('app not started');
    const hasher = app.get<symbol, CodeHasher>(OTP_HASHER);
    const binding = '2f1d0f9e-7a3c-4f51-9a6e-0c4b7e2d9a11';
    const stored = await hasher.hash('123456', binding);
    let started = cpuMicros();
    for (let i = 0; i < count; i++) await hasher.hash('123456', binding);
    const hashMicros = (cpuMicros() - started) / count;
    started = cpuMicros();
    for (let i = 0; i < count; i++) await hasher.matches('654321', binding, stored);
    return { hashMicros, matchMicros: (cpuMicros() - started) / count };
  },

  samplePool({ on }) {
    if (on) {
      const pool = otpPool();
      poolSample = emptySample(pool.options.max ?? 0);
      clearInterval(poolTimer);
      poolTimer = setInterval(() => {
        const inUse = pool.totalCount - pool.idleCount;
        poolSample.samples += 1;
        poolSample.sumInUse += inUse;
        poolSample.maxInUse = Math.max(poolSample.maxInUse, inUse);
        poolSample.maxWaiting = Math.max(poolSample.maxWaiting, pool.waitingCount);
        const deliveries = webhook?.inFlight ?? 0;
        poolSample.sumDeliveries += deliveries;
        poolSample.maxDeliveries = Math.max(poolSample.maxDeliveries, deliveries);
      }, 5);
      return Promise.resolve(null);
    }
    clearInterval(poolTimer);
    const { sumInUse, sumDeliveries, ...sample } = poolSample;
    const n = Math.max(sample.samples, 1);
    return Promise.resolve({
      ...sample,
      meanInUse: sumInUse / n,
      meanDeliveries: sumDeliveries / n,
    });
  },

  async profile({ path }) {
    if (path === undefined) {
      profiler = new Session();
      profiler.connect();
      await profiler.post('Profiler.enable');
      // --cpu-prof's default interval: 1 ms.
      await profiler.post('Profiler.setSamplingInterval', { interval: 1000 });
      await profiler.post('Profiler.start');
      return null;
    }
    if (!profiler) throw new Error('no profile running');
    const { profile } = await profiler.post('Profiler.stop');
    profiler.disconnect();
    profiler = undefined;
    writeFileSync(path, JSON.stringify(profile));
    return null;
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

serveCommands(handlers, () => (app ? app.close() : Promise.resolve()));
