import type { INestApplication } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import request from 'supertest';
import type TestAgent from 'supertest/lib/agent.js';
import type { ExampleAppOptions } from '../../example/app.module.js';
import { createExampleApp } from '../../example/bootstrap.js';
import type { OtpMessage, OtpProvider } from '../../src/otp/delivery/otp-provider.interface.js';
import type { OtpModuleOptionsInput } from '../../src/otp/otp.options.js';
import type { OtpChannel } from '../../src/otp/otp.types.js';

export const TEST_SECRET = 'test-secret-that-is-at-least-32-bytes-long!';

/** The HTTP platforms the module supports; the e2e specs of the OTP routes run on each. */
export const PLATFORMS = ['express', 'fastify'] as const;
export type Platform = (typeof PLATFORMS)[number];

/**
 * `PLATFORMS`, but Express alone in the jest project "partitioned" (jest.config.mjs), which runs
 * some route specs again for the storage layout: their platforms are the default project's job.
 */
export const LAYOUT_PLATFORMS: readonly Platform[] =
  process.env.NEST_OTP_TEST_LAYOUT === 'partitioned' ? ['express'] : PLATFORMS;

/** A delivery provider that keeps every message, so tests can read the codes. */
export class CapturingProvider implements OtpProvider {
  readonly name = 'capture';
  readonly messages: OtpMessage[] = [];
  /** Channels that fail, to test fallback and failed delivery. */
  failing = new Set<OtpChannel>();

  supports(): boolean {
    return true;
  }

  deliver(message: OtpMessage): Promise<void> {
    if (this.failing.has(message.channel)) return Promise.reject(new Error('channel down'));
    this.messages.push(message);
    return Promise.resolve();
  }

  /** The newest code sent to a (normalized) destination. */
  lastCode(destination: string): string {
    const found = [...this.messages].reverse().find((m) => m.destination === destination);
    if (!found) throw new Error(`no message was sent to ${destination}`);
    return found.code;
  }
}

export interface TestApp {
  app: INestApplication;
  http: TestAgent;
  provider: CapturingProvider;
  platform: Platform;
  close(): Promise<void>;
}

export function testDatabaseUrl(): string {
  const url = process.env.TEST_DATABASE_URL;
  if (!url)
    throw new Error('TEST_DATABASE_URL is not set: run the tests through jest (global setup).');
  return url;
}

/**
 * Creates and initializes the example app (no logger) on `platform`, ready for requests: on
 * Fastify that includes `ready()`, without which the routes are not registered yet. An app whose
 * start fails is closed before the error is rethrown, so it leaves no connection behind.
 */
export async function bootExampleApp(
  options: ExampleAppOptions,
  platform: Platform = 'express',
): Promise<INestApplication> {
  const app = await createExampleApp(options, { logger: false, platform });
  try {
    await app.init();
    if (platform === 'fastify') {
      await (app.getHttpAdapter().getInstance() as { ready(): Promise<unknown> }).ready();
    }
  } catch (error) {
    await app.close().catch(() => undefined);
    throw error;
  }
  return app;
}

/**
 * Boots the example app on the run's test database (or `where.databaseUrl`) with a capturing
 * provider, on Express unless `where.platform` says otherwise. Defaults suit most tests: HMAC
 * hashing (fast), throttling high enough not to interfere.
 */
export async function startTestApp(
  otp: OtpModuleOptionsInput = {},
  where: { databaseUrl?: string; platform?: Platform } = {},
): Promise<TestApp> {
  const provider = new CapturingProvider();
  const platform = where.platform ?? 'express';
  const app = await bootExampleApp(
    {
      databaseUrl: where.databaseUrl ?? testDatabaseUrl(),
      otp: {
        hasher: 'hmac',
        hmacSecret: TEST_SECRET,
        throttleLimit: 10_000,
        providers: [provider],
        ...otp,
      },
    },
    platform,
  );
  return {
    app,
    http: request(app.getHttpServer()),
    provider,
    platform,
    close: () => app.close(),
  };
}

/** A destination no other test uses. */
export const uniqueEmail = (): string => `user-${randomUUID()}@example.com`;

/**
 * Where this process's numbers start: random once, then counted up, so no two numbers of one
 * process ever collide (a random part per call did, about once in a thousand pairs).
 */
const phoneOffset = Math.floor(Math.random() * 8_000_000);
let phoneCounter = 0;
/** A valid, unique US number in E.164 (exchange 200-999: 0xx and 1xx exchanges are invalid). */
export const uniquePhone = (): string => {
  phoneCounter += 1;
  const n = (phoneOffset + phoneCounter) % 8_000_000;
  return `+1415${2_000_000 + n}`;
};

/** Direct SQL on the test database, to check what a request left behind. */
export async function query<T = Record<string, unknown>>(
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: testDatabaseUrl() });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as T[];
  } finally {
    await client.end();
  }
}

/** Every row of one destination, oldest first. */
export const rowsFor = (destination: string): Promise<Record<string, unknown>[]> =>
  query('SELECT * FROM otp_requests WHERE destination = $1 ORDER BY created_at', [destination]);

/**
 * Moves a destination's history into the past, as if `seconds` had passed: every timestamp of its
 * rows shifts back. The database clock stays real, so policy is still computed by the app.
 */
export async function travel(destination: string, seconds: number): Promise<void> {
  await query(
    `UPDATE otp_requests SET
       created_at = created_at - make_interval(secs => $2),
       expires_at = expires_at - make_interval(secs => $2),
       resend_available_at = resend_available_at - make_interval(secs => $2),
       delivered_at = delivered_at - make_interval(secs => $2),
       verified_at = verified_at - make_interval(secs => $2),
       exhausted_at = exhausted_at - make_interval(secs => $2),
       superseded_at = superseded_at - make_interval(secs => $2),
       token_expires_at = token_expires_at - make_interval(secs => $2),
       token_used_at = token_used_at - make_interval(secs => $2),
       cancelled_at = cancelled_at - make_interval(secs => $2)
     WHERE destination = $1`,
    [destination, seconds],
  );
  await query(
    `UPDATE otp_destinations SET
       hard_locked_at = hard_locked_at - make_interval(secs => $2),
       unlocked_at = unlocked_at - make_interval(secs => $2)
     WHERE destination = $1`,
    [destination, seconds],
  );
}
