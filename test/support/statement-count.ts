import type { INestApplication } from '@nestjs/common';
import { OtpConnection } from '../../src/otp/persistence/otp-connection.js';

/** Counts the statements the module sends on its pool while `run` runs. */
export async function statementsDuring(
  app: INestApplication,
  run: () => Promise<unknown>,
): Promise<number> {
  const pool = app.get(OtpConnection).pool;
  const query = pool.query.bind(pool);
  let count = 0;
  pool.query = ((...args: Parameters<typeof pool.query>) => {
    count += 1;
    return query(...args);
  }) as typeof pool.query;
  try {
    await run();
  } finally {
    pool.query = query;
  }
  return count;
}
