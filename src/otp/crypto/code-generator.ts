import { randomInt } from 'node:crypto';

/** A uniformly random code of `length` ASCII digits from the CSPRNG; leading zeros are kept. */
export function generateCode(length: number): string {
  let code = '';
  for (let i = 0; i < length; i++) code += String(randomInt(10));
  return code;
}
