import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { query, testDatabaseUrl, uniqueEmail } from './support/test-app.js';
import {
  postJson,
  startChildApp,
  startWebhookSink,
  type ChildApp,
  type WebhookSink,
} from './support/child-app.js';

// Express only: clock skew and SIGTERM are the service's and the process's, not the platform's.
describe('two instances with skewed process clocks', () => {
  let sink: WebhookSink;
  let onTime: ChildApp;
  let ahead: ChildApp;

  beforeAll(async () => {
    sink = await startWebhookSink();
    const env = {
      DATABASE_URL: testDatabaseUrl(),
      OTP_PROVIDER: 'webhook',
      OTP_WEBHOOK_URL: sink.url,
    };
    [onTime, ahead] = await Promise.all([
      startChildApp(env),
      // Ten minutes ahead: past the code's lifetime and every resend cooldown.
      startChildApp({ ...env, CLOCK_SKEW_MS: String(10 * 60_000) }, [
        '--import',
        './test/support/skew-clock.mjs',
      ]),
    ]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([onTime?.stop(), ahead?.stop()]);
    await sink?.close();
  });

  it('agree on cooldowns, expiry and timestamps, because time is the database clock', async () => {
    const email = uniqueEmail();
    const sent = await postJson(`${onTime.url}/otp/send`, { destination: email });
    expect(sent.status).toBe(202);

    // The skewed instance must still see the cooldown that started a moment ago.
    const resend = await postJson(`${ahead.url}/otp/send`, { destination: email });
    expect(resend.status).toBe(429);
    expect(resend.body.code).toBe('OTP_RESEND_COOLDOWN');
    expect(Number(resend.body.retryAfter)).toBeGreaterThan(25);

    // ...and must not think the code expired.
    const verified = await postJson(`${ahead.url}/otp/verify`, {
      destination: email,
      code: sink.lastCode(email),
    });
    expect(verified.status).toBe(200);

    // Timestamps it answers come from the database: within seconds of the real clock, not 10 min ahead.
    const other = uniqueEmail();
    const fromAhead = await postJson(`${ahead.url}/otp/send`, { destination: other });
    expect(fromAhead.status).toBe(202);
    const lifetime = Date.parse(String(fromAhead.body.expiresAt)) - Date.now();
    expect(lifetime).toBeGreaterThan(290_000);
    expect(lifetime).toBeLessThan(310_000);
    const [row] = await query<{ skew: number }>(
      `SELECT abs(extract(epoch FROM created_at - now()))::float AS skew FROM otp_requests WHERE destination = $1`,
      [other],
    );
    expect(row?.skew).toBeLessThan(30);
  });
});

describe('graceful shutdown (SIGTERM)', () => {
  it('finishes in-flight requests, refuses new ones, closes its connections and exits 0', async () => {
    const sink = await startWebhookSink();
    // node-pg names its connections after PGAPPNAME: how we find this instance's backends.
    const appName = `nest-otp-shutdown-${process.pid}-${Date.now()}`;
    const app = await startChildApp({
      PGAPPNAME: appName,
      DATABASE_URL: testDatabaseUrl(),
      OTP_PROVIDER: 'webhook',
      OTP_WEBHOOK_URL: sink.url,
    });
    try {
      sink.delayMs = 3000; // the delivery is still in flight when SIGTERM arrives
      const email = uniqueEmail();
      const inFlight = postJson(`${app.url}/otp/send`, { destination: email });
      // SIGTERM once the send is in flight (its delivery reached the sink), not after a fixed
      // pause: on a busy machine the request may not even have connected after one.
      for (let waited = 0; !sink.messages.some((m) => m.destination === email); waited += 20) {
        if (waited > 20_000) throw new Error('the send never reached its delivery');
        await new Promise((r) => setTimeout(r, 20));
      }
      const exited = app.stop('SIGTERM');
      await new Promise((r) => setTimeout(r, 200));
      const refused = await fetch(`${app.url}/otp/send`, { method: 'POST' }).then(
        () => 'answered',
        () => 'refused',
      );
      const finished = await inFlight;
      expect(finished.status).toBe(202);
      expect(refused).toBe('refused');
      expect(await exited).toBe(0);
      const [row] = await query<{ delivery_status: string }>(
        'SELECT delivery_status FROM otp_requests WHERE destination = $1',
        [email],
      );
      expect(row?.delivery_status).toBe('sent');
      const [open] = await query<{ n: number }>(
        'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1',
        [appName],
      );
      expect(open?.n).toBe(0);
    } finally {
      await app.stop('SIGKILL');
      await sink.close();
    }
  });
});
