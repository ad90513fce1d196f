import { describe, expect, it } from '@jest/globals';
import { formatOtpMessage } from './otp-message.js';

const base = { appName: 'Your', code: '012345', channel: 'sms', ttlSeconds: 300 } as const;

describe('formatOtpMessage', () => {
  it('writes the code, its lifetime in minutes and a warning', () => {
    expect(formatOtpMessage(base)).toBe(
      'Your verification code is 012345. It expires in 5 minutes. Do not share it.',
    );
  });

  it('names the app', () => {
    expect(formatOtpMessage({ ...base, appName: 'Acme' })).toBe(
      'Acme verification code is 012345. It expires in 5 minutes. Do not share it.',
    );
  });

  it.each([
    [60, '1 minute.'],
    [120, '2 minutes.'],
    [600, '10 minutes.'],
    [3600, '60 minutes.'],
  ])('says a %i s lifetime is %s', (ttlSeconds, expected) => {
    expect(formatOtpMessage({ ...base, ttlSeconds })).toContain(`It expires in ${expected}`);
  });

  it.each([
    [1, '1 second.'],
    [20, '20 seconds.'],
    [59, '59 seconds.'],
    [90, '90 seconds.'],
    [150, '2 minutes.'],
  ])('never overstates a %i s lifetime: %s', (ttlSeconds, expected) => {
    expect(formatOtpMessage({ ...base, ttlSeconds })).toContain(`It expires in ${expected}`);
  });

  it.each(['sms', 'email'] as const)('keeps the digits together for %s', (channel) => {
    expect(formatOtpMessage({ ...base, channel })).toContain(' is 012345.');
  });

  it('spaces the digits out for voice, so they are read one by one', () => {
    expect(formatOtpMessage({ ...base, channel: 'voice' })).toBe(
      'Your verification code is 0 1 2 3 4 5. It expires in 5 minutes. Do not share it.',
    );
  });

  it('keeps every digit of a long code, leading zeros included', () => {
    expect(formatOtpMessage({ ...base, code: '0000012345', channel: 'voice' })).toContain(
      ' is 0 0 0 0 0 1 2 3 4 5.',
    );
  });
});
