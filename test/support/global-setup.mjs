// Runs in jest's parent process, outside its ESM transform: so it uses the compiled build
// (`npm test` builds first).
import {
  acquireTestServer,
  createUniqueDatabase,
  runOtpMigrations,
} from '../../build/example/database.js';

/** One fresh database per test run, migrated; workers find it in TEST_DATABASE_URL. */
export default async function globalSetup() {
  const server = await acquireTestServer();
  globalThis.__nestOtpTestServer = server;
  const url = await createUniqueDatabase(server.adminUrl);
  await runOtpMigrations(url);
  process.env.TEST_ADMIN_DATABASE_URL = server.adminUrl;
  process.env.TEST_DATABASE_URL = url;
}
