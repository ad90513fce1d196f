import { describe, expect, it } from '@jest/globals';
import type { DeliveryStatus } from '../otp.types.js';
import {
  EMPTY_HISTORY,
  evaluateSend,
  firstSendResendAfterMs,
  nextSendAt,
  summarizeHistory,
  withSend,
  secondsUntil,
  step,
  type SendHistoryEntry,
  type SendPolicy,
} from './send-policy.js';

/** The contract's "Policy defaults", written out so a change of the module's defaults shows here. */
const CONTRACT_POLICY: SendPolicy = {
  resendCooldownSeconds: [30, 60, 120, 300],
  lockoutStepSeconds: [30, 60, 300, 900, 3600],
  maxSendsPerHour: 5,
  maxSendsPerDay: 10,
};
const HOUR = 3_600;
const DAY = 86_400;

// Every time in these tests is an offset in seconds from T0, the injected clock's origin.
const T0 = Date.UTC(2030, 0, 1, 12, 0, 0);
const at = (seconds: number): Date => new Date(T0 + seconds * 1000);

function send(
  createdAt: number,
  options: {
    purpose?: string;
    deliveryStatus?: DeliveryStatus;
    verifiedAt?: number;
    exhaustedAt?: number;
  } = {},
): SendHistoryEntry {
  return {
    purpose: options.purpose ?? 'login',
    createdAt: at(createdAt),
    deliveryStatus: options.deliveryStatus ?? 'sent',
    verifiedAt: options.verifiedAt === undefined ? null : at(options.verifiedAt),
    exhaustedAt: options.exhaustedAt === undefined ? null : at(options.exhaustedAt),
  };
}

const evaluate = (history: SendHistoryEntry[], now: number, purpose = 'login') =>
  evaluateSend(
    summarizeHistory(history, at(now), CONTRACT_POLICY),
    purpose,
    at(now),
    CONTRACT_POLICY,
  );
const nextAt = (history: SendHistoryEntry[], purpose: string, now: Date) =>
  nextSendAt(summarizeHistory(history, now, CONTRACT_POLICY), purpose, now, CONTRACT_POLICY);

/** `count` delivered sends of one flow, 1000 s apart so that no send cap is reached. */
const flowOf = (count: number, purpose = 'login'): SendHistoryEntry[] =>
  Array.from({ length: count }, (_, i) => send(i * 1000, { purpose }));

describe('evaluateSend', () => {
  it('allows a first send', () => {
    expect(evaluate([], 0)).toEqual({ allowed: true });
  });

  describe('resend cooldown', () => {
    // [sends already in the flow, wait before the next one]
    it.each([
      [1, 30],
      [2, 60],
      [3, 120],
      [4, 300],
      [5, 300],
      [8, 300],
    ])('after %i send(s) in the flow, makes the next one wait %i s', (count, wait) => {
      const history = flowOf(count);
      const last = (count - 1) * 1000;

      expect(evaluate(history, last + 1)).toEqual({
        allowed: false,
        code: 'OTP_RESEND_COOLDOWN',
        until: at(last + wait),
        retryAfterSeconds: wait - 1,
      });
      expect(evaluate(history, last + wait - 0.001)).toMatchObject({
        allowed: false,
        code: 'OTP_RESEND_COOLDOWN',
        retryAfterSeconds: 1,
      });
      expect(evaluate(history, last + wait)).toEqual({ allowed: true });
    });

    it('starts a new flow after a successful verify of that purpose', () => {
      // Three sends (next wait would be 120 s); the third is verified.
      const history = [send(0), send(1000), send(2000, { verifiedAt: 2010 })];
      expect(evaluate(history, 2011)).toEqual({ allowed: true });

      // The first send of the new flow makes the next wait 30 s, not 120 s.
      history.push(send(2020));
      expect(evaluate(history, 2021)).toMatchObject({
        code: 'OTP_RESEND_COOLDOWN',
        until: at(2050),
      });
      expect(evaluate(history, 2050)).toEqual({ allowed: true });
    });

    it('does not reset the flow after a verify of another purpose', () => {
      const history = [send(0), send(1000), send(1010, { purpose: 'signup', verifiedAt: 1020 })];
      expect(evaluate(history, 1030)).toMatchObject({
        code: 'OTP_RESEND_COOLDOWN',
        until: at(1060),
      });
    });

    it('ignores sends of other purposes', () => {
      const history = [send(0), ...[10, 20, 30].map((t) => send(t, { purpose: 'signup' }))];

      // login has one send: 30 s after it, whatever signup did.
      expect(evaluate(history, 31)).toEqual({ allowed: true });
      // and signup's own cooldown (3 sends: 120 s) does not hold back login.
      expect(evaluate(history, 30, 'signup')).toMatchObject({ until: at(150) });
      expect(evaluate(history, 30)).toEqual({ allowed: true });
    });

    it('starts no cooldown for a failed delivery', () => {
      expect(evaluate([send(0, { deliveryStatus: 'failed' })], 1)).toEqual({ allowed: true });
    });

    it('does not escalate the cooldown for failed deliveries', () => {
      // One delivered send, then two failed ones: the next wait is still the first step.
      const history = [
        send(0),
        send(40, { deliveryStatus: 'failed' }),
        send(50, { deliveryStatus: 'failed' }),
      ];
      expect(evaluate(history, 51)).toEqual({ allowed: true });
      history.push(send(60));
      expect(evaluate(history, 61)).toMatchObject({
        code: 'OTP_RESEND_COOLDOWN',
        until: at(120),
      });
    });

    it('starts the cooldown for a send whose delivery is still in progress', () => {
      expect(evaluate([send(0, { deliveryStatus: 'pending' })], 1)).toMatchObject({
        code: 'OTP_RESEND_COOLDOWN',
        until: at(30),
      });
    });
  });

  describe('send caps', () => {
    /** Sends of distinct purposes, so that no resend cooldown is involved. */
    const spread = (times: number[], deliveryStatus: DeliveryStatus = 'sent') =>
      times.map((t, i) => send(t, { purpose: `p${i}`, deliveryStatus }));

    it('allows the 5th send of an hour', () => {
      expect(evaluate(spread([0, 600, 1200, 1800]), 2400)).toEqual({ allowed: true });
    });

    it('refuses the 6th send of an hour until the oldest one is an hour old', () => {
      const history = spread([0, 600, 1200, 1800, 2400]);

      expect(evaluate(history, 3000)).toEqual({
        allowed: false,
        code: 'OTP_SEND_LIMIT',
        until: at(HOUR),
        retryAfterSeconds: 600,
      });
      expect(evaluate(history, HOUR - 0.001)).toMatchObject({
        code: 'OTP_SEND_LIMIT',
        retryAfterSeconds: 1,
      });
      expect(evaluate(history, HOUR)).toEqual({ allowed: true });
    });

    it('counts every purpose toward the hourly cap', () => {
      const history = [
        send(0),
        send(600, { purpose: 'signup' }),
        send(1200, { purpose: 'reset' }),
        send(1800, { purpose: 'signup.phone' }),
        send(2400, { purpose: 'payout' }),
      ];
      expect(evaluate(history, 3000, 'other')).toMatchObject({
        code: 'OTP_SEND_LIMIT',
        until: at(HOUR),
      });
    });

    it('counts failed deliveries toward the caps', () => {
      const history = spread([0, 600, 1200, 1800, 2400], 'failed');
      expect(evaluate(history, 3000)).toMatchObject({
        code: 'OTP_SEND_LIMIT',
        until: at(HOUR),
      });
    });

    it('refuses the 11th send of a day until the oldest one is a day old', () => {
      // Two hours apart: never more than one send in an hour.
      const history = spread(Array.from({ length: 10 }, (_, i) => i * 2 * HOUR));
      const now = 9 * 2 * HOUR + 100;

      expect(evaluate(history, now)).toEqual({
        allowed: false,
        code: 'OTP_SEND_LIMIT',
        until: at(DAY),
        retryAfterSeconds: DAY - now,
      });
      expect(evaluate(history, DAY - 0.001)).toMatchObject({ retryAfterSeconds: 1 });
      expect(evaluate(history, DAY)).toEqual({ allowed: true });
    });

    it('allows the 10th send of a day', () => {
      const history = spread(Array.from({ length: 9 }, (_, i) => i * 2 * HOUR));
      expect(evaluate(history, 8 * 2 * HOUR + 100)).toEqual({ allowed: true });
    });

    it('reopens when enough of the oldest sends have aged out, if the window holds more than the cap', () => {
      // Six sends in the hour (a cap lowered meanwhile): two must age out, so the second decides.
      const history = spread([0, 100, 200, 300, 400, 500]);
      expect(evaluate(history, 600)).toMatchObject({
        code: 'OTP_SEND_LIMIT',
        until: at(HOUR + 100),
      });
      expect(evaluate(history, HOUR)).toMatchObject({ until: at(HOUR + 100) });
      expect(evaluate(history, HOUR + 100)).toEqual({ allowed: true });
    });
  });

  describe('progressive lockout', () => {
    /**
     * `count` exhausted codes of distinct purposes, two hours apart (no cap, no cooldown involved),
     * each exhausted 60 s after its send. Returns the history and the last exhaustion time.
     */
    function exhaustions(count: number, start = 0): { history: SendHistoryEntry[]; last: number } {
      const history = Array.from({ length: count }, (_, i) =>
        send(start + i * 2 * HOUR, { purpose: `p${i}`, exhaustedAt: start + i * 2 * HOUR + 60 }),
      );
      return { history, last: start + (count - 1) * 2 * HOUR + 60 };
    }

    it.each([
      [1, 30],
      [2, 60],
      [3, 300],
      [4, 900],
      [5, 3600],
      [6, 3600],
      [8, 3600],
    ])(
      'after %i exhausted code(s), locks sends for %i s from the last exhaustion',
      (count, wait) => {
        const { history, last } = exhaustions(count);

        expect(evaluate(history, last + 1, 'anything')).toEqual({
          allowed: false,
          code: 'OTP_LOCKED',
          until: at(last + wait),
          retryAfterSeconds: wait - 1,
        });
        expect(evaluate(history, last + wait, 'anything')).toEqual({ allowed: true });
      },
    );

    it('counts exhaustions of every purpose', () => {
      const history = [
        send(0, { purpose: 'signup', exhaustedAt: 60 }),
        send(1000, { purpose: 'reset', exhaustedAt: 1060 }),
      ];
      // Second exhaustion: 60 s, for login as well as for the purposes that were exhausted.
      expect(evaluate(history, 1061)).toMatchObject({ code: 'OTP_LOCKED', until: at(1120) });
    });

    it('counts only exhaustions of the last 24 h', () => {
      const history = [
        send(-DAY - 1000, { purpose: 'a', exhaustedAt: -DAY - 900 }),
        send(-DAY + 400, { purpose: 'b', exhaustedAt: -DAY + 500 }),
        send(100, { purpose: 'c', exhaustedAt: 160 }),
      ];
      // At 161, the exhaustion at -DAY-900 is older than 24 h and the one at -DAY+500 is not:
      // the one at 160 is the 2nd of the window (60 s), not the 3rd (300 s).
      expect(evaluate(history, 161)).toMatchObject({ code: 'OTP_LOCKED', until: at(220) });
    });

    it('forgets an exhaustion once it is 24 h old', () => {
      const history = [
        send(0, { purpose: 'a', exhaustedAt: 60 }),
        send(DAY, { purpose: 'b', exhaustedAt: DAY + 30 }),
      ];
      // At DAY + 31 the first exhaustion (at 60) is still inside the window: second step, 60 s.
      expect(evaluate(history, DAY + 31)).toMatchObject({ until: at(DAY + 90) });
      // At DAY + 60 it leaves the window: only one exhaustion counts, 30 s from DAY + 30.
      expect(evaluate(history, DAY + 60)).toEqual({ allowed: true });
    });

    it('counts only exhaustions since the last successful verify of the destination', () => {
      const history = [
        send(0, { purpose: 'a', exhaustedAt: 60 }),
        send(100, { purpose: 'b', exhaustedAt: 160 }),
        // A verify of any purpose clears the record...
        send(7000, { purpose: 'c', verifiedAt: 7010 }),
        send(8000, { purpose: 'd', exhaustedAt: 8060 }),
      ];
      // ...so this is a first exhaustion: 30 s, not the third step's 300 s.
      expect(evaluate(history, 8061)).toMatchObject({ code: 'OTP_LOCKED', until: at(8090) });
      expect(evaluate(history, 8090)).toEqual({ allowed: true });
    });

    it('ends a lockout at once when the destination verifies', () => {
      const history = [
        send(0, { purpose: 'a', exhaustedAt: 60 }),
        send(100, { purpose: 'b', exhaustedAt: 160 }),
        send(170, { purpose: 'c', verifiedAt: 180 }),
      ];
      expect(evaluate(history, 181)).toEqual({ allowed: true });
    });

    it('counts the wait from the exhaustion, not from the send', () => {
      const history = [send(0, { purpose: 'a', exhaustedAt: 250 })];
      expect(evaluate(history, 251)).toMatchObject({ code: 'OTP_LOCKED', until: at(280) });
    });
  });

  describe('several limits at once', () => {
    it.each([
      {
        name: 'a long cooldown over a short lockout',
        // 4 sends of login (next wait 300 s), the last exhausted at 3010 (lockout 30 s).
        history: [send(0), send(1000), send(2000), send(3000, { exhaustedAt: 3010 })],
        now: 3011,
        code: 'OTP_RESEND_COOLDOWN',
        until: 3300,
      },
      {
        name: 'a long lockout over a short cooldown',
        // 4th exhaustion (900 s) on the first send of login's flow (30 s).
        history: [
          send(0, { purpose: 'a', exhaustedAt: 60 }),
          send(7200, { purpose: 'b', exhaustedAt: 7260 }),
          send(14_400, { purpose: 'c', exhaustedAt: 14_460 }),
          send(21_600, { exhaustedAt: 21_610 }),
        ],
        now: 21_611,
        code: 'OTP_LOCKED',
        until: 22_510,
      },
      {
        name: 'the hourly cap over a cooldown',
        // 5 sends in the hour, the last of login: cap until 3600, cooldown until 3030.
        history: [
          send(0, { purpose: 'a' }),
          send(600, { purpose: 'b' }),
          send(1200, { purpose: 'c' }),
          send(1800, { purpose: 'd' }),
          send(3000),
        ],
        now: 3001,
        code: 'OTP_SEND_LIMIT',
        until: HOUR,
      },
      {
        name: 'a cooldown over the hourly cap',
        // 5 sends of login 0..3590: the 5th's cooldown (300 s, to 3890) outlasts the cap (3600).
        history: [send(0), send(30), send(90), send(210), send(3590)],
        now: 3591,
        code: 'OTP_RESEND_COOLDOWN',
        until: 3890,
      },
      {
        name: 'the daily cap over a lockout',
        history: Array.from({ length: 10 }, (_, i) =>
          send(i * 2 * HOUR, {
            purpose: `p${i}`,
            exhaustedAt: i === 9 ? i * 2 * HOUR + 60 : undefined,
          }),
        ),
        now: 9 * 2 * HOUR + 61,
        code: 'OTP_SEND_LIMIT',
        until: DAY,
      },
    ])('names $name', ({ history, now, code, until }) => {
      expect(evaluate(history, now)).toEqual({
        allowed: false,
        code,
        until: at(until),
        retryAfterSeconds: Math.ceil(until - now),
      });
    });
  });

  describe('retryAfterSeconds', () => {
    const history = [send(0)];

    it.each([
      [0.001, 30],
      [1.5, 29],
      [29, 1],
      [29.5, 1],
      [29.999, 1],
    ])('at %f s after a send, is %i (whole seconds, rounded up, at least 1)', (now, expected) => {
      expect(evaluate(history, now)).toMatchObject({ retryAfterSeconds: expected });
    });
  });
});

describe('secondsUntil', () => {
  it.each([
    [10_000, 10],
    [9_001, 10],
    [1, 1],
    [0, 1],
    [-5_000, 1],
  ])('from %i ms before the end, is %i', (ms, expected) => {
    expect(secondsUntil(new Date(T0 + ms), new Date(T0))).toBe(expected);
  });
});

describe('nextSendAt', () => {
  it('is now when a send is allowed', () => {
    expect(nextAt([send(0)], 'login', at(30))).toEqual(at(30));
    expect(nextAt([], 'login', at(5))).toEqual(at(5));
  });

  it('is the end of the cooldown after a send', () => {
    expect(nextAt([send(0)], 'login', at(1))).toEqual(at(30));
  });

  it('is the end of the limit that ends last', () => {
    const history = [send(0), send(100, { purpose: 'b', exhaustedAt: 200 })];
    // Cooldown of login ends at 30; first exhaustion locks until 230.
    expect(nextAt(history, 'login', at(201))).toEqual(at(230));
  });
});

describe('step', () => {
  const steps = [30, 60, 120, 300];

  it.each([
    [0, 30],
    [1, 60],
    [2, 120],
    [3, 300],
    [4, 300],
    [100, 300],
  ])('step %i is %i (the last value repeats)', (index, expected) => {
    expect(step(steps, index)).toBe(expected);
  });

  it('repeats a single value', () => {
    expect(step([45], 0)).toBe(45);
    expect(step([45], 7)).toBe(45);
  });

  it('is 0 for an empty list', () => {
    expect(step([], 0)).toBe(0);
  });
});

describe('withSend', () => {
  // The marks after a send, shifted from the marks before it, must equal the marks recomputed from
  // every row: that is what lets the service compute resendAvailableAt without reading again.
  it.each([
    [{ maxSendsPerHour: 1, maxSendsPerDay: 1 }, 0],
    [{ maxSendsPerHour: 1, maxSendsPerDay: 1 }, 3],
    [{ maxSendsPerHour: 2, maxSendsPerDay: 3 }, 1],
    [{ maxSendsPerHour: 5, maxSendsPerDay: 10 }, 4],
    [{ maxSendsPerHour: 5, maxSendsPerDay: 10 }, 9],
    [{ maxSendsPerHour: 5, maxSendsPerDay: 10 }, 12],
  ])('shifts the cap marks like a recount (%o, %i earlier sends)', (caps, count) => {
    const policy = { ...CONTRACT_POLICY, ...caps };
    const now = at(100_000);
    const rows = Array.from({ length: count }, (_, i) => send(100_000 - 700 * (i + 1)));
    const sent = send(100_000);
    const shifted = withSend(summarizeHistory(rows, now, policy), sent, policy);
    const recount = summarizeHistory([...rows, sent], now, policy);
    expect(shifted.hourly.atCap).toEqual(recount.hourly.atCap);
    expect(shifted.daily.atCap).toEqual(recount.daily.atCap);
    expect(nextSendAt(shifted, 'login', now, policy)).toEqual(
      nextSendAt(recount, 'login', now, policy),
    );
  });
});

describe('firstSendResendAfterMs', () => {
  /** What a send that read an empty history at `now` would store as its next-send time. */
  const readThenDecide = (policy: SendPolicy, now: Date): number | null => {
    if (!evaluateSend(EMPTY_HISTORY, 'login', now, policy).allowed) return null;
    const sent = { purpose: 'login', createdAt: now, deliveryStatus: 'pending' as const };
    const next = nextSendAt(
      withSend(EMPTY_HISTORY, { ...sent, verifiedAt: null, exhaustedAt: null }, policy),
      'login',
      now,
      policy,
    );
    return next.getTime() - now.getTime();
  };

  it("is the first cooldown step under the contract's defaults", () => {
    expect(firstSendResendAfterMs('login', CONTRACT_POLICY)).toBe(30_000);
  });

  it('is the hour when one send an hour is the cap, and the day when one a day is', () => {
    expect(firstSendResendAfterMs('login', { ...CONTRACT_POLICY, maxSendsPerHour: 1 })).toBe(
      HOUR * 1000,
    );
    expect(
      firstSendResendAfterMs('login', {
        ...CONTRACT_POLICY,
        maxSendsPerHour: 1,
        maxSendsPerDay: 1,
      }),
    ).toBe(DAY * 1000);
  });

  it('is 0 with no cooldown and room under the caps', () => {
    expect(
      firstSendResendAfterMs('login', { ...CONTRACT_POLICY, resendCooldownSeconds: [0] }),
    ).toBe(0);
  });

  it('is what reading an empty history and deciding gives, for any policy and any moment', () => {
    let seed = 7;
    const next = (n: number): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 500; i += 1) {
      const policy: SendPolicy = {
        resendCooldownSeconds: Array.from({ length: 1 + next(4) }, () => next(400)),
        lockoutStepSeconds: Array.from({ length: 1 + next(4) }, () => next(4000)),
        maxSendsPerHour: 1 + next(6),
        maxSendsPerDay: 1 + next(12),
      };
      const now = new Date(T0 + next(10 ** 9) * 1000);
      expect(firstSendResendAfterMs('login', policy)).toBe(readThenDecide(policy, now));
    }
  });
});
