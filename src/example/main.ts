import { Logger } from '@nestjs/common';
import { resolve } from 'node:path';
import { createExampleApp } from './bootstrap.js';
import { startEmbeddedPostgres } from './embedded-postgres.js';
import { readExampleConfig } from './example.config.js';

/** `npm start`: the example app on DATABASE_URL, or on an embedded Postgres kept in ./.data. */
async function main(): Promise<void> {
  const logger = new Logger('Example');
  const config = readExampleConfig();
  let databaseUrl = config.databaseUrl;
  let stopDatabase = (): Promise<void> => Promise.resolve();
  if (!databaseUrl) {
    const port = Number(process.env.EMBEDDED_PG_PORT ?? 54329);
    logger.log(`DATABASE_URL is not set: starting an embedded Postgres in ./.data on port ${port}`);
    const embedded = await startEmbeddedPostgres(resolve('.data'), port);
    await ensureDatabase(embedded.url, 'nest_otp');
    databaseUrl = embedded.url.replace(/\/postgres$/, '/nest_otp');
    stopDatabase = () => embedded.stop();
  }
  const app = await createExampleApp({ databaseUrl, otp: config.otp });
  // Graceful stop: finish in-flight requests, close the pool, then the embedded server if any.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      logger.log(`${signal}: shutting down`);
      void app
        .close()
        .then(stopDatabase)
        .finally(() => process.exit(0));
    });
  }
  await app.listen(config.port);
  logger.log(`nest-otp example listening on http://localhost:${config.port} (POST /otp/send)`);
}

async function ensureDatabase(adminUrl: string, name: string): Promise<void> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`nest-otp example failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
