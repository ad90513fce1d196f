import { resolve } from 'node:path';
import { pino } from 'pino';
import { createExampleApp } from './bootstrap.js';
import { ensureDatabase, startEmbeddedPostgres } from './database.js';
import { readExampleConfig } from './example.config.js';

/**
 * `npm start`: the example app on DATABASE_URL, or on an embedded Postgres kept in ./.data. Logs
 * JSON lines on stdout at LOG_LEVEL: the app's through nestjs-pino, these through pino itself (the
 * embedded Postgres starts before the app exists), in the same shape.
 */
async function main(): Promise<void> {
  const config = readExampleConfig();
  // One synchronous stdout for these lines and the app's: in order, and none lost on exit.
  const stdout = pino.destination({ dest: 1, sync: true });
  const logger = pino({ level: config.logLevel }, stdout).child({ context: 'Example' });
  let databaseUrl = config.databaseUrl;
  let stopDatabase = (): Promise<void> => Promise.resolve();
  if (!databaseUrl) {
    const port = Number(process.env.EMBEDDED_PG_PORT ?? 54329);
    logger.info(
      `DATABASE_URL is not set: starting an embedded Postgres in ./.data on port ${port}`,
    );
    const embedded = await startEmbeddedPostgres(resolve('.data'), port, {
      log: (message) => logger.warn(message),
    });
    databaseUrl = await ensureDatabase(embedded.adminUrl, 'nest_otp');
    stopDatabase = () => embedded.release();
  }
  const app = await createExampleApp({
    databaseUrl,
    otp: config.otp,
    logging: { level: config.logLevel, stream: stdout },
  });
  // Graceful stop: finish in-flight requests, close the pool, then the embedded server if any.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      logger.info(`${signal}: shutting down`);
      void app
        .close()
        .then(stopDatabase)
        .finally(() => process.exit(0));
    });
  }
  await app.listen(config.port);
  logger.info(`nest-otp example listening on http://localhost:${config.port} (POST /otp/send)`);
}

main().catch((error: unknown) => {
  process.stderr.write(
    `nest-otp example failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
