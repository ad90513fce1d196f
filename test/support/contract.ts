import { expect } from '@jest/globals';
import { randomInt, randomUUID } from 'node:crypto';
import type { Response } from 'supertest';
import type { OtpChannel } from '../../src/otp/otp.types.js';
import { travel, type Platform, type TestApp } from './test-app.js';

/** Assertions on the HTTP contract (docs/http-contract.md) shared by the route specs. */

export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The one 410 message, whatever the reason. */
export const EXPIRED_MESSAGE = 'This code is invalid or has expired. Request a new code.';

/**
 * Asserts an error response has the contract's shape: `{ statusCode, code, message }` with
 * `statusCode` equal to the HTTP status, plus exactly the `extra` keys named (e.g. `retryAfter`).
 * Every 429 must also carry `retryAfter` (whole seconds >= 1) and an equal `Retry-After` header.
 */
export function expectError(
  res: Response,
  status: number,
  code: string,
  extraKeys: string[] = [],
): void {
  expect({ status: res.status, body: res.body as unknown }).toMatchObject({
    status,
    body: { statusCode: status, code },
  });
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  const message: unknown = res.body.message;
  if (Array.isArray(message)) {
    expect(message.length).toBeGreaterThan(0);
    for (const m of message) expect(typeof m).toBe('string');
  } else {
    expect(typeof message).toBe('string');
    expect((message as string).length).toBeGreaterThan(0);
  }
  const keys = ['statusCode', 'code', 'message', ...extraKeys];
  if (status === 429 && !keys.includes('retryAfter')) keys.push('retryAfter');
  expect(Object.keys(res.body as object).sort()).toEqual(keys.sort());
  if (status === 429) {
    const retryAfter: unknown = res.body.retryAfter;
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter as number).toBeGreaterThanOrEqual(1);
    expect(res.headers['retry-after']).toBe(String(retryAfter));
  }
}

/**
 * The answer to a request id whose percent-encoding is not UTF-8 (`%ED%A0%80`): on Express the
 * route's malformed id, 404 `OTP_REQUEST_NOT_FOUND`; on Fastify its router refuses the URL before
 * any route exists, with its own 400 (README, "Express or Fastify").
 */
export function expectUndecodableIdAnswer(res: Response, platform: Platform): void {
  if (platform === 'express') return expectError(res, 404, 'OTP_REQUEST_NOT_FOUND');
  expect({ status: res.status, code: res.body.code }).toEqual({
    status: 400,
    code: 'FST_ERR_BAD_URL',
  });
}

/** Asserts `value` is an ISO-8601 timestamp string and returns it as epoch milliseconds. */
export function isoMillis(value: unknown): number {
  expect(typeof value).toBe('string');
  expect(value as string).toMatch(
    /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/,
  );
  const millis = Date.parse(value as string);
  expect(Number.isNaN(millis)).toBe(false);
  return millis;
}

/** Epoch milliseconds of a timestamptz column as pg returns it. */
export function dbMillis(value: unknown): number {
  expect(value).toBeInstanceOf(Date);
  return (value as Date).getTime();
}

let sequence = randomInt(1_000_000);

/**
 * A valid, unique US number in E.164 (+1 415 NXX-XXXX, exchange starting 2-9, so always valid
 * for libphonenumber), and its national spelling `(415) NXX-XXXX`.
 */
export function uniqueUsPhone(): { e164: string; national: string } {
  sequence += 1;
  const exchange = 200 + (sequence % 800);
  const line = String(randomInt(10_000)).padStart(4, '0');
  return { e164: `+1415${exchange}${line}`, national: `(415) ${exchange}-${line}` };
}

/** A valid, unique UK mobile number written with spaces, and its E.164 form. */
export function uniqueUkMobile(): { spaced: string; e164: string } {
  const rest = String(randomInt(1_000_000)).padStart(6, '0');
  return { spaced: `+44 7400 ${rest}`, e164: `+447400${rest}` };
}

/** An Idempotency-Key no other test uses (keys are unique across the whole table). */
export const uniqueKey = (): string => `key-${randomUUID()}`;

/**
 * Sends a code (202 expected) to a destination already in normalized form and returns the response
 * body and the code the provider carried.
 */
export async function sendCode(
  t: TestApp,
  destination: string,
  extra: { channel?: string; purpose?: string } = {},
): Promise<{ body: Record<string, unknown>; code: string }> {
  const res = await t.http.post('/otp/send').send({ destination, ...extra });
  expect({ status: res.status, body: res.body as unknown }).toMatchObject({ status: 202 });
  const message = [...t.provider.messages].reverse().find((m) => m.destination === destination);
  if (!message) throw new Error(`no message was sent to ${destination}`);
  return { body: res.body as Record<string, unknown>, code: message.code };
}

/** A code of the same length that is certainly not `code`. */
export const wrongCode = (code: string): string =>
  code
    .split('')
    .map((d) => String((Number(d) + 1) % 10))
    .join('');

/** How many messages the provider delivered to a (normalized) destination. */
export const messagesTo = (t: TestApp, destination: string): number =>
  t.provider.messages.filter((m) => m.destination === destination).length;

/**
 * Runs `work` while the provider fails on `channels`, then restores them (tests in a file run one at
 * a time, so no other request of the file sees the failure).
 */
export async function withFailing<T>(
  t: TestApp,
  channels: OtpChannel[],
  work: () => Promise<T>,
): Promise<T> {
  for (const c of channels) t.provider.failing.add(c);
  try {
    return await work();
  } finally {
    for (const c of channels) t.provider.failing.delete(c);
  }
}

/**
 * Sends a code to an email address, moves past the resend cooldown, then sends again while email
 * delivery fails: the first code is superseded and the failed send leaves no active code. Returns
 * the first send and the failed send's response (a 503 by contract; the caller checks it).
 */
export async function supersedeByFailedSend(
  t: TestApp,
  email: string,
): Promise<{ first: { body: Record<string, unknown>; code: string }; failed: Response }> {
  const first = await sendCode(t, email);
  await travel(email, 31);
  const failed = await withFailing(t, ['email'], () =>
    t.http.post('/otp/send').send({ destination: email }),
  );
  return { first, failed };
}
