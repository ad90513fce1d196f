import { expect } from '@jest/globals';
import { randomInt } from 'node:crypto';
import type { Response } from 'supertest';
import { bodyKeys, median, report, stableHeaderNames, timed } from './attack-kit.js';
import { expectError } from './contract.js';
import { travel, uniqueEmail, type TestApp } from './test-app.js';

/**
 * Enumeration: requests about destinations that have history and about
 * destinations never seen must look alike: the same status, body keys and header names, and the
 * same latency (medians of interleaved samples). Shared by test/attacks.e2e-spec.ts and
 * test/attack/enumeration.attack-spec.ts, which differ in sample count and bcrypt cost.
 */

export interface Comparison {
  known: Response[];
  unknown: Response[];
  knownMedianMs: number;
  unknownMedianMs: number;
}

/** Alternates the two kinds of request (order flipped each pair), timing each one. */
async function interleaved(
  samples: number,
  known: (i: number) => PromiseLike<Response>,
  unknown: (i: number) => PromiseLike<Response>,
): Promise<Comparison> {
  // Warm-up: the first requests pay for JIT and fresh pool connections.
  for (let i = 0; i < 3; i++) {
    await unknown(-1 - i);
  }
  const k: { ms: number; res: Response }[] = [];
  const u: { ms: number; res: Response }[] = [];
  for (let i = 0; i < samples; i++) {
    if (i % 2 === 0) {
      k.push(await timed(() => known(i)));
      u.push(await timed(() => unknown(i)));
    } else {
      u.push(await timed(() => unknown(i)));
      k.push(await timed(() => known(i)));
    }
  }
  return {
    known: k.map((x) => x.res),
    unknown: u.map((x) => x.res),
    knownMedianMs: median(k.map((x) => x.ms)),
    unknownMedianMs: median(u.map((x) => x.ms)),
  };
}

const randomCode = (): string => String(randomInt(1_000_000)).padStart(6, '0');

/** Fresh addresses, each sent a code and (when `then` says) verified or left to expire. */
async function withHistory(
  t: TestApp,
  count: number,
  then: (i: number) => 'verify' | 'expire' | 'keep',
): Promise<string[]> {
  const emails = Array.from({ length: count }, () => uniqueEmail());
  await Promise.all(
    emails.map(async (email, i) => {
      const sent = await t.http.post('/otp/send').send({ destination: email });
      expect(sent.status).toBe(202);
      const next = then(i);
      if (next === 'verify') {
        const code = t.provider.lastCode(email);
        const verified = await t.http.post('/otp/verify').send({ destination: email, code });
        expect(verified.status).toBe(200);
      } else if (next === 'expire') {
        await travel(email, 400);
      }
    }),
  );
  return emails;
}

/**
 * POST /otp/send to addresses with history (an earlier code verified, or one expired) and to
 * addresses never seen.
 */
export async function compareSends(t: TestApp, samples: number): Promise<Comparison> {
  const known = await withHistory(t, samples, (i) => (i % 2 === 0 ? 'verify' : 'expire'));
  const unknown = Array.from({ length: samples }, () => uniqueEmail());
  return interleaved(
    samples,
    (i) => t.http.post('/otp/send').send({ destination: known[i] }),
    (i) => t.http.post('/otp/send').send({ destination: unknown[i] ?? uniqueEmail() }),
  );
}

/**
 * POST /otp/verify for addresses with history but no active code (used, or expired) and for
 * addresses never seen: both are 410, and both make the decoy comparison.
 */
export async function compareVerifiesWithoutCode(t: TestApp, samples: number): Promise<Comparison> {
  const known = await withHistory(t, samples, (i) => (i % 2 === 0 ? 'verify' : 'expire'));
  return interleaved(
    samples,
    (i) => t.http.post('/otp/verify').send({ destination: known[i], code: randomCode() }),
    () => t.http.post('/otp/verify').send({ destination: uniqueEmail(), code: randomCode() }),
  );
}

/**
 * POST /otp/verify with a wrong guess at an active code (401: a real hash comparison) and a guess
 * for an address never seen (410: the decoy comparison). The statuses differ by contract; the
 * work, and so the time, must not.
 */
export async function compareVerifiesActiveVersusUnknown(
  t: TestApp,
  samples: number,
): Promise<Comparison> {
  const active = await withHistory(t, samples, () => 'keep');
  return interleaved(
    samples,
    (i) => {
      const email = active[i] as string;
      const code = t.provider.lastCode(email);
      const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
      return t.http.post('/otp/verify').send({ destination: email, code: wrong });
    },
    () => t.http.post('/otp/verify').send({ destination: uniqueEmail(), code: randomCode() }),
  );
}

/** Same status, same body keys (or same bodies), same header names, within every pair. */
export function expectSameShape(c: Comparison, options: { sameBodies: boolean }): void {
  const first = c.known[0] as Response;
  for (const res of [...c.known, ...c.unknown]) {
    expect({ status: res.status, keys: bodyKeys(res), headers: stableHeaderNames(res) }).toEqual({
      status: first.status,
      keys: bodyKeys(first),
      headers: stableHeaderNames(first),
    });
    if (options.sameBodies) expect(res.body).toEqual(first.body);
  }
}

/** Same header names on both sides (the statuses may differ). */
export function expectSameHeaderNames(c: Comparison): void {
  const names = new Set([...c.known, ...c.unknown].map((res) => stableHeaderNames(res).join(',')));
  expect([...names]).toHaveLength(1);
}

/**
 * The latency medians of both sides differ by no more than `minMs`, or `fraction` of the faster
 * median when that is more. Relative, so a busy machine (every request slower, and noisier) does
 * not fail it; still able to fail, since the leak it guards against, a missing decoy comparison, is
 * a whole hash comparison: at bcrypt cost 8 several times the faster median, far over the fraction.
 */
export function expectSameLatency(c: Comparison, tolerance: LatencyTolerance): void {
  const differenceMs = Math.abs(c.knownMedianMs - c.unknownMedianMs);
  const allowedMs = Math.max(
    tolerance.minMs,
    tolerance.fraction * Math.min(c.knownMedianMs, c.unknownMedianMs),
  );
  // The whole object is compared so that a failure prints both medians.
  expect({
    knownMedianMs: c.knownMedianMs,
    unknownMedianMs: c.unknownMedianMs,
    allowedMs,
    withinTolerance: differenceMs <= allowedMs,
  }).toEqual({
    knownMedianMs: c.knownMedianMs,
    unknownMedianMs: c.unknownMedianMs,
    allowedMs,
    withinTolerance: true,
  });
}

/** `12.3 ms vs 12.1 ms (Δ 0.2 ms, n=40 each)`. */
export const describeMedians = (c: Comparison): string =>
  `${c.knownMedianMs.toFixed(2)} ms vs ${c.unknownMedianMs.toFixed(2)} ms ` +
  `(difference ${Math.abs(c.knownMedianMs - c.unknownMedianMs).toFixed(2)} ms, n=${c.known.length} each)`;

/**
 * The three enumeration checks, each a whole test body, shared by the quick run and the attack
 * suite; `run` names the hasher in the printed figures (`hmac`, `bcrypt 8`, `bcrypt 10`).
 */
export interface LatencyTolerance {
  /** Always allowed, however fast the requests. */
  minMs: number;
  /** Allowed as a share of the faster median. */
  fraction: number;
}

export interface EnumerationRun {
  samples: number;
  tolerance: LatencyTolerance;
  run: string;
}

/** POST /otp/send: alike and as fast for addresses with history and never seen. */
export async function expectSendsAlike(t: TestApp, o: EnumerationRun): Promise<void> {
  const c = await compareSends(t, o.samples);
  expect(c.known[0]?.status).toBe(202);
  expectSameShape(c, { sameBodies: false });
  report(`enumeration, POST /otp/send (${o.run}), history vs never seen: ${describeMedians(c)}`);
  // A first send is one round trip shorter by design (SECURITY.md, "How a send and a verify are written"); on a
  // busy machine that round trip nears the faster median (12.4 against 6.7 ms in one full-suite
  // run), so the slower side may take up to twice the faster. What this guards against, work one
  // side skips (a hash, a delivery), still shows.
  expectSameLatency(c, { ...o.tolerance, fraction: Math.max(o.tolerance.fraction, 1) });
}

/** POST /otp/verify: alike and as fast for addresses with history (no active code) and never seen. */
export async function expectVerifiesWithoutCodeAlike(t: TestApp, o: EnumerationRun): Promise<void> {
  const c = await compareVerifiesWithoutCode(t, o.samples);
  expect(c.known[0]?.status).toBe(410);
  expectSameShape(c, { sameBodies: true });
  report(
    `enumeration, POST /otp/verify (${o.run}), history without an active code vs never ` +
      `seen: ${describeMedians(c)}`,
  );
  expectSameLatency(c, o.tolerance);
}

/** POST /otp/verify: a wrong guess at an active code takes as long as one for an unknown address. */
export async function expectWrongGuessAsSlowAsUnknown(
  t: TestApp,
  o: EnumerationRun,
): Promise<void> {
  const c = await compareVerifiesActiveVersusUnknown(t, o.samples);
  for (const res of c.known) expectError(res, 401, 'OTP_INVALID', ['attemptsRemaining']);
  for (const res of c.unknown) expectError(res, 410, 'OTP_EXPIRED');
  expectSameHeaderNames(c);
  report(
    `enumeration, POST /otp/verify (${o.run}), wrong guess at an active code (401) vs never ` +
      `seen (410): ${describeMedians(c)}`,
  );
  expectSameLatency(c, o.tolerance);
}
