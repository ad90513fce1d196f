import pg from 'pg';

/**
 * One distinct SQL text the app sent and how often. `variants` keeps the parameters of the last
 * call for each pattern of null parameters (e.g. with and without an idempotency key), since the
 * planner may choose differently for each.
 */
export interface CapturedStatement {
  text: string;
  count: number;
  variants: unknown[][];
}

interface Seen {
  text: string;
  count: number;
  variants: Map<string, unknown[]>;
}

type QueryFn = (this: pg.Client, ...args: unknown[]) => unknown;

/**
 * Counts the round trips the app makes to Postgres: every `pg.Client#query` call is one (pg sends
 * parse/bind/execute/sync together and waits for the answer). TypeORM's pool clients and
 * `Pool#query` both go through it, so wrapping the prototype sees everything the app's DataSource
 * sends, BEGIN and COMMIT included. Off unless `start()` was called.
 */
export class QueryCounter {
  private statements = new Map<string, Seen>();
  private counting = false;

  install(): void {
    const proto = pg.Client.prototype as unknown as { query: QueryFn };
    const original = proto.query;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const counter = this;
    proto.query = function (this: pg.Client, ...args: unknown[]): unknown {
      if (counter.counting) counter.record(args[0], args[1]);
      return original.apply(this, args);
    };
  }

  /** Forgets what was counted and starts counting. */
  start(): void {
    this.statements = new Map();
    this.counting = true;
  }

  /** Stops counting and returns what was seen since `start()`. */
  stop(): CapturedStatement[] {
    this.counting = false;
    return [...this.statements.values()].map(({ text, count, variants }) => ({
      text,
      count,
      variants: [...variants.values()],
    }));
  }

  private record(config: unknown, values: unknown): void {
    let text: string | undefined;
    let params: unknown[] = [];
    if (typeof config === 'string') {
      text = config;
      if (Array.isArray(values)) params = values as unknown[];
    } else if (config && typeof config === 'object' && 'text' in config) {
      const query = config as { text?: unknown; values?: unknown };
      if (typeof query.text === 'string') text = query.text;
      if (Array.isArray(query.values)) params = query.values as unknown[];
      else if (Array.isArray(values)) params = values as unknown[];
    }
    text ??= '<unknown query object>';
    const nulls = params.map((p) => (p === null || p === undefined ? '0' : '1')).join('');
    const seen = this.statements.get(text) ?? { text, count: 0, variants: new Map() };
    seen.count += 1;
    seen.variants.set(nulls, params);
    this.statements.set(text, seen);
  }
}
