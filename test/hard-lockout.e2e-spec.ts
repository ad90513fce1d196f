import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Response } from 'supertest';
import { ValidationFailedError } from '../src/otp/errors/otp.errors.js';
import { OtpService } from '../src/otp/otp.service.js';
import { expectError } from './support/contract.js';
import { tally } from './support/races.js';
import { answer, exhaust, expectWait, sendOtp } from './support/rules.js';
import {
  query,
  rowsFor,
  startTestApp,
  travel,
  uniqueEmail,
  type TestApp,
} from './support/test-app.js';

/**
 * Hard lockout (issue 10, off by default): after N exhausted codes of a destination (any purpose)
 * in 24 h, a purpose with `hardLockout` refuses sends with 423 `OTP_HARD_LOCKED` until
 * `OtpService.unlock(destination)`, or for `durationSeconds` when set (then with `retryAfter` and
 * `Retry-After`). The lock is recorded, so it outlives the history it was computed from.
 */

const DAY_AND_MORE = 86_400 + 3_600;

interface DestinationRow {
  hard_locked_at: Date | null;
  unlocked_at: Date | null;
}
const destinationRow = async (destination: string): Promise<DestinationRow | undefined> =>
  (
    await query<DestinationRow>(
      'SELECT hard_locked_at, unlocked_at FROM otp_destinations WHERE destination = $1',
      [destination],
    )
  )[0];

/** A 423 without an end: no `retryAfter`, no `Retry-After`. */
function expectLockedForGood(res: Response): void {
  expectError(res, 423, 'OTP_HARD_LOCKED');
  expect(res.headers['retry-after']).toBeUndefined();
}

describe('hard lockout', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({
      purposes: {
        recover: 'account-recovery',
        timed: { hardLockout: { afterExhaustedCodes: 2, durationSeconds: 600 } },
      },
    });
  });
  afterAll(async () => {
    await t.close();
  });

  const send = (destination: string, purpose: string) => sendOtp(t, { destination, purpose });

  /** Sends (202) and exhausts one code of `purpose`, then moves past the waits that follow. */
  async function sendAndExhaust(destination: string, purpose: string, wait: number): Promise<void> {
    expect(answer(await send(destination, purpose))).toEqual({ status: 202, code: undefined });
    await exhaust(t, destination, { purpose });
    if (wait > 0) await travel(destination, wait);
  }

  describe('POST /otp/send, account-recovery preset (3 exhausted codes, no end)', () => {
    it('answers 423 without retryAfter from the third exhausted code, past every other wait', async () => {
      const email = uniqueEmail();
      await sendAndExhaust(email, 'recover', 60);
      await sendAndExhaust(email, 'recover', 120);
      await sendAndExhaust(email, 'recover', 0);

      expectLockedForGood(await send(email, 'recover'));
      expect((await destinationRow(email))?.hard_locked_at).toBeInstanceOf(Date);
      // Long after the progressive lockout (300 s) and the cooldown (120 s) are over.
      await travel(email, 3_600);
      expectLockedForGood(await send(email, 'recover'));
      expect(await rowsFor(email)).toHaveLength(3);
    });

    it('refuses parallel sends alike, storing nothing', async () => {
      const email = uniqueEmail();
      await sendAndExhaust(email, 'recover', 60);
      await sendAndExhaust(email, 'recover', 120);
      await sendAndExhaust(email, 'recover', 400);
      const responses = await Promise.all(Array.from({ length: 12 }, () => send(email, 'recover')));
      expect(tally(responses)).toEqual({ '423 OTP_HARD_LOCKED': 12 });
      for (const res of responses) expectLockedForGood(res);
      expect(await rowsFor(email)).toHaveLength(3);
    });

    it('persists past the 24 h of history, until OtpService.unlock lifts it', async () => {
      const email = uniqueEmail();
      await sendAndExhaust(email, 'recover', 60);
      await sendAndExhaust(email, 'recover', 120);
      await sendAndExhaust(email, 'recover', 0);
      expectLockedForGood(await send(email, 'recover'));

      // The exhausted codes leave the 24 h window; the recorded lock stays.
      await travel(email, DAY_AND_MORE);
      expectLockedForGood(await send(email, 'recover'));

      await t.app.get(OtpService).unlock(email);
      const row = await destinationRow(email);
      expect(row?.hard_locked_at).toBeNull();
      expect(row?.unlocked_at).toBeInstanceOf(Date);
      expect((await send(email, 'recover')).status).toBe(202);

      // The count starts again from the unlock: one more exhausted code does not lock.
      await exhaust(t, email, { purpose: 'recover' });
      await travel(email, 60);
      expect((await send(email, 'recover')).status).toBe(202);
    });

    it('unlocks at once, exhausted codes before the unlock no longer counting for any lockout', async () => {
      const email = uniqueEmail();
      await sendAndExhaust(email, 'recover', 60);
      await sendAndExhaust(email, 'recover', 120);
      await sendAndExhaust(email, 'recover', 120);
      expectLockedForGood(await send(email, 'recover'));

      await t.app.get(OtpService).unlock(email);
      // Neither the hard lock nor the progressive one (300 s after the third code) holds.
      expect((await send(email, 'recover')).status).toBe(202);
    });

    it('counts exhausted codes of every purpose; a purpose without it is not hard-locked', async () => {
      const email = uniqueEmail();
      await sendAndExhaust(email, 'login', 60);
      await sendAndExhaust(email, 'signup', 120);
      // Two exhausted codes: below the preset's three.
      await sendAndExhaust(email, 'recover', 0);
      expectLockedForGood(await send(email, 'recover'));
      // Hard lockout is the purpose's rule: `login` has none, so only its progressive lockout
      // (300 s after a third exhausted code) applies.
      expectWait(await send(email, 'login'), 429, 'OTP_LOCKED', 300);
    });

    it('OtpService.unlock refuses an empty destination', async () => {
      await expect(t.app.get(OtpService).unlock('')).rejects.toBeInstanceOf(ValidationFailedError);
    });
  });

  describe('POST /otp/send, hardLockout with durationSeconds (2 codes, 600 s)', () => {
    it('answers 423 with retryAfter and Retry-After, then sends again once it ends', async () => {
      const email = uniqueEmail();
      await sendAndExhaust(email, 'timed', 60);
      await sendAndExhaust(email, 'timed', 0);

      const locked = await send(email, 'timed');
      expectError(locked, 423, 'OTP_HARD_LOCKED', ['retryAfter']);
      expectWait(locked, 423, 'OTP_HARD_LOCKED', 600);

      await travel(email, 300);
      expectWait(await send(email, 'timed'), 423, 'OTP_HARD_LOCKED', 300);
      await travel(email, 300);
      expect((await send(email, 'timed')).status).toBe(202);

      // Within the same 24 h, one more exhausted code locks it again, for the full duration.
      await exhaust(t, email, { purpose: 'timed' });
      expectWait(await send(email, 'timed'), 423, 'OTP_HARD_LOCKED', 600);
    });
  });
});
