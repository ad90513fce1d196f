import { describe, expect, it } from '@jest/globals';
import { resolveOtpOptions } from '../otp.options.js';
import {
  hardLockFor,
  PURPOSE_PRESETS,
  PurposePolicies,
  purposePoliciesOf,
  purposeProblems,
  tighterSteps,
  type BasePolicy,
  type PurposePolicy,
} from './purpose-policy.js';

/** The module's defaults (the contract's "Policy defaults"), as a purpose starts from them. */
const BASE: BasePolicy = {
  ttlSeconds: 300,
  codeLength: 6,
  maxAttempts: 3,
  resendCooldownSeconds: [30, 60, 120, 300],
  lockoutStepSeconds: [30, 60, 300, 900, 3600],
  maxSendsPerHour: 5,
  maxSendsPerDay: 10,
  channels: ['sms', 'voice', 'email'],
};

/** What a purpose without an entry gets: the module's numbers, every rule of issue 10 off. */
const FALLBACK: Partial<PurposePolicy> = {
  ttlSeconds: 300,
  codeLength: 6,
  maxAttempts: 3,
  resendCooldownSeconds: [30, 60, 120, 300],
  lockoutStepSeconds: [30, 60, 300, 900, 3600],
  channels: ['sms', 'voice', 'email'],
  hardLockout: null,
  autoResend: false,
  bindToClient: null,
};

const T0 = Date.UTC(2030, 0, 1, 12, 0, 0);
/** A moment `seconds` after T0 (negative: before). */
const at = (seconds: number): Date => new Date(T0 + seconds * 1000);
const HOUR = 3_600;
const DAY = 86_400;

describe('PurposePolicies', () => {
  it('gives a purpose without an entry the module policy, with every rule off', () => {
    const policies = new PurposePolicies(BASE, {}, false);
    expect(policies.of('anything')).toMatchObject(FALLBACK);
    expect(policies.fallback).toMatchObject(FALLBACK);
  });

  it('refuses a purpose without an entry when strict, and still knows the listed ones', () => {
    const policies = new PurposePolicies(BASE, { login: 'login' }, true);
    expect(policies.of('anything')).toBeNull();
    expect(policies.of('login')?.ttlSeconds).toBe(120);
  });

  it('resolves each preset by name over the module policy', () => {
    const policies = new PurposePolicies(
      BASE,
      {
        login: 'login',
        pay: 'transaction',
        recover: 'account-recovery',
        confirm: 'email-verification',
      },
      false,
    );
    expect(policies.of('login')).toMatchObject({ ...FALLBACK, ttlSeconds: 120 });
    expect(policies.of('pay')).toMatchObject({
      ...FALLBACK,
      ttlSeconds: 300,
      maxAttempts: 3,
      channels: ['sms', 'voice'],
      bindToClient: 'ip+user-agent',
    });
    expect(policies.of('recover')).toMatchObject({
      ...FALLBACK,
      ttlSeconds: 900,
      channels: ['email', 'sms', 'voice'],
      hardLockout: { afterExhaustedCodes: 3 },
    });
    expect(policies.of('confirm')).toMatchObject({
      ...FALLBACK,
      ttlSeconds: 1800,
      channels: ['email'],
    });
  });

  it('lays a purpose’s own fields over its preset, and ignores undefined ones', () => {
    const policies = new PurposePolicies(
      BASE,
      {
        pay: { preset: 'transaction', ttlSeconds: 60, bindToClient: null, codeLength: undefined },
        own: { codeLength: 8, maxAttempts: 5, resendCooldownSeconds: [10], autoResend: true },
      },
      false,
    );
    expect(policies.of('pay')).toMatchObject({
      ...FALLBACK,
      ttlSeconds: 60,
      channels: ['sms', 'voice'],
      bindToClient: null,
    });
    expect(policies.of('own')).toMatchObject({
      ...FALLBACK,
      codeLength: 8,
      maxAttempts: 5,
      resendCooldownSeconds: [10],
      autoResend: true,
    });
  });

  it('lets a purpose tighten the lockout steps, never loosen them', () => {
    const policies = new PurposePolicies(
      BASE,
      { loose: { lockoutStepSeconds: [0] }, tight: { lockoutStepSeconds: [600, 30] } },
      false,
    );
    expect(policies.of('loose')?.lockoutStepSeconds).toEqual([30, 60, 300, 900, 3600]);
    expect(policies.of('tight')?.lockoutStepSeconds).toEqual([600, 60, 300, 900, 3600]);
  });

  it('keeps a purpose’s channels within the module’s', () => {
    const policies = new PurposePolicies(
      { ...BASE, channels: ['email', 'sms'] },
      { recover: 'account-recovery', pay: 'transaction' },
      false,
    );
    expect(policies.of('recover')?.channels).toEqual(['email', 'sms']);
    expect(policies.of('pay')?.channels).toEqual(['sms']);
  });

  it('gives each purpose its own cooldowns and lockout, and the destination’s shared caps', () => {
    const policies = new PurposePolicies(
      { ...BASE, maxSendsPerHour: 4, maxSendsPerDay: 7 },
      { fast: { resendCooldownSeconds: [5], lockoutStepSeconds: [90] } },
      false,
    );
    const fast = policies.of('fast');
    if (!fast) throw new Error('fast has a policy');
    expect(policies.sendPolicy(fast)).toEqual({
      resendCooldownSeconds: [5],
      lockoutStepSeconds: [90, 90, 300, 900, 3600],
      maxSendsPerHour: 4,
      maxSendsPerDay: 7,
    });
    expect(policies.sendPolicy(policies.fallback)).toEqual({
      resendCooldownSeconds: BASE.resendCooldownSeconds,
      lockoutStepSeconds: BASE.lockoutStepSeconds,
      maxSendsPerHour: 4,
      maxSendsPerDay: 7,
    });
  });

  it('lists every policy in force, the fallback first', () => {
    const policies = new PurposePolicies(BASE, { login: 'login', pay: 'transaction' }, true);
    expect(policies.all().map((p) => p.ttlSeconds)).toEqual([300, 120, 300]);
  });

  it('is built once per options object', () => {
    const options = resolveOtpOptions({ purposes: { login: 'login' } });
    expect(purposePoliciesOf(options)).toBe(purposePoliciesOf(options));
    expect(purposePoliciesOf(options).of('login')?.ttlSeconds).toBe(120);
    const other = resolveOtpOptions({ purposes: { login: { ttlSeconds: 90 } } });
    expect(purposePoliciesOf(other).of('login')?.ttlSeconds).toBe(90);
  });
});

describe('PURPOSE_PRESETS', () => {
  it('are the four the issue names, with its numbers', () => {
    expect(Object.keys(PURPOSE_PRESETS).sort()).toEqual([
      'account-recovery',
      'email-verification',
      'login',
      'transaction',
    ]);
    expect(PURPOSE_PRESETS.login.ttlSeconds).toBe(120);
    expect(PURPOSE_PRESETS.transaction).toMatchObject({ ttlSeconds: 300, maxAttempts: 3 });
    expect(PURPOSE_PRESETS['account-recovery'].ttlSeconds).toBe(900);
    expect(PURPOSE_PRESETS['email-verification']).toEqual({
      ttlSeconds: 1800,
      channels: ['email'],
    });
  });

  it('keep sign-in and payment codes within NIST SP 800-63B’s 10 minutes', () => {
    expect(PURPOSE_PRESETS.login.ttlSeconds).toBeLessThanOrEqual(600);
    expect(PURPOSE_PRESETS.transaction.ttlSeconds).toBeLessThanOrEqual(600);
  });

  it('pass their own validation', () => {
    expect(purposeProblems({ ...PURPOSE_PRESETS }, ['sms', 'voice', 'email'])).toEqual([]);
  });
});

describe('tighterSteps', () => {
  it('takes the larger step at each position', () => {
    expect(tighterSteps([30, 60, 300], [10, 120, 300])).toEqual([30, 120, 300]);
  });

  it('repeats the last value of the shorter list', () => {
    expect(tighterSteps([30, 60], [0, 0, 0, 500])).toEqual([30, 60, 60, 500]);
    expect(tighterSteps([30, 60, 300, 900], [100])).toEqual([100, 100, 300, 900]);
  });

  it('changes nothing when the purpose’s steps are looser', () => {
    expect(tighterSteps([30, 60, 300, 900, 3600], [0])).toEqual([30, 60, 300, 900, 3600]);
  });
});

describe('hardLockFor', () => {
  const now = at(0);
  const forever = { afterExhaustedCodes: 3 };
  const tenMinutes = { afterExhaustedCodes: 2, durationSeconds: 600 };

  it('never locks without a policy', () => {
    expect(hardLockFor([at(-10), at(-20), at(-30)], at(-5), null, now)).toBeNull();
  });

  it('does not lock below the count', () => {
    expect(hardLockFor([at(-10), at(-20)], null, forever, now)).toBeNull();
  });

  it('locks from the newest exhausted code, with no end, once the count is reached', () => {
    expect(hardLockFor([at(-30), at(-10), at(-20)], null, forever, now)).toEqual({
      since: at(-10),
      until: null,
    });
  });

  it('counts only the last 24 h', () => {
    expect(hardLockFor([at(-DAY - 1), at(-20), at(-10)], null, forever, now)).toBeNull();
    expect(hardLockFor([at(-DAY + 1), at(-20), at(-10)], null, forever, now)).not.toBeNull();
  });

  it('ends a lock with a duration that long after its newest exhausted code', () => {
    expect(hardLockFor([at(-100), at(-50)], null, tenMinutes, now)).toEqual({
      since: at(-50),
      until: at(550),
    });
    expect(hardLockFor([at(-700), at(-600)], null, tenMinutes, now)).toBeNull();
    expect(hardLockFor([at(-700), at(-599)], null, tenMinutes, now)?.until).toEqual(at(1));
  });

  it('keeps a recorded lock after its history is gone', () => {
    expect(hardLockFor([], at(-2 * DAY), forever, now)).toEqual({
      since: at(-2 * DAY),
      until: null,
    });
    expect(hardLockFor([], at(-HOUR), tenMinutes, now)).toBeNull();
    expect(hardLockFor([], at(-60), tenMinutes, now)).toEqual({ since: at(-60), until: at(540) });
  });

  it('starts from the later of the recorded lock and the computed one', () => {
    expect(hardLockFor([at(-100), at(-50)], at(-30), tenMinutes, now)?.since).toEqual(at(-30));
    expect(hardLockFor([at(-100), at(-50)], at(-400), tenMinutes, now)?.since).toEqual(at(-50));
  });
});

describe('purposeProblems', () => {
  const all = ['sms', 'voice', 'email'] as const;

  it('accepts presets, policies over presets, and plain policies', () => {
    expect(
      purposeProblems(
        {
          login: 'login',
          pay: { preset: 'transaction', ttlSeconds: 120 },
          'reset.v2': {
            ttlSeconds: 60,
            codeLength: 8,
            maxAttempts: 5,
            resendCooldownSeconds: [0, 10],
            lockoutStepSeconds: [60],
            channels: ['email'],
            hardLockout: { afterExhaustedCodes: 2, durationSeconds: 600 },
            autoResend: true,
            bindToClient: 'ip',
          },
          off: { hardLockout: null, bindToClient: null },
        },
        all,
      ),
    ).toEqual([]);
  });

  it('refuses what is not an object of purposes', () => {
    for (const value of [null, 'login', ['login'], 3]) {
      expect(purposeProblems(value, all)).toEqual([
        'purposes must be an object of purpose name to preset name or policy',
      ]);
    }
  });

  it('names the purpose and the fix for each bad entry', () => {
    const problems = purposeProblems(
      {
        Login: 'login',
        a: 'payment',
        b: 42,
        c: { ttl: 60 },
        d: { preset: 'nope' },
        e: { ttlSeconds: 0, maxAttempts: 1.5 },
        f: { codeLength: 3 },
        g: { codeLength: 11 },
        h: { resendCooldownSeconds: [] },
        i: { lockoutStepSeconds: [-1] },
        j: { channels: ['fax'] },
        k: { hardLockout: { afterExhaustedCodes: 0 } },
        l: { hardLockout: { afterExhaustedCodes: 2, durationSeconds: 0 } },
        m: { autoResend: 'yes' },
        n: { bindToClient: 'cookie' },
      },
      all,
    );
    const expected: Array<[string, RegExp]> = [
      ['purposes.Login', /purpose must match/],
      ['purposes.a', /must be a preset \(login, transaction, account-recovery/],
      ['purposes.b', /must be a preset/],
      ['purposes.c', /unknown keys ttl/],
      ['purposes.d.preset', /must be one of login/],
      ['purposes.e.ttlSeconds', /positive integer/],
      ['purposes.e.maxAttempts', /positive integer/],
      ['purposes.f.codeLength', /from 4 to 10/],
      ['purposes.g.codeLength', /from 4 to 10/],
      ['purposes.h.resendCooldownSeconds', /non-empty list of whole seconds/],
      ['purposes.i.lockoutStepSeconds', /non-empty list of whole seconds/],
      ['purposes.j.channels', /list of sms, voice, email/],
      ['purposes.k.hardLockout', /afterExhaustedCodes: positive integer/],
      ['purposes.l.hardLockout', /durationSeconds\?: positive integer/],
      ['purposes.m.autoResend', /boolean/],
      ['purposes.n.bindToClient', /ip, user-agent, ip\+user-agent/],
    ];
    for (const [at, pattern] of expected) {
      expect(problems.some((p) => p.startsWith(at) && pattern.test(p))).toBe(true);
    }
    expect(problems).toHaveLength(expected.length);
  });

  it('refuses a purpose whose channels are all off in the module', () => {
    expect(purposeProblems({ pay: 'transaction' }, ['email'])).toEqual([]);
    expect(purposeProblems({ pay: { channels: ['sms', 'voice'] } }, ['email'])).toEqual([
      "purposes.pay.channels has none of the module's channels (email)",
    ]);
  });
});

describe('resolveOtpOptions with purposes', () => {
  it('stops the module with the purpose problems', () => {
    expect(() => resolveOtpOptions({ purposes: { pay: 'payment' as 'login' } })).toThrow(
      /purposes\.pay must be a preset/,
    );
  });

  it('needs an entry for the default purpose when strict', () => {
    expect(() =>
      resolveOtpOptions({ strictPurposes: true, purposes: { pay: 'transaction' } }),
    ).toThrow(/strictPurposes needs an entry in purposes for defaultPurpose 'login'/);
    expect(() =>
      resolveOtpOptions({ strictPurposes: true, purposes: { login: 'login' } }),
    ).not.toThrow();
  });
});
