import type { BenchDb } from './bench-db.js';

/**
 * Plausible history rows, generated in SQL: timestamps spread uniformly over the last 24 h (the
 * window every history query reads; sends at least 11 minutes old, so every later timestamp of a
 * row, up to its token's expiry 620 s on, is in the past too), and none active, so the one-active-code-per-flow index
 * holds. Of every 10 rows: 6 verified (token issued and used), 3 superseded by a resend, 1
 * exhausted by wrong guesses. Delivery succeeded, hashes are gone (as the app leaves them).
 */
function historyInsert(destinationSql: string, tokenSeed: string): string {
  return `
    INSERT INTO otp_requests (id, destination, purpose, channel, code_hash, code_length,
      max_attempts, attempts_used, created_at, expires_at, resend_available_at, delivery_status,
      delivered_at, verified_at, exhausted_at, superseded_at, token_hash, token_expires_at,
      token_used_at)
    SELECT gen_random_uuid(), ${destinationSql}, CASE WHEN g % 7 = 0 THEN 'signup' ELSE 'login' END,
      'email', NULL, 6, 3, CASE WHEN k < 6 THEN 1 WHEN k = 9 THEN 3 ELSE 0 END,
      t, t + interval '300 seconds', t + interval '30 seconds', 'sent', t + interval '200 ms',
      CASE WHEN k < 6 THEN t + interval '20 seconds' END,
      CASE WHEN k = 9 THEN t + interval '60 seconds' END,
      CASE WHEN k BETWEEN 6 AND 8 THEN t + interval '45 seconds' END,
      CASE WHEN k < 6 THEN encode(sha256(convert_to('${tokenSeed}' || g, 'UTF8')), 'hex') END,
      CASE WHEN k < 6 THEN t + interval '620 seconds' END,
      CASE WHEN k < 6 THEN t + interval '25 seconds' END
    FROM (SELECT g, g % 10 AS k,
            now() - interval '11 minutes' - random() * interval '23 hours 49 minutes' AS t
            FROM generate_series(1, $1::int) AS g) AS rows`;
}

/** `rows` history rows of other destinations, about 4 per destination (a realistic day). */
export async function seedOtherDestinations(db: BenchDb, rows: number): Promise<void> {
  const destinations = Math.max(1, Math.floor(rows / 4));
  await db.query(historyInsert(`'hist-' || (g % ${destinations}) || '@history.example'`, 'h'), [
    rows,
  ]);
  await db.query('VACUUM ANALYZE otp_requests');
}

/** `rows` history rows, all in the last 24 h, for one destination. */
export async function seedDestination(
  db: BenchDb,
  destination: string,
  rows: number,
): Promise<void> {
  await db.query(historyInsert(`$2::varchar`, 'd'), [rows, destination]);
  await db.query('VACUUM ANALYZE otp_requests');
}
