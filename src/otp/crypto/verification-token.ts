import { RandomPool } from './random-pool.js';
import { sha256Hex } from './sha256.js';

const TOKEN_BYTES = 32;
const pool = new RandomPool();

/**
 * Verification tokens: 256 random bits, handed out once, stored only as SHA-256. A fast hash is
 * right here (unlike for codes): the token has far too much entropy to brute-force, and a
 * deterministic hash lets the guard find and consume the row in one indexed UPDATE, so no token is
 * ever compared byte by byte in application code.
 */
export function createVerificationToken(): { token: string; hash: string } {
  const token = pool.base64url(TOKEN_BYTES);
  return { token, hash: hashVerificationToken(token) };
}

export function hashVerificationToken(token: string): string {
  return sha256Hex(token);
}
