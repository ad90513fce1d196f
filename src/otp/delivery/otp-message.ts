import type { OtpChannel } from '../otp.types.js';

/** The text of a code message. Voice reads digits one by one, so they are spaced out. */
export function formatOtpMessage(input: {
  appName: string;
  code: string;
  channel: OtpChannel;
  ttlSeconds: number;
}): string {
  const minutes = Math.max(1, Math.round(input.ttlSeconds / 60));
  const code = input.channel === 'voice' ? input.code.split('').join(' ') : input.code;
  const lifetime = `${minutes} minute${minutes === 1 ? '' : 's'}`;
  return `${input.appName} verification code is ${code}. It expires in ${lifetime}. Do not share it.`;
}
