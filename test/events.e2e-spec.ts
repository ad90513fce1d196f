import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { type INestApplication, Injectable } from '@nestjs/common';
import { EventEmitter2, EventEmitterModule, OnEvent } from '@nestjs/event-emitter';
import { TypeOrmModule } from '@nestjs/typeorm';
import request from 'supertest';
import type TestAgent from 'supertest/lib/agent.js';
import { OTP_EVENTS, type OtpEventName } from '../src/otp/events/otp-events.js';
import type { OtpMessage, OtpProvider } from '../src/index.js';
import { OtpModule, type OtpModuleOptionsInput } from '../src/index.js';
import { InMemoryOtpProvider } from '../src/testing/index.js';
import { bootApp, LogCapture } from './support/coexistence-host.js';
import { TEST_SECRET, testDatabaseUrl, uniqueEmail, uniquePhone } from './support/test-app.js';

/**
 * The module's events on the host's @nestjs/event-emitter bus, driven through the OTP routes: each
 * fires once with its payload (request id, purpose, channel, masked destination, time), none
 * carries a code or a token, and a host without the event emitter works the same.
 */

/** A provider that refuses everything, to see `otp.delivery_failed`. */
class DownProvider implements OtpProvider {
  readonly name = 'down';
  supports(): boolean {
    return true;
  }
  deliver(_message: OtpMessage): Promise<void> {
    return Promise.reject(new Error('provider down'));
  }
}

interface Seen {
  event: string;
  payload: Record<string, unknown>;
}

/** A host's listener, as an audit log would be written: `@OnEvent` on the public names. */
@Injectable()
class AuditListener {
  readonly seen: Seen[] = [];

  @OnEvent(OTP_EVENTS.sent)
  onSent(payload: Record<string, unknown>): void {
    this.keep(OTP_EVENTS.sent, payload);
  }
  @OnEvent(OTP_EVENTS.verified)
  onVerified(payload: Record<string, unknown>): void {
    this.keep(OTP_EVENTS.verified, payload);
  }
  @OnEvent(OTP_EVENTS.failed)
  onFailed(payload: Record<string, unknown>): void {
    this.keep(OTP_EVENTS.failed, payload);
  }
  @OnEvent(OTP_EVENTS.exhausted)
  onExhausted(payload: Record<string, unknown>): void {
    this.keep(OTP_EVENTS.exhausted, payload);
  }
  @OnEvent(OTP_EVENTS.locked)
  onLocked(payload: Record<string, unknown>): void {
    this.keep(OTP_EVENTS.locked, payload);
  }
  @OnEvent(OTP_EVENTS.deliveryFailed)
  onDeliveryFailed(payload: Record<string, unknown>): void {
    this.keep(OTP_EVENTS.deliveryFailed, payload);
  }

  private keep(event: string, payload: Record<string, unknown>): void {
    this.seen.push({ event, payload });
  }
}

interface Host {
  app: INestApplication;
  http: TestAgent;
  provider: InMemoryOtpProvider;
  listener?: AuditListener;
  /** Everything emitted on the bus, in order, whoever listens. */
  all: Seen[];
  logs: LogCapture;
}

async function startHost(
  options: { events: boolean; otp?: OtpModuleOptionsInput; down?: boolean } = { events: true },
): Promise<Host> {
  const provider = new InMemoryOtpProvider();
  const logs = new LogCapture();
  const app = await bootApp(
    {
      imports: [
        TypeOrmModule.forRoot({ type: 'postgres', url: testDatabaseUrl(), retryAttempts: 0 }),
        ...(options.events ? [EventEmitterModule.forRoot()] : []),
        OtpModule.forRoot({
          hasher: 'hmac',
          hmacSecret: TEST_SECRET,
          throttleLimit: 10_000,
          maxAttempts: 3,
          providers: options.down ? [new DownProvider(), provider] : [provider],
          ...options.otp,
        }),
      ],
      providers: options.events ? [AuditListener] : [],
    },
    { logger: logs },
  );
  const all: Seen[] = [];
  if (options.events) {
    app.get(EventEmitter2).onAny((event: string | string[], payload: Record<string, unknown>) => {
      all.push({ event: String(event), payload });
    });
  }
  return {
    app,
    http: request(app.getHttpServer()),
    provider,
    listener: options.events ? app.get(AuditListener) : undefined,
    all,
    logs,
  };
}

const ISO = /^\d{4}-\d{2}-\d{2}T/;

/** Every payload field, checked: the shape the README documents, nothing else. */
function expectPayload(
  seen: Seen | undefined,
  event: OtpEventName,
  fields: Record<string, unknown>,
): void {
  expect(seen?.event).toBe(event);
  const payload = seen?.payload ?? {};
  expect(payload.at).toBeInstanceOf(Date);
  expect((payload.at as Date).toISOString()).toMatch(ISO);
  expect(Math.abs(Date.now() - (payload.at as Date).getTime())).toBeLessThan(30_000);
  expect({ ...payload, at: undefined }).toEqual({ ...fields, at: undefined });
}

// Express only: the service emits the events, the same whatever platform serves the routes.
describe('OTP events (@nestjs/event-emitter)', () => {
  let host: Host;
  const codes: string[] = [];
  const tokens: string[] = [];

  beforeAll(async () => {
    host = await startHost({ events: true });
  });
  afterEach(() => {
    for (const m of host.provider.messages) codes.push(m.code);
  });
  afterAll(async () => {
    // No payload carries a code or a token: checked over every event of the suite.
    const text = JSON.stringify(host.all);
    expect(codes.length).toBeGreaterThan(0);
    expect(tokens.length).toBeGreaterThan(0);
    for (const secret of [...codes, ...tokens]) expect(text).not.toContain(secret);
    await host.app.close();
  });

  const since = (n: number): Seen[] => host.all.slice(n);

  it('POST /otp/send emits otp.sent; POST /otp/verify emits otp.verified', async () => {
    const destination = uniqueEmail();
    const mark = host.all.length;
    const sent = await host.http.post('/otp/send').send({ destination, purpose: 'signup' });
    expect(sent.status).toBe(202);
    const base = {
      requestId: sent.body.requestId,
      purpose: 'signup',
      channel: 'email',
      destination: sent.body.destination,
    };
    expect(base.destination).toMatch(/^u•••@example\.com$/);
    expect(since(mark)).toHaveLength(1);
    expectPayload(since(mark)[0], 'otp.sent', base);

    const code = host.provider.lastCode(destination);
    const verified = await host.http
      .post('/otp/verify')
      .send({ destination, purpose: 'signup', code });
    expect(verified.status).toBe(200);
    tokens.push(verified.body.verificationToken as string);
    expect(since(mark)).toHaveLength(2);
    expectPayload(since(mark)[1], 'otp.verified', base);
    // The host's own @OnEvent listener got the same.
    expect(host.listener?.seen.slice(-2).map((s) => s.event)).toEqual(['otp.sent', 'otp.verified']);
  });

  it('POST /otp/verify: wrong guesses emit otp.failed, the last one otp.exhausted; the next POST /otp/send is refused with otp.locked', async () => {
    const destination = uniqueEmail();
    const sent = await host.http.post('/otp/send').send({ destination });
    expect(sent.status).toBe(202);
    const code = host.provider.lastCode(destination);
    const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
    const base = {
      requestId: sent.body.requestId,
      purpose: 'login',
      channel: 'email',
      destination: sent.body.destination,
    };

    const mark = host.all.length;
    const answers: number[] = [];
    for (let i = 0; i < 3; i++) {
      answers.push((await host.http.post('/otp/verify').send({ destination, code: wrong })).status);
    }
    expect(answers).toEqual([401, 401, 429]);
    const [first, second, last] = since(mark);
    expectPayload(first, 'otp.failed', { ...base, attemptsRemaining: 2 });
    expectPayload(second, 'otp.failed', { ...base, attemptsRemaining: 1 });
    expectPayload(last, 'otp.exhausted', {
      ...base,
      retryAfterSeconds: expect.any(Number),
    });

    // A guess at a code with no attempt left is no new event.
    const after = host.all.length;
    expect((await host.http.post('/otp/verify').send({ destination, code })).status).toBe(429);
    expect(since(after)).toEqual([]);

    const refused = await host.http.post('/otp/send').send({ destination });
    expect({ status: refused.status, code: refused.body.code }).toEqual({
      status: 429,
      code: 'OTP_LOCKED',
    });
    expect(since(after)).toHaveLength(1);
    expectPayload(since(after)[0], 'otp.locked', {
      ...base,
      requestId: null,
      retryAfterSeconds: refused.body.retryAfter,
    });
  });

  it('POST /otp/send to a phone: the channel in the payloads is the one the code went out on', async () => {
    const destination = uniquePhone();
    host.provider.failing.add('sms');
    try {
      const mark = host.all.length;
      const sent = await host.http.post('/otp/send').send({ destination });
      expect(sent.status).toBe(202);
      expect(sent.body.channel).toBe('voice');
      const base = {
        requestId: sent.body.requestId,
        purpose: 'login',
        destination: sent.body.destination,
      };
      expect(base.destination).toMatch(/^\+1•+\d\d$/);
      expect(since(mark)).toHaveLength(2);
      expectPayload(since(mark)[0], 'otp.delivery_failed', {
        ...base,
        channel: 'sms',
        provider: 'in-memory',
      });
      expectPayload(since(mark)[1], 'otp.sent', { ...base, channel: 'voice' });

      const code = host.provider.lastCode(destination);
      const verified = await host.http.post('/otp/verify').send({ destination, code });
      expect(verified.status).toBe(200);
      tokens.push(verified.body.verificationToken as string);
      expectPayload(since(mark)[2], 'otp.verified', { ...base, channel: 'voice' });
    } finally {
      host.provider.failing.delete('sms');
    }
  });

  it('POST /otp/send: a listener that throws is logged and changes no answer', async () => {
    // A plain EventEmitter2 listener: its throw reaches `emit` (@OnEvent ones are caught by Nest).
    const emitter = host.app.get(EventEmitter2);
    const failing = (): void => {
      throw new Error('audit log down');
    };
    emitter.on(OTP_EVENTS.sent, failing);
    try {
      const destination = uniqueEmail();
      const sent = await host.http.post('/otp/send').send({ destination });
      expect(sent.status).toBe(202);
      expect(host.listener?.seen.at(-1)?.payload.requestId).toBe(sent.body.requestId);
      expect(host.logs.warnings.some((w) => w.includes('audit log down'))).toBe(true);
    } finally {
      emitter.off(OTP_EVENTS.sent, failing);
    }
  });
});

describe('OTP events: delivery that fails everywhere', () => {
  let host: Host;
  beforeAll(async () => {
    host = await startHost({ events: true, down: true });
    host.provider.failing.add('email');
  });
  afterAll(() => host.app.close());

  it('POST /otp/send: otp.delivery_failed for each provider tried, no otp.sent, and a 503', async () => {
    const destination = uniqueEmail();
    const sent = await host.http.post('/otp/send').send({ destination });
    expect({ status: sent.status, code: sent.body.code }).toEqual({
      status: 503,
      code: 'OTP_DELIVERY_FAILED',
    });
    expect(host.all.map((s) => [s.event, s.payload.provider])).toEqual([
      ['otp.delivery_failed', 'down'],
      ['otp.delivery_failed', 'in-memory'],
    ]);
    const [first] = host.all;
    expect(first?.payload).toEqual({
      requestId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      purpose: 'login',
      channel: 'email',
      destination: expect.stringMatching(/^u•••@example\.com$/),
      provider: 'down',
      at: expect.any(Date),
    });
    expect(host.all[1]?.payload.requestId).toBe(first?.payload.requestId);
  });
});

describe('OTP events: a host without the event emitter', () => {
  let host: Host;
  beforeAll(async () => {
    host = await startHost({ events: false });
  });
  afterAll(() => host.app.close());

  it('POST /otp/send, POST /otp/verify work, and nothing is emitted or logged about it', async () => {
    expect(() => host.app.get(EventEmitter2, { strict: false })).toThrow();
    const destination = uniqueEmail();
    expect((await host.http.post('/otp/send').send({ destination })).status).toBe(202);
    const code = host.provider.lastCode(destination);
    const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
    expect((await host.http.post('/otp/verify').send({ destination, code: wrong })).status).toBe(
      401,
    );
    expect((await host.http.post('/otp/verify').send({ destination, code })).status).toBe(200);
    expect(host.logs.warnings).toEqual([]);
  });
});
