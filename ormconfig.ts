import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { otpMigrations } from './migrations/index.js';

/**
 * The DataSource the typeorm CLI uses (`npm run migration:run` / `migration:revert`), reading
 * DATABASE_URL. The example app builds the same connection through TypeOrmModule.
 */
const url = process.env.DATABASE_URL;
if (!url) {
  throw new Error(
    'Set DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/nest_otp) to run migrations.',
  );
}

export default new DataSource({
  type: 'postgres',
  url,
  migrations: otpMigrations,
  migrationsTableName: 'migrations',
  migrationsTransactionMode: 'each',
});
