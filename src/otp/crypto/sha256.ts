import { hash } from 'node:crypto';

/**
 * SHA-256 of a string, in hex. One-shot (`crypto.hash`): no Hash object a call, about a third of
 * the cost of `createHash().update().digest()` on the short inputs the request paths hash.
 */
export function sha256Hex(text: string): string {
  return hash('sha256', text, 'hex');
}
