import { expect } from '@jest/globals';
import type { Response, Test } from 'supertest';
import { wrongCode } from './contract.js';
import type { TestApp } from './test-app.js';

/**
 * Helpers of the specs of issue 10's rules (purposes, cancel, hard lockout, challenge, auto-resend,
 * client binding, per-account limits): one place for the calls and the waits they check.
 */

/** Request headers, e.g. `{ 'x-test-user': 'u1', 'user-agent': 'A' }`. */
export type Headers = Record<string, string>;

const withHeaders = (req: Test, headers: Headers): Test =>
  Object.entries(headers).reduce((r, [name, value]) => r.set(name, value), req);

/** POST /otp/send with `body` and `headers`. */
export const sendOtp = (t: TestApp, body: Record<string, unknown>, headers: Headers = {}): Test =>
  withHeaders(t.http.post('/otp/send').send(body), headers);

/** POST /otp/verify with `body` and `headers`. */
export const verifyOtp = (t: TestApp, body: Record<string, unknown>, headers: Headers = {}): Test =>
  withHeaders(t.http.post('/otp/verify').send(body), headers);

/** POST /otp/requests/:requestId/cancel. */
export const cancelOtp = (t: TestApp, requestId: string): Test =>
  t.http.post(`/otp/requests/${encodeURIComponent(requestId)}/cancel`);

/** GET /otp/requests/:requestId. */
export const statusOf = (t: TestApp, requestId: string): Test =>
  t.http.get(`/otp/requests/${encodeURIComponent(requestId)}`);

/** `{ status, code }` of an answer, to compare in one assertion that shows both on failure. */
export const answer = (res: Response): { status: number; code: unknown } => ({
  status: res.status,
  code: (res.body as { code?: unknown }).code,
});

/**
 * A refusal with a wait: `status` and `code`, `retryAfter` of `seconds` less the time the test took
 * since the wait began (at most `slack` seconds, generous for a busy machine; never more than one
 * second over), and the same value in `Retry-After`.
 */
export function expectWait(
  res: Response,
  status: number,
  code: string,
  seconds: number,
  slack = 10,
): void {
  expect(answer(res)).toEqual({ status, code });
  const retryAfter = res.body.retryAfter as number;
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(Math.max(1, seconds - slack));
  expect(retryAfter).toBeLessThanOrEqual(seconds + 1);
  expect(res.headers['retry-after']).toBe(String(retryAfter));
}

/** Seconds from a send to its `resendAvailableAt` (the send moment being `expiresAt - ttlSeconds`). */
export const resendDelay = (body: {
  expiresAt: string;
  resendAvailableAt: string;
  ttlSeconds: number;
}): number =>
  (Date.parse(body.resendAvailableAt) - (Date.parse(body.expiresAt) - body.ttlSeconds * 1000)) /
  1000;

/**
 * Uses up every attempt of the flow's active code with wrong guesses: `attempts - 1` answers 401,
 * the last 429 `OTP_ATTEMPTS_EXCEEDED`, which is returned.
 */
export async function exhaust(
  t: TestApp,
  destination: string,
  options: { purpose?: string; attempts?: number; headers?: Headers } = {},
): Promise<Response> {
  const attempts = options.attempts ?? 3;
  const guess = wrongCode(t.provider.lastCode(destination));
  const body = {
    destination,
    code: guess,
    ...(options.purpose ? { purpose: options.purpose } : {}),
  };
  for (let left = attempts - 1; left >= 1; left--) {
    const res = await verifyOtp(t, body, options.headers);
    expect({ ...answer(res), attemptsRemaining: res.body.attemptsRemaining }).toEqual({
      status: 401,
      code: 'OTP_INVALID',
      attemptsRemaining: left,
    });
  }
  const last = await verifyOtp(t, body, options.headers);
  expect(answer(last)).toEqual({ status: 429, code: 'OTP_ATTEMPTS_EXCEEDED' });
  return last;
}
