import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { dbMillis, expectError, isoMillis, sendCode } from './support/contract.js';
import { itRunsOnTheLayoutUnderTest } from './support/layouts.js';
import { tally } from './support/races.js';
import { statementsDuring } from './support/statement-count.js';
import {
  query,
  rowsFor,
  startTestApp,
  type TestApp,
  travel,
  uniqueEmail,
} from './support/test-app.js';

/**
 * A destination's first send inserts without reading its history (it has none, so the policy's
 * answer is known): one statement, then the delivery record. Any destination with a history is
 * decided on it, whichever instance sends and whatever that instance remembers.
 */
describe("a destination's first send", () => {
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    // Two instances on one database, each with its own memory of the destinations it has seen.
    [a, b] = await Promise.all([
      startTestApp({ resendCooldownSeconds: [30, 60] }),
      startTestApp({ resendCooldownSeconds: [30, 60] }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([a.close(), b.close()]);
  });

  const versionOf = async (destination: string): Promise<number | undefined> => {
    const [row] = await query<{ version: string }>(
      'SELECT version FROM otp_destinations WHERE destination = $1',
      [destination],
    );
    return row ? Number(row.version) : undefined;
  };

  it('is two statements, the next send three; each row holds the policy its answer shows', async () => {
    const email = uniqueEmail();
    let first: Record<string, unknown> = {};
    const firstStatements = await statementsDuring(a.app, async () => {
      first = (await sendCode(a, email)).body;
    });
    expect(firstStatements).toBe(2);
    const [row] = await rowsFor(email);
    expect(row).toMatchObject({
      id: first.requestId,
      delivery_status: 'sent',
      superseded_at: null,
    });
    const created = dbMillis(row?.created_at);
    // The first cooldown step and the lifetime, from the row's own creation.
    expect(dbMillis(row?.resend_available_at) - created).toBe(30_000);
    expect(dbMillis(row?.expires_at) - created).toBe(300_000);
    expect(isoMillis(first.resendAvailableAt)).toBe(dbMillis(row?.resend_available_at));
    expect(isoMillis(first.expiresAt)).toBe(dbMillis(row?.expires_at));
    expect(await versionOf(email)).toBe(1);

    // The cooldown is decided on the history the first send left.
    await travel(email, 31);
    let second: Record<string, unknown> = {};
    const secondStatements = await statementsDuring(a.app, async () => {
      second = (await sendCode(a, email)).body;
    });
    expect(secondStatements).toBe(3);
    const rows = await rowsFor(email);
    expect(rows).toHaveLength(2);
    expect(rows[0]?.superseded_at).not.toBeNull();
    expect(rows[1]).toMatchObject({ id: second.requestId, superseded_at: null });
    // The second step of the escalating cooldown: the first send counted.
    expect(dbMillis(rows[1]?.resend_available_at) - dbMillis(rows[1]?.created_at)).toBe(60_000);
    expect(await versionOf(email)).toBe(2);
  });

  it('from an instance that never saw the destination, writes nothing and the cooldown holds', async () => {
    const email = uniqueEmail();
    await sendCode(a, email);
    // b has no memory of the destination: it tries the first send, which finds the history.
    const statements = await statementsDuring(b.app, async () => {
      const res = await b.http.post('/otp/send').send({ destination: email });
      expectError(res, 429, 'OTP_RESEND_COOLDOWN', ['retryAfter']);
    });
    expect(statements).toBe(2);
    expect(await rowsFor(email)).toHaveLength(1);
    expect(await versionOf(email)).toBe(1);
    // Now b knows it: the next refusal reads the history straight away.
    const again = await statementsDuring(b.app, async () => {
      await b.http.post('/otp/send').send({ destination: email }).expect(429);
    });
    expect(again).toBe(1);
  });

  it('a history without its version row (an upgrade, a purge) still decides', async () => {
    const email = uniqueEmail();
    await sendCode(a, email);
    await query('DELETE FROM otp_destinations WHERE destination = $1', [email]);
    const res = await b.http.post('/otp/send').send({ destination: email });
    expectError(res, 429, 'OTP_RESEND_COOLDOWN', ['retryAfter']);
    expect(await rowsFor(email)).toHaveLength(1);
    expect(await versionOf(email)).toBeUndefined();
  });

  it('an idempotency key reads first, as every keyed send does', async () => {
    const email = uniqueEmail();
    const statements = await statementsDuring(a.app, async () => {
      await a.http
        .post('/otp/send')
        .set('Idempotency-Key', `key-${email}`)
        .send({ destination: email })
        .expect(202);
    });
    expect(statements).toBe(3);
    expect(await rowsFor(email)).toHaveLength(1);
  });

  it('parallel first sends on two instances: one delivered, one row, one version', async () => {
    const email = uniqueEmail();
    const parallel = 16;
    const responses = await Promise.all(
      Array.from({ length: parallel }, (_, i) =>
        (i % 2 === 0 ? a : b).http.post('/otp/send').send({ destination: email }),
      ),
    );
    expect(tally(responses)).toEqual({ '202': 1, '429 OTP_RESEND_COOLDOWN': parallel - 1 });
    const rows = await rowsFor(email);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ delivery_status: 'sent', superseded_at: null });
    expect(await versionOf(email)).toBe(1);
  });
});

describe('parallel first sends with no cooldown', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({
      resendCooldownSeconds: [0],
      maxSendsPerHour: 100,
      maxSendsPerDay: 100,
    });
  });
  afterAll(async () => {
    await t.close();
  });

  it('every send counts: as many rows and versions as answers, exactly one code active', async () => {
    const email = uniqueEmail();
    const parallel = 12;
    const responses = await Promise.all(
      Array.from({ length: parallel }, () => t.http.post('/otp/send').send({ destination: email })),
    );
    expect(tally(responses)).toEqual({ '202': parallel });
    const rows = await rowsFor(email);
    expect(rows).toHaveLength(parallel);
    expect(rows.filter((r) => r.superseded_at === null)).toHaveLength(1);
    const [destination] = await query<{ version: string }>(
      'SELECT version FROM otp_destinations WHERE destination = $1',
      [email],
    );
    expect(Number(destination?.version)).toBe(parallel);
  });
});

describe('the database under test', () => itRunsOnTheLayoutUnderTest());
