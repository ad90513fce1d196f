import type { INestApplication } from '@nestjs/common';
import { OtpConnection } from '../../src/otp/persistence/otp-connection.js';

/** A statement as the module hands it to its pool: text and values, or the text alone. */
export interface SentStatement {
  text: string;
  values: unknown[];
}

/** Calls `seen` with each statement the module sends on its pool while `run` runs. */
export async function watchStatementsDuring(
  app: INestApplication,
  run: () => Promise<unknown>,
  seen: (statement: SentStatement) => void,
): Promise<void> {
  const pool = app.get(OtpConnection).pool;
  const query = pool.query.bind(pool);
  pool.query = ((config: unknown, ...rest: unknown[]) => {
    const values = rest[0];
    const statement =
      typeof config === 'string'
        ? { text: config, values: (values as unknown[] | undefined) ?? [] }
        : {
            text: (config as { text?: string }).text ?? '',
            values: (config as { values?: unknown[] }).values ?? [],
          };
    seen(statement);
    return (query as (...args: unknown[]) => unknown)(config, ...rest);
  }) as typeof pool.query;
  try {
    await run();
  } finally {
    pool.query = query;
  }
}

/** Counts the statements the module sends on its pool while `run` runs. */
export async function statementsDuring(
  app: INestApplication,
  run: () => Promise<unknown>,
): Promise<number> {
  let count = 0;
  await watchStatementsDuring(app, run, () => (count += 1));
  return count;
}
