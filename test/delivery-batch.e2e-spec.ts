import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import type { OtpMessage, OtpProvider } from '../src/otp/delivery/otp-provider.interface.js';
import { expectError } from './support/contract.js';
import { queryDatabase } from './support/coexistence-host.js';
import { databaseWithTheLayoutUnderTest, itRunsOnTheLayoutUnderTest } from './support/layouts.js';
import { watchStatementsDuring } from './support/statement-count.js';
import { startTestApp, type TestApp, uniqueEmail } from './support/test-app.js';

/**
 * Holds every delivery until `expected` of them are waiting, then lets them all through in one
 * go: their sends then record their deliveries at the same moment, which is when the module
 * records them together.
 */
class GatedProvider implements OtpProvider {
  readonly name = 'gated';
  readonly codes = new Map<string, string>();
  expected = 1;
  private held: (() => void)[] = [];

  supports(): boolean {
    return true;
  }

  deliver(message: OtpMessage): Promise<void> {
    this.codes.set(message.destination, message.code);
    return new Promise((resolve) => {
      this.held.push(resolve);
      if (this.held.length >= this.expected) {
        const all = this.held;
        this.held = [];
        for (const release of all) release();
      }
    });
  }
}

const ALONE = /^\s*WITH delivered AS/;
const TOGETHER = /^\s*WITH sent AS/;
/** Parameters a send takes in the statement that records several (the repository's). */
const TOGETHER_PARAMS = 6;

/**
 * The delivery-record statements the module sends while `run` runs, and the sends each carried
 * (the statement for several has a place for each of up to a power of two; an unused one is null).
 */
async function deliveryRecordsDuring(t: TestApp, run: () => Promise<unknown>): Promise<number[]> {
  const sizes: number[] = [];
  await watchStatementsDuring(t.app, run, ({ text, values }) => {
    if (ALONE.test(text)) sizes.push(1);
    if (TOGETHER.test(text)) {
      const ids = values.filter((_, i) => i % TOGETHER_PARAMS === 0);
      sizes.push(ids.filter((id) => id !== null).length);
    }
  });
  return sizes;
}

describe('delivery records of concurrent sends', () => {
  const provider = new GatedProvider();
  // A database of this suite's own: the second test adds a trigger to otp_requests and drops it.
  let database: { url: string; drop: () => Promise<void> };
  let t: TestApp;
  const query = <T = Record<string, unknown>>(sql: string, params: unknown[] = []) =>
    queryDatabase<T>(database.url, sql, params);
  beforeAll(async () => {
    database = await databaseWithTheLayoutUnderTest('nest_otp_delivery_batch');
    t = await startTestApp({ providers: [provider] }, { databaseUrl: database.url });
  });
  afterAll(async () => {
    provider.expected = 1;
    await t?.close();
    await database?.drop();
  });

  itRunsOnTheLayoutUnderTest(() => database.url);

  it('are written together, and every send is recorded as alone: delivered, logged, verifiable', async () => {
    const emails = Array.from({ length: 12 }, () => uniqueEmail());
    provider.expected = emails.length;
    let answers: { status: number; body: Record<string, unknown> }[] = [];
    const sizes = await deliveryRecordsDuring(t, async () => {
      answers = await Promise.all(
        emails.map((destination) => t.http.post('/otp/send').send({ destination })),
      );
    });
    expect(answers.map((a) => a.status)).toEqual(emails.map(() => 202));
    // The first delivery that ends goes alone; the eleven that end while it runs go together.
    expect(sizes).toEqual([1, 11]);

    const ids = answers.map((a) => a.body.requestId as string);
    const rows = await query<{ id: string; delivery_status: string; delivered_by: string }>(
      'SELECT id, delivery_status, delivered_by FROM otp_requests WHERE id = ANY($1::uuid[])',
      [ids],
    );
    expect(rows).toHaveLength(12);
    for (const row of rows)
      expect(row).toMatchObject({ delivery_status: 'sent', delivered_by: 'gated' });
    const attempts = await query<{ request_id: string; seq: string; provider_message_id: string }>(
      `SELECT request_id, seq::text, provider_message_id FROM otp_deliveries
        WHERE request_id = ANY($1::uuid[]) AND cause = 'send' AND status = 'sent'`,
      [ids],
    );
    expect(attempts.map((a) => a.request_id).sort()).toEqual([...ids].sort());
    expect(attempts.every((a) => a.seq === '1' && a.provider_message_id === null)).toBe(true);

    provider.expected = 1;
    const verified = await Promise.all(
      emails.map((destination) =>
        t.http.post('/otp/verify').send({ destination, code: provider.codes.get(destination) }),
      ),
    );
    expect(verified.map((v) => v.status)).toEqual(emails.map(() => 200));
  });

  it('leave the others recorded when the database refuses one send of the batch', async () => {
    // A prefix the trigger below matches, and no other test sends to.
    const poisoned = `poison-${randomUUID()}@example.com`;
    const emails = [...Array.from({ length: 5 }, () => uniqueEmail()), poisoned];
    // Stands for a row the database cannot update now (a lock held past lock_timeout): the
    // statement that marks it delivered fails, and with it any batch it is part of.
    await query(`CREATE FUNCTION delivery_batch_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'row locked' USING ERRCODE = '55P03'; END $$`);
    await query(`CREATE TRIGGER delivery_batch_refuse BEFORE UPDATE ON otp_requests FOR EACH ROW
      WHEN (NEW.destination LIKE 'poison-%@example.com' AND NEW.delivery_status = 'sent')
      EXECUTE FUNCTION delivery_batch_refuse()`);
    try {
      provider.expected = emails.length;
      let answers: { status: number; body: unknown }[] = [];
      const sizes = await deliveryRecordsDuring(t, async () => {
        answers = await Promise.all(
          emails.map((destination) => t.http.post('/otp/send').send({ destination })),
        );
      });
      // The first record alone, the other five together. When the poisoned send was among the
      // five, their statement failed and each was recorded again alone; either way it failed
      // only itself.
      expect(sizes.slice(0, 2)).toEqual([1, 5]);
      expect([
        [1, 5],
        [1, 5, 1, 1, 1, 1, 1],
      ]).toContainEqual(sizes);
      const poisonedAnswer = answers[emails.length - 1];
      expectError(poisonedAnswer as never, 503, 'SERVICE_UNAVAILABLE', ['retryAfter']);
      expect(answers.slice(0, -1).map((a) => a.status)).toEqual([202, 202, 202, 202, 202]);

      const rows = await query<{ destination: string; delivery_status: string }>(
        'SELECT destination, delivery_status FROM otp_requests WHERE destination = ANY($1::text[])',
        [emails],
      );
      const status = Object.fromEntries(rows.map((r) => [r.destination, r.delivery_status]));
      expect(status).toEqual(
        Object.fromEntries(emails.map((e) => [e, e === poisoned ? 'pending' : 'sent'])),
      );
      const logged = await query<{ n: string }>(
        `SELECT count(*)::text AS n FROM otp_deliveries d JOIN otp_requests r ON r.id = d.request_id
          WHERE r.destination = ANY($1::text[])`,
        [emails],
      );
      expect(logged[0]?.n).toBe('5');
    } finally {
      provider.expected = 1;
      await query('DROP TRIGGER IF EXISTS delivery_batch_refuse ON otp_requests');
      await query('DROP FUNCTION IF EXISTS delivery_batch_refuse()');
    }
    // The poisoned destination's code never verifies: its delivery was never recorded.
    const res = await t.http
      .post('/otp/verify')
      .send({ destination: poisoned, code: provider.codes.get(poisoned) });
    expect(res.status).toBe(410);
  });
});
