import { randomInt } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import type { Response } from 'supertest';

/**
 * Helpers for the race tests: fire many requests at once, then summarize what came back.
 *
 * A summary key is the status, followed by the contract `code` when the body has one:
 * `{ '202': 1, '429 OTP_RESEND_COOLDOWN': 19 }`. Comparing a whole summary with `toEqual` checks in
 * one assertion both the counts and that nothing else (a 500, say) came back.
 */

/** The summary key of one answer: `'202'`, `'429 OTP_RESEND_COOLDOWN'`, `'500 INTERNAL_ERROR'`. */
export function outcome(response: Response): string {
  const code: unknown = (response.body as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? `${response.status} ${code}` : String(response.status);
}

/** How many answers had each outcome. */
export function tally(responses: readonly Response[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const response of responses) {
    const key = outcome(response);
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

/** Outcome counts as one line, sorted by outcome: `202 x1, 429 OTP_RESEND_COOLDOWN x19`. */
export const showCounts = (counts: Record<string, number>): string =>
  Object.entries(counts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, n]) => `${key} x${n}`)
    .join(', ');

/** The answers with one outcome. */
export const withOutcome = (responses: readonly Response[], key: string): Response[] =>
  responses.filter((response) => outcome(response) === key);

/**
 * Distinct codes of `length` digits, none equal to `code`: wrong guesses that a collision can never
 * turn into a right one.
 */
export function wrongCodes(code: string, count: number): string[] {
  const modulus = 10 ** code.length;
  const base = Number(code);
  const codes: string[] = [];
  // A prime step below the modulus visits `count` distinct residues, none of them `base` itself.
  for (let i = 1; i <= count; i++) {
    codes.push(String((base + i * 7919) % modulus).padStart(code.length, '0'));
  }
  return codes;
}

/**
 * A random San Francisco number, as E.164 and as written nationally (both normalize to the first).
 * The exchange starts with 2-9, so libphonenumber-js always accepts it; `uniquePhone()` from
 * test-app.ts can produce a 0/1 exchange, which the routes rightly refuse (400).
 */
export function racePhone(): { e164: string; national: string } {
  const exchange = randomInt(200, 1000);
  const line = String(randomInt(0, 10_000)).padStart(4, '0');
  return { e164: `+1415${exchange}${line}`, national: `(415) ${exchange}-${line}` };
}

/**
 * Writes what a race observed as one JSON line to the file named by `RACE_LOG`, when it is set:
 * the figures an issue note quotes (`RACE_LOG=/tmp/races.jsonl npx jest test/races.e2e-spec.ts`).
 * Does nothing otherwise.
 */
export function recordRace(name: string, figures: Record<string, unknown>): void {
  const file = process.env.RACE_LOG;
  if (file) appendFileSync(file, `${JSON.stringify({ race: name, ...figures })}\n`);
}
