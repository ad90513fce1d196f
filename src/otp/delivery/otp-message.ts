import type { OtpChannel } from '../otp.types.js';

/** The text of a code message. Voice reads digits one by one, so they are spaced out. */
export function formatOtpMessage(input: {
  appName: string;
  code: string;
  channel: OtpChannel;
  ttlSeconds: number;
}): string {
  const code = input.channel === 'voice' ? input.code.split('').join(' ') : input.code;
  return `${input.appName} verification code is ${code}. It expires in ${lifetime(input.ttlSeconds)}. Do not share it.`;
}

/** A lifetime in words, never longer than the real one (rounding up would promise time it lacks). */
function lifetime(seconds: number): string {
  const plural = (n: number, unit: string): string => `${n} ${unit}${n === 1 ? '' : 's'}`;
  if (seconds % 60 !== 0 && seconds < 120) return plural(seconds, 'second');
  return plural(Math.floor(seconds / 60), 'minute');
}
