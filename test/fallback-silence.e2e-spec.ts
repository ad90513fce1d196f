import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomInt } from 'node:crypto';
import { createUniqueDatabase, dropDatabase, runOtpMigrations } from '../example/database.js';
import { OtpFallbackService } from '../src/otp/delivery/receipts/otp-fallback.service.js';
import { queryDatabase } from './support/coexistence-host.js';
import { CapturingProvider, startTestApp, TEST_SECRET, type TestApp } from './support/test-app.js';

const adminUrl = (): string => process.env.TEST_ADMIN_DATABASE_URL as string;

/**
 * This file's instances poll every 20 ms, and a poll claims any due fallback in its database (as
 * it should: any instance may send it). On the run's shared database they would send the
 * fallbacks other files' apps are waiting to send themselves, so this file has a database of its
 * own.
 */
let databaseUrl = '';
const query = <T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> =>
  queryDatabase<T>(databaseUrl, sql, params);
const start = (options: Parameters<typeof startTestApp>[0]): Promise<TestApp> =>
  startTestApp(options, { databaseUrl });

beforeAll(async () => {
  databaseUrl = await createUniqueDatabase(adminUrl(), 'nest_otp_fallback');
  await runOtpMigrations(databaseUrl);
});
afterAll(async () => {
  if (databaseUrl) await dropDatabase(adminUrl(), databaseUrl);
});

/** A valid US number no other test uses (test-app's `uniquePhone` repeats within a few dozen). */
const uniquePhone = (): string => `+1415${2_000_000 + randomInt(8_000_000)}`;

/** Polls `check` until it holds; no timing is asserted, only that it happens. */
async function eventually(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Makes a request's silence fallback due now (instead of waiting `fallbackAfterSeconds`). */
const dueNow = (requestId: string) =>
  query(`UPDATE otp_fallbacks SET due_at = now() WHERE request_id = $1 AND due_at IS NOT NULL`, [
    requestId,
  ]);

/** The fallback row is done with its due time (claimed, sent, released) or gone. */
const settled = async (requestId: string): Promise<boolean> => {
  const rows = await query<{ due_at: Date | null; lease_until: Date | null }>(
    `SELECT due_at, lease_until FROM otp_fallbacks WHERE request_id = $1`,
    [requestId],
  );
  return rows.every((r) => r.due_at === null && r.lease_until === null);
};

describe('fallback on silence (fallbackAfterSeconds)', () => {
  // One provider shared by every instance: it sees every message any of them sends.
  const provider = new CapturingProvider();
  const options = {
    providers: [provider],
    channels: ['sms' as const, 'voice' as const],
    purposes: { login: { fallbackAfterSeconds: 60 } },
    fallbackSecret: TEST_SECRET,
    fallbackPollIntervalMs: 20,
  };
  let a: TestApp;
  let b: TestApp;
  let capped: TestApp;

  beforeAll(async () => {
    [a, b, capped] = await Promise.all([
      start(options),
      start(options),
      start({ ...options, maxSendsPerHour: 1, fallbackPollIntervalMs: 0 }),
    ]);
  });
  let pollersClosed = false;
  afterAll(async () => {
    await Promise.all([
      pollersClosed ? undefined : a?.close(),
      pollersClosed ? undefined : b?.close(),
      capped?.close(),
    ]);
  });

  const sent = (phone: string, channel: string) =>
    provider.messages.filter((m) => m.destination === phone && m.channel === channel);

  it('sends once on the next channel, with two instances polling (20 rounds)', async () => {
    for (let round = 0; round < 20; round++) {
      const phone = uniquePhone();
      const res = await a.http.post('/otp/send').send({ destination: phone }).expect(202);
      const requestId = res.body.requestId as string;
      const [row] = await query<{ due_at: Date; expires_at: Date }>(
        `SELECT due_at, expires_at FROM otp_fallbacks WHERE request_id = $1`,
        [requestId],
      );
      // Due 60 s after the delivery, within the code's life.
      expect(row?.due_at.getTime()).toBeLessThan(row?.expires_at.getTime() as number);
      expect(sent(phone, 'voice')).toHaveLength(0);

      await dueNow(requestId);
      // Both instances race on it: their timers, and a poll of each run by hand at once.
      await Promise.all([
        a.app.get(OtpFallbackService).runDue(),
        b.app.get(OtpFallbackService).runDue(),
      ]);
      await eventually(() => settled(requestId));
      await Promise.all([
        a.app.get(OtpFallbackService).runDue(),
        b.app.get(OtpFallbackService).runDue(),
      ]);

      expect(sent(phone, 'sms')).toHaveLength(1);
      const voice = sent(phone, 'voice');
      expect(voice).toHaveLength(1);
      expect(voice[0]?.code).toBe(sent(phone, 'sms')[0]?.code);
    }
  }, 60_000);

  it('still falls back after a restart between the send and the due time', async () => {
    const first = await start({ ...options, fallbackPollIntervalMs: 0 });
    const phone = uniquePhone();
    const res = await first.http.post('/otp/send').send({ destination: phone }).expect(202);
    const requestId = res.body.requestId as string;
    await first.close();
    await dueNow(requestId);
    // A fresh instance finds it in the database, and nothing in memory was needed.
    const second = await start({ ...options, fallbackPollIntervalMs: 20 });
    try {
      await eventually(async () => sent(phone, 'voice').length === 1 && (await settled(requestId)));
      const status = await second.http.get(`/otp/requests/${requestId}`).expect(200);
      expect(status.body.deliveries).toEqual([
        expect.objectContaining({ channel: 'sms', status: 'sent', cause: 'send' }),
        expect.objectContaining({ channel: 'voice', status: 'sent', cause: 'silence' }),
      ]);
      await second.http
        .post('/otp/verify')
        .send({ destination: phone, code: sent(phone, 'voice')[0]?.code })
        .expect(200);
    } finally {
      await second.close();
    }
  }, 60_000);

  it('never sends for a verified or cancelled code, past the caps, or past the expiry', async () => {
    // Only the capped instance from here on: the others' pollers, with their own higher caps,
    // would otherwise claim its due rows first.
    await Promise.all([a.close(), b.close()]);
    pollersClosed = true;
    const service = capped.app.get(OtpFallbackService);
    // Verified: the trigger forgets the sealed code.
    const p1 = uniquePhone();
    const r1 = await capped.http.post('/otp/send').send({ destination: p1 }).expect(202);
    await capped.http
      .post('/otp/verify')
      .send({ destination: p1, code: provider.lastCode(p1) })
      .expect(200);
    expect(
      await query(`SELECT 1 FROM otp_fallbacks WHERE request_id = $1`, [r1.body.requestId]),
    ).toEqual([]);
    // Cancelled.
    const p2 = uniquePhone();
    const r2 = await capped.http.post('/otp/send').send({ destination: p2 }).expect(202);
    await capped.http.post(`/otp/requests/${r2.body.requestId}/cancel`).expect(204);
    expect(
      await query(`SELECT 1 FROM otp_fallbacks WHERE request_id = $1`, [r2.body.requestId]),
    ).toEqual([]);
    // At the cap (maxSendsPerHour: 1, used by the send).
    const p3 = uniquePhone();
    const r3 = await capped.http.post('/otp/send').send({ destination: p3 }).expect(202);
    await dueNow(r3.body.requestId);
    await service.runDue(r3.body.requestId);
    expect(await settled(r3.body.requestId)).toBe(true);
    // Expired: the code's own row says so, whatever the fallback row says.
    const p4 = uniquePhone();
    const r4 = await capped.http.post('/otp/send').send({ destination: p4 }).expect(202);
    await query(`UPDATE otp_requests SET expires_at = now() - interval '1 second' WHERE id = $1`, [
      r4.body.requestId,
    ]);
    await dueNow(r4.body.requestId);
    await service.runDue(r4.body.requestId);
    await eventually(
      async () =>
        (await query(`SELECT 1 FROM otp_fallbacks WHERE request_id = $1`, [r4.body.requestId]))
          .length === 0,
    );
    for (const phone of [p1, p2, p3, p4]) expect(sent(phone, 'voice')).toEqual([]);
    expect(
      await query(`SELECT 1 FROM otp_requests WHERE destination = ANY($1)`, [[p3, p4]]),
    ).toHaveLength(2);
  }, 60_000);
});
