import { randomUUID } from 'node:crypto';
import type { AppHandle } from './app-handle.js';
import type { BenchDb } from './bench-db.js';
import { FAILING_PREFIX } from './capturing-provider.js';
import type { Figures } from './figures.js';
import { DESTINATION_UNDER_TEST } from './growth.js';
import { wrongCode } from './hash-ceiling.js';
import { expectStatus, post, request } from './http.js';
import { labelOf, sqlLiteral, touchesOtpTable } from './statements.js';

/**
 * Takes every path of the app once, capturing the SQL it sends (text and parameters), on the
 * grown table and against the destination under test (10,000 rows in its last 24 h): send,
 * idempotent send and its replay, right verify, token use on the guarded route, status, verify
 * with nothing active (410), wrong guesses to exhaustion (401, 401, 429), failed delivery (503,
 * to another destination), and the retention purge.
 */
async function exercise(app: AppHandle): Promise<void> {
  const port = app.port;
  const destination = DESTINATION_UNDER_TEST;
  const code = async (): Promise<string> => {
    const found = (await app.call('takeCodes', {})).reverse().find(([d]) => d === destination);
    if (!found) throw new Error('no code captured');
    return found[1];
  };
  // First, so that the plans kept for the statements it shares with the others (one set of
  // parameters per pattern of nulls, the last one seen) are those of the destination under test.
  const failing = `${FAILING_PREFIX}${randomUUID()}@bench.example`;
  expectStatus(await post(port, '/otp/send', { destination: failing }), 503, 'failed delivery');
  const sent = expectStatus(await post(port, '/otp/send', { destination }), 202, 'send');
  const right = await code();
  const verified = expectStatus(
    await post(port, '/otp/verify', { destination, code: right }),
    200,
    'verify',
  );
  const token = String(verified.body.verificationToken);
  expectStatus(
    await post(port, '/example/protected', {}, { 'x-otp-token': token }),
    200,
    'guarded route',
  );
  expectStatus(await post(port, '/otp/verify', { destination, code: right }), 410, 'used code');
  expectStatus(
    await request(port, 'GET', `/otp/requests/${String(sent.body.requestId)}`),
    200,
    'status',
  );
  const key = { 'idempotency-key': randomUUID() };
  expectStatus(await post(port, '/otp/send', { destination }, key), 202, 'idempotent send');
  expectStatus(await post(port, '/otp/send', { destination }, key), 202, 'idempotent replay');
  const wrong = wrongCode(await code());
  for (const status of [401, 401, 429]) {
    expectStatus(await post(port, '/otp/verify', { destination, code: wrong }), status, 'guess');
  }
  await app.call('purge', {});
}

const SCAN = /(?:Seq Scan|Index Scan|Index Only Scan|Bitmap Heap Scan|Bitmap Index Scan)[^(]*/g;

/** Plans Postgres builds for a prepared statement before `auto` may settle on a generic one. */
const CUSTOM_PLANS_FIRST = 5;

/**
 * The statement's plan as the app's sessions run it: prepared, under `plan_cache_mode = auto` (see
 * `OtpConnection`), once Postgres has built its first custom plans and chosen between a generic
 * plan and planning each call; executed (read-only statements) with the parameters the app sent.
 * Plain EXPLAIN EXECUTE counts as an execution for that choice and writes nothing. EXECUTE takes
 * no bound parameters, so they go in as literals, escaped by the driver (bench only: these are the
 * app's own captured values, on the bench's own database).
 */
async function settledPlan(
  db: BenchDb,
  text: string,
  params: unknown[],
  analyze: boolean,
): Promise<{ plan: string; generic: boolean }> {
  const literals = params.map(sqlLiteral);
  const execute = `EXECUTE bench_explained${literals.length > 0 ? `(${literals.join(', ')})` : ''}`;
  await db.query('BEGIN');
  try {
    await db.query('SET LOCAL plan_cache_mode = auto');
    await db.query(`PREPARE bench_explained AS ${text}`);
    for (let i = 0; i < CUSTOM_PLANS_FIRST; i += 1) await db.query(`EXPLAIN ${execute}`);
    const [before] = await db.query<{ generic_plans: string }>(
      `SELECT generic_plans FROM pg_prepared_statements WHERE name = 'bench_explained'`,
    );
    const rows = await db.query<{ 'QUERY PLAN': string }>(
      `${analyze ? 'EXPLAIN (ANALYZE, BUFFERS)' : 'EXPLAIN'} ${execute}`,
    );
    const [after] = await db.query<{ generic_plans: string }>(
      `SELECT generic_plans FROM pg_prepared_statements WHERE name = 'bench_explained'`,
    );
    return {
      plan: rows.map((r) => r['QUERY PLAN']).join('\n'),
      generic: Number(after?.generic_plans) > Number(before?.generic_plans),
    };
  } finally {
    await db.query('ROLLBACK');
    await db.query('DEALLOCATE ALL');
  }
}

/**
 * Section 3b: EXPLAIN of every statement the app sent that touches otp_requests, with the
 * parameters it sent (one plan per pattern of null parameters), as its sessions run it: the plan a
 * prepared statement settles on (generic, or custom per call). Read-only statements (plain SELECTs)
 * get EXPLAIN ANALYZE, the others plain EXPLAIN so nothing is written (inside a transaction rolled
 * back either way). A Seq Scan on otp_requests is flagged.
 */
export async function explainSection(app: AppHandle, db: BenchDb, figures: Figures): Promise<void> {
  const [count] = await db.query<{ n: string }>('SELECT count(*) AS n FROM otp_requests');
  console.log(
    `\n-- 3b. EXPLAIN of every statement the app sent on otp_requests (${count?.n} rows) --`,
  );
  await app.call('countQueries', {});
  await exercise(app);
  const statements = (await app.call('queries', {})).filter((s) => touchesOtpTable(s.text));

  const summary = [];
  const plans: string[] = [];
  let seqScans = 0;
  for (const statement of statements) {
    for (const params of statement.variants) {
      const readOnly = /^\s*SELECT\b/i.test(statement.text);
      const label = labelOf(statement.text);
      const variant = params.map((p) => (p === null ? 'null' : '·')).join(' ');
      let plan: string;
      let kind = '';
      try {
        const settled = await settledPlan(db, statement.text, params, readOnly);
        plan = settled.plan;
        kind = settled.generic ? 'generic' : 'custom';
      } catch (error) {
        plan = `EXPLAIN failed: ${error instanceof Error ? error.message : String(error)}`;
      }
      const seq = /Seq Scan on otp_requests/.test(plan);
      if (seq) seqScans += 1;
      const scans = [...new Set((plan.match(SCAN) ?? []).map((s) => s.trim()))];
      summary.push({
        statement: label,
        'params (· set)': variant,
        explain: readOnly ? 'ANALYZE' : 'plan only',
        plan: kind,
        scans: scans.join('; '),
        'SEQ SCAN on otp_requests': seq ? 'YES <<<' : 'no',
      });
      plans.push(
        `### ${label} [${variant}]\n${statement.text.replace(/\n\s*\n/g, '\n')}\n` +
          `params: ${JSON.stringify(params)}\n${kind} plan:\n${plan}\n`,
      );
    }
  }
  console.table(summary);
  console.log(plans.join('\n'));
  figures.add('explain-statements', summary.length);
  figures.add('explain-seq-scans-on-otp_requests', seqScans);
}
