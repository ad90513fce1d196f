import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Gauge, Registry } from 'prom-client';
import { OtpMetrics } from '../src/otp/metrics/index.js';
import { startTestApp, uniqueEmail, uniquePhone, type TestApp } from './support/test-app.js';

/**
 * `GET /metrics` of the example app (prom-client, `OtpMetricsModule`): after sends and verifies
 * through the OTP routes, the counters carry the right labels and values and the histograms have
 * counts. The example app keeps a registry per app, so the numbers are this suite's alone.
 */

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (no escaped quotes in our label values). */
function parse(text: string): Sample[] {
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!match) throw new Error(`not a sample line: ${line}`);
      const labels = Object.fromEntries(
        [...(match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"/g)].map((m) => [
          m[1] as string,
          m[2] as string,
        ]),
      );
      return { name: match[1] as string, labels, value: Number(match[3]) };
    });
}

/** The samples of one metric, as `labels → value`, without the histograms' `le` buckets. */
function series(samples: Sample[], name: string): Record<string, number> {
  return Object.fromEntries(
    samples
      .filter((s) => s.name === name)
      .map((s) => [
        Object.entries(s.labels)
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([k, v]) => `${k}=${v}`)
          .join(','),
        s.value,
      ]),
  );
}

// Express only: the example's own metrics route; the counts are the service's.
describe('GET /metrics', () => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startTestApp({ maxAttempts: 2 });
  });
  afterAll(() => app.close());

  const send = (body: Record<string, unknown>): Promise<number> =>
    Promise.resolve(app.http.post('/otp/send').send(body)).then((r) => r.status);
  const verify = (destination: string, code: string): Promise<number> =>
    Promise.resolve(app.http.post('/otp/verify').send({ destination, code })).then((r) => r.status);
  const wrong = (code: string): string => String((Number(code) + 1) % 1_000_000).padStart(6, '0');

  it('counts sends by channel and outcome, verifies by outcome, lockouts and delivery failures, with latency histograms', async () => {
    // Two email sends that verify, one after a wrong guess.
    const a = uniqueEmail();
    const b = uniqueEmail();
    expect(await send({ destination: a })).toBe(202);
    expect(await send({ destination: b })).toBe(202);
    expect(await verify(a, wrong(app.provider.lastCode(a)))).toBe(401);
    expect(await verify(a, app.provider.lastCode(a))).toBe(200);
    expect(await verify(b, app.provider.lastCode(b))).toBe(200);
    // A resend within the cooldown: limited.
    const d = uniqueEmail();
    expect(await send({ destination: d })).toBe(202);
    expect(await send({ destination: d })).toBe(429);
    // A code guessed wrong to the end: a lockout, then a send refused by it.
    const c = uniqueEmail();
    expect(await send({ destination: c })).toBe(202);
    const code = app.provider.lastCode(c);
    expect([await verify(c, wrong(code)), await verify(c, wrong(code))]).toEqual([401, 429]);
    expect(await send({ destination: c })).toBe(429);
    // No active code at all.
    expect(await verify(uniqueEmail(), '123456')).toBe(410);
    // Invalid input.
    expect(await send({ destination: 'not an address' })).toBe(400);
    // SMS fails, voice carries it.
    app.provider.failing.add('sms');
    try {
      expect(await send({ destination: uniquePhone() })).toBe(202);
    } finally {
      app.provider.failing.delete('sms');
    }

    const res = await app.http.get('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const samples = parse(res.text);

    expect(series(samples, 'otp_sends_total')).toEqual({
      'channel=email,outcome=sent': 4,
      'channel=email,outcome=limited': 1,
      'channel=email,outcome=locked': 1,
      'channel=none,outcome=rejected': 1,
      'channel=voice,outcome=sent': 1,
    });
    expect(series(samples, 'otp_verifies_total')).toEqual({
      'outcome=invalid': 2,
      'outcome=verified': 2,
      'outcome=exhausted': 1,
      'outcome=expired': 1,
    });
    expect(series(samples, 'otp_lockouts_total')).toEqual({ '': 1 });
    expect(series(samples, 'otp_delivery_failures_total')).toEqual({
      'channel=sms,provider=capture': 1,
    });

    // Histograms: one observation per answer, by outcome.
    expect(series(samples, 'otp_send_duration_seconds_count')).toEqual({
      'outcome=sent': 5,
      'outcome=limited': 1,
      'outcome=locked': 1,
      'outcome=rejected': 1,
    });
    expect(series(samples, 'otp_verify_duration_seconds_count')).toEqual({
      'outcome=invalid': 2,
      'outcome=verified': 2,
      'outcome=exhausted': 1,
      'outcome=expired': 1,
    });
    expect(series(samples, 'otp_delivery_duration_seconds_count')).toEqual({
      'channel=email,outcome=sent,provider=capture': 4,
      'channel=sms,outcome=failed,provider=capture': 1,
      'channel=voice,outcome=sent,provider=capture': 1,
    });
    const sendSum = series(samples, 'otp_send_duration_seconds_sum')['outcome=sent'] ?? 0;
    expect(sendSum).toBeGreaterThan(0);
    expect(sendSum).toBeLessThan(60);
    // Buckets are cumulative: +Inf holds every observation.
    const inf = samples.find(
      (s) =>
        s.name === 'otp_verify_duration_seconds_bucket' &&
        s.labels.outcome === 'verified' &&
        s.labels.le === '+Inf',
    );
    expect(inf?.value).toBe(2);
  });
});

describe('OtpMetrics', () => {
  it('reuses the metrics a registry already has, instead of registering them twice', async () => {
    const registry = new Registry();
    const first = new OtpMetrics({ registry });
    const second = new OtpMetrics({ registry });
    expect(second.sends).toBe(first.sends);
    second.sends.inc({ channel: 'sms', outcome: 'sent' });
    expect((await first.sends.get()).values).toEqual([
      { labels: { channel: 'sms', outcome: 'sent' }, value: 1 },
    ]);
  });

  it('refuses a name the registry has for a metric of another type', () => {
    const registry = new Registry();
    new Gauge({ name: 'x_sends_total', help: 'not ours', registers: [registry] });
    expect(() => new OtpMetrics({ registry, prefix: 'x_' })).toThrow(/x_sends_total.*another type/);
    expect(() => new OtpMetrics({ registry, prefix: 'y_' })).not.toThrow();
  });
});
