import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createUniqueDatabase, dropDatabase } from '../example/database.js';
import { startWebhookSink, type WebhookSink } from './support/child-app.js';
import {
  installTarball,
  packLibrary,
  prepareHostApp,
  run,
  runOk,
  send,
  spawnHostApp,
  startHostApp,
  type HostApp,
  type HttpResult,
} from './support/host-app.js';

/**
 * The package as users get it: `npm pack` (prepack builds dist/), installed into the fixture host
 * app (test/fixtures/host-app: its own body parsing, global ValidationPipe, exception filter and
 * ThrottlerGuard), migrated with the host's TypeORM CLI and DataSource, started with
 * `node dist/main.js` and driven over HTTP. The OTP routes must keep the contract inside a host
 * that configures everything its own way; the host's routes must keep the host's behaviour.
 */

/** A client address of its own per test (127.0.0.0/8 is all loopback): separate throttling buckets. */
const ip = (n: number): string => `127.0.0.${n}`;

const uniqueEmail = (): string => `host-${randomUUID()}@example.com`;

/** An error in the contract's shape: `{ statusCode, code, message }`. */
function expectContractError(res: HttpResult, status: number, code: string): void {
  expect({ status: res.status, body: res.body ?? res.text }).toEqual({
    status,
    body: expect.objectContaining({ statusCode: status, code }),
  });
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  const message = res.body?.message;
  expect(typeof message === 'string' || Array.isArray(message)).toBe(true);
}

/** A contract 429: `retryAfter` (whole seconds >= 1) and the same value in `Retry-After`. */
function expectRetryable(res: HttpResult, code: string): void {
  expectContractError(res, 429, code);
  const retryAfter = res.body?.retryAfter;
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(res.headers['retry-after']).toBe(String(retryAfter));
}

/** The host's own envelope, `{ error: { status, message } }`, and nothing of the OTP contract. */
function expectHostError(res: HttpResult, status: number): unknown {
  expect({ status: res.status, envelope: res.body?.error && typeof res.body.error }).toEqual({
    status,
    envelope: 'object',
  });
  expect(res.body).toEqual({ error: { status, message: expect.anything() } });
  return (res.body?.error as { message: unknown }).message;
}

// Express only: the packed tarball in the Express host fixture (test/fixtures/host-app).
describe('the packed library in a host app', () => {
  const adminUrl = process.env.TEST_ADMIN_DATABASE_URL ?? '';
  let tmp = '';
  let tarball = '';
  let hostDir = '';
  let databaseUrl = '';
  let unmigratedUrl = '';
  let sink: WebhookSink | undefined;
  let app: HostApp | undefined;
  let unmigratedApp: HostApp | undefined;

  const hostEnv = (): Record<string, string> => ({
    DATABASE_URL: databaseUrl,
    OTP_SECRET: randomBytes(32).toString('hex'),
    OTP_WEBHOOK_URL: sink?.url ?? '',
  });

  const call = (options: Parameters<typeof send>[1]): Promise<HttpResult> => {
    if (!app) throw new Error('the host app did not start (see beforeAll)');
    return send(app.url, options);
  };

  /** The code the webhook sink received for a destination (delivery may trail the 202). */
  async function codeFor(destination: string): Promise<string> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        return sink!.lastCode(destination);
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }

  async function sql<T>(text: string, params: unknown[] = []): Promise<T[]> {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      return (await client.query(text, params)).rows as T[];
    } finally {
      await client.end();
    }
  }

  beforeAll(async () => {
    if (!adminUrl) throw new Error('TEST_ADMIN_DATABASE_URL is not set: run through jest.');
    tmp = mkdtempSync(join(tmpdir(), 'nest-otp-package-'));
    const packDir = join(tmp, 'pack');
    mkdirSync(packDir);
    hostDir = join(tmp, 'host-app');
    // The host's own dependencies install while the library packs (both from the npm cache).
    // allSettled: whatever was created is known to afterAll even when another step failed.
    const settled = await Promise.allSettled([
      startWebhookSink().then((started) => (sink = started)),
      createUniqueDatabase(adminUrl, 'nest_otp_host').then((url) => (databaseUrl = url)),
      createUniqueDatabase(adminUrl, 'nest_otp_host_bare').then((url) => (unmigratedUrl = url)),
      packLibrary(packDir).then((path) => (tarball = path)),
      prepareHostApp(hostDir),
    ]);
    const failed = settled.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
    await installTarball(hostDir, tarball);
    await runOk('npx', ['typeorm', 'migration:run', '-d', 'dist/data-source.js'], {
      cwd: hostDir,
      env: { DATABASE_URL: databaseUrl },
    });
    app = await startHostApp(hostDir, hostEnv());
  }, 300_000);

  afterAll(async () => {
    await app?.stop();
    await unmigratedApp?.stop();
    await sink?.close();
    for (const url of [databaseUrl, unmigratedUrl]) {
      if (url) await dropDatabase(adminUrl, url).catch(() => undefined);
    }
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }, 60_000);

  describe('the package', () => {
    it('npm ls: the host tree is valid, with one @nestjs/core', async () => {
      const all = await run('npm', ['ls', '--all'], { cwd: hostDir });
      expect({
        code: all.code,
        problems: all.output.match(/^.*( invalid|extraneous|UNMET (?!OPTIONAL)|npm error).*$/gm),
      }).toEqual({ code: 0, problems: null });
      const core = await runOk('npm', ['ls', '@nestjs/core', '--all', '--parseable'], {
        cwd: hostDir,
      });
      const paths = core.split('\n').filter((line) => line.startsWith('/'));
      expect(paths).toEqual([join(realpathSync(hostDir), 'node_modules', '@nestjs', 'core')]);
    });

    it('npm pack: the tarball has the build, LICENSE, README and CHANGELOG, and no sources, tests, example, bench or maps', async () => {
      const files = (await runOk('tar', ['-tzf', tarball], { cwd: tmp }))
        .split('\n')
        .filter(Boolean);
      const required = [
        'package/package.json',
        'package/dist/src/index.js',
        'package/dist/src/index.d.ts',
        'package/dist/migrations/index.js',
        'package/dist/migrations/index.d.ts',
        'package/dist/src/testing/index.js',
        'package/dist/src/testing/index.d.ts',
        'package/LICENSE',
        'package/README.md',
        'package/CHANGELOG.md',
      ];
      expect(required.filter((file) => !files.includes(file))).toEqual([]);
      const unwanted = files.filter(
        (file) =>
          /example|bench|\.map$|\.spec\.|\.tgz$/i.test(file) ||
          file.includes('test/') ||
          (file.endsWith('.ts') && !file.endsWith('.d.ts')),
      );
      expect(unwanted).toEqual([]);
    });

    it('import: nest-otp, nest-otp/migrations and nest-otp/testing load in the host', async () => {
      const script = [
        "const otp = await import('nest-otp');",
        "const { otpMigrations } = await import('nest-otp/migrations');",
        "const testing = await import('nest-otp/testing');",
        'console.log(JSON.stringify({',
        '  module: typeof otp.OtpModule,',
        '  migrations: otpMigrations.length,',
        '  sameMigrations: otp.otpMigrations === otpMigrations,',
        '  testing: typeof testing.InMemoryOtpProvider,',
        '}));',
      ].join('\n');
      const output = await runOk(process.execPath, ['--input-type=module', '-e', script], {
        cwd: hostDir,
      });
      expect(JSON.parse(output.trim().split('\n').pop() ?? '{}')).toEqual({
        module: 'function',
        migrations: expect.any(Number),
        sameMigrations: true,
        testing: 'function',
      });
    });

    it("npx typeorm migration:run: the host's CLI and DataSource created the OTP tables", async () => {
      const tables = await sql<{ table_name: string }>(
        `SELECT table_name FROM information_schema.tables
          WHERE table_schema = 'public' AND table_name LIKE 'otp_%' ORDER BY table_name`,
      );
      expect(tables.map((t) => t.table_name)).toEqual(
        expect.arrayContaining(['otp_destinations', 'otp_requests']),
      );
    });
  });

  describe('the OTP routes keep the contract', () => {
    it('POST /otp/send, POST /otp/verify, POST /account/delete: a token passes the guarded route once', async () => {
      const from = ip(10);
      const destination = uniqueEmail();
      const sent = await call({
        path: '/otp/send',
        body: { destination, purpose: 'delete-account' },
        from,
      });
      expect({ status: sent.status, body: sent.body }).toEqual({
        status: 202,
        body: {
          requestId: expect.stringMatching(/^[0-9a-f-]{36}$/),
          destination: expect.stringMatching(/^h.*@example\.com$/),
          channel: 'email',
          purpose: 'delete-account',
          expiresAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
          ttlSeconds: 300,
          codeLength: 6,
          attemptsAllowed: 3,
          resendAvailableAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        },
      });
      expect(sent.body?.destination).not.toBe(destination);

      const code = await codeFor(destination);
      expect(code).toMatch(/^\d{6}$/);
      const verified = await call({
        path: '/otp/verify',
        body: { destination, code, purpose: 'delete-account' },
        from,
      });
      expect({ status: verified.status, body: verified.body }).toEqual({
        status: 200,
        body: {
          verified: true,
          verificationToken: expect.any(String),
          tokenExpiresAt: expect.any(String),
        },
      });

      const headers = { 'x-otp-token': verified.body?.verificationToken as string };
      const deleted = await call({ method: 'POST', path: '/account/delete', headers, from });
      expect({ status: deleted.status, body: deleted.body }).toEqual({
        status: 200,
        body: { deleted: destination },
      });
      const again = await call({ method: 'POST', path: '/account/delete', headers, from });
      expectContractError(again, 401, 'OTP_TOKEN_INVALID');
    });

    it('POST /otp/verify: a numeric code is a 400 that uses no attempt', async () => {
      const from = ip(11);
      const destination = uniqueEmail();
      const sent = await call({ path: '/otp/send', body: { destination }, from });
      expect(sent.status).toBe(202);
      const code = await codeFor(destination);

      const numeric = await call({
        path: '/otp/verify',
        body: { destination, code: 111111 },
        from,
      });
      expectContractError(numeric, 400, 'VALIDATION_FAILED');
      const rows = await sql<{ attempts_used: number }>(
        'SELECT attempts_used FROM otp_requests WHERE destination = $1',
        [destination],
      );
      expect(rows).toEqual([{ attempts_used: 0 }]);

      const verified = await call({ path: '/otp/verify', body: { destination, code }, from });
      expect({ status: verified.status, verified: verified.body?.verified }).toEqual({
        status: 200,
        verified: true,
      });
    });

    it('POST /otp/send: an unknown field is a 400 VALIDATION_FAILED that names it', async () => {
      const res = await call({
        path: '/otp/send',
        body: { destination: uniqueEmail(), foo: 1 },
        from: ip(12),
      });
      expectContractError(res, 400, 'VALIDATION_FAILED');
      expect(JSON.stringify(res.body?.message)).toMatch(/\bfoo\b/);
    });

    it("POST /otp/send: malformed JSON is a 400 VALIDATION_FAILED, while POST /profile answers with the host's envelope", async () => {
      const broken = {
        body: '{"destination":',
        headers: { 'content-type': 'application/json' },
        from: ip(13),
      };
      expectContractError(await call({ path: '/otp/send', ...broken }), 400, 'VALIDATION_FAILED');
      expectHostError(await call({ path: '/profile', ...broken }), 400);
    });

    it('POST /otp/send: a 20 KiB body is a 413 PAYLOAD_TOO_LARGE, though the host parser takes it on /profile', async () => {
      const padding = 'x'.repeat(20 * 1024);
      const otp = await call({
        path: '/otp/send',
        body: { destination: uniqueEmail(), padding },
        from: ip(14),
      });
      expectContractError(otp, 413, 'PAYLOAD_TOO_LARGE');
      // The host's own limit (Express's default 100 KiB) is untouched: its pipe sees the body.
      const host = await call({
        path: '/profile',
        body: { name: 'Ada', age: 36, padding },
        from: ip(14),
      });
      expect(JSON.stringify(expectHostError(host, 400))).toMatch(/padding/);
    });
  });

  describe('429s on the OTP routes are the contract RATE_LIMITED', () => {
    it("POST /otp/verify: the host's ThrottlerGuard (10 a minute per route) answers the 11th request with RATE_LIMITED and Retry-After", async () => {
      const results: HttpResult[] = [];
      for (let i = 0; i < 12; i++) {
        results.push(
          await call({
            path: '/otp/verify',
            body: { destination: uniqueEmail(), code: '123456' },
            from: ip(20),
          }),
        );
      }
      // Never sent: 410 until the host's limit is reached (before the module's own 20).
      expect(results.map((r) => r.status)).toEqual([...Array<number>(10).fill(410), 429, 429]);
      for (const res of results.filter((r) => r.status === 429))
        expectRetryable(res, 'RATE_LIMITED');
    });

    it("GET /otp/requests/:id, POST /otp/send, POST /otp/verify: the module's own per-IP limit (20 a minute, all OTP routes) answers the 21st with RATE_LIMITED", async () => {
      const requests = [
        () => call({ path: `/otp/requests/${randomUUID()}`, from: ip(21) }),
        () => call({ path: '/otp/send', body: { destination: 'not an address' }, from: ip(21) }),
        () =>
          call({
            path: '/otp/verify',
            body: { destination: uniqueEmail(), code: '123456' },
            from: ip(21),
          }),
      ];
      const results: HttpResult[] = [];
      // 8 rounds over 3 routes: at most 8 a route, under the host's 10, but 24 on the OTP routes.
      for (let round = 0; round < 8; round++) {
        for (const request of requests) results.push(await request());
      }
      expect(results.findIndex((r) => r.status === 429)).toBe(20);
      expect(results.slice(0, 20).map((r) => r.status)).toEqual(
        Array.from({ length: 20 }, (_, i) => [404, 400, 410][i % 3]),
      );
      for (const res of results.slice(20)) expectRetryable(res, 'RATE_LIMITED');
    });
  });

  describe("the host's routes keep the host's behaviour", () => {
    it("POST /profile: the host's ValidationPipe (implicit conversion) and its 400 envelope", async () => {
      const bad = await call({ path: '/profile', body: { age: -1 }, from: ip(30) });
      expect(expectHostError(bad, 400)).toEqual(
        expect.arrayContaining(['name must be a string', 'age must not be less than 0']),
      );
      const good = await call({ path: '/profile', body: { name: 'Ada', age: '36' }, from: ip(30) });
      expect({ status: good.status, body: good.body }).toEqual({
        status: 200,
        body: { profile: { name: 'Ada', age: 36 } },
      });
    });

    it("GET /nope: the host's 404 envelope", async () => {
      expectHostError(await call({ path: '/nope', from: ip(31) }), 404);
    });

    it('POST /form: a urlencoded form post is parsed by the host', async () => {
      const res = await call({
        path: '/form',
        body: 'name=Ada+Lovelace&age=36',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        from: ip(32),
      });
      expect({ status: res.status, body: res.body }).toEqual({
        status: 200,
        body: { form: { name: 'Ada Lovelace', age: 36 } },
      });
    });
  });

  it('node dist/main.js on an unmigrated database: exits non-zero and says how to run the migrations', async () => {
    unmigratedApp = await spawnHostApp(hostDir, { ...hostEnv(), DATABASE_URL: unmigratedUrl });
    const timeout = new Promise<'still running'>((resolve) =>
      setTimeout(() => resolve('still running'), 30_000).unref(),
    );
    const exit = await Promise.race([unmigratedApp.exited, timeout]);
    // Nest's own lines name every module ("OtpModule dependencies initialized"): not an explanation.
    const explanation = unmigratedApp
      .output()
      .split('\n')
      .filter((line) => !/InstanceLoader|RoutesResolver|RouterExplorer|NestFactory/.test(line))
      .join('\n');
    expect({ exit, explanation }).toEqual({
      exit: expect.not.stringMatching(/^still running$/),
      explanation: expect.stringMatching(/migration/i),
    });
    expect(exit).not.toBe(0);
    expect(explanation).toMatch(/otp/i);
    // ...and says how to run them.
    expect(explanation).toMatch(/migration:run|migrationsRun/);
  }, 60_000);
});
