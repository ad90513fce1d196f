import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { createThrottleRedis } from '../example/example.config.js';
import { RedisThrottlerStorage } from '../src/index.js';
import { startRedisServer, type RedisServer } from './support/redis-server.js';
import { describeWithRedisServer } from './support/services.js';
import { startTestApp, uniqueEmail, type TestApp } from './support/test-app.js';

const STORE_WARNING = /throttle storage failed/;

// A Redis server of the test's own, on its own port, so killing it touches nothing else; the
// client is the example app's (the options RedisThrottlerStorage.clientOptions recommends).
// Express only: the storage's failure modes; the 503/429 mapping is on both in errors.e2e-spec.
describeWithRedisServer('POST /otp/send when the throttle storage (Redis) dies and returns', () => {
  describe.each(['closed', 'open'] as const)("throttleStoreFailure: '%s'", (mode) => {
    let server: RedisServer;
    let redis: Redis;
    let app: TestApp;
    const redisLogger = { warn: jest.fn() };
    let warn: jest.SpiedFunction<Logger['warn']>;

    beforeAll(async () => {
      warn = jest.spyOn(Logger.prototype, 'warn');
      server = await startRedisServer();
      redis = createThrottleRedis(server.url, redisLogger as unknown as Logger);
      if (redis.status !== 'ready') await once(redis, 'ready');
      app = await startTestApp({
        throttleStoreFailure: mode,
        throttleStorage: new RedisThrottlerStorage(redis),
      });
    });
    afterAll(async () => {
      warn?.mockRestore();
      await app?.close();
      redis?.disconnect();
      await server?.stop();
    });

    async function send(): Promise<{ status: number; ms: number; res: SendResponse }> {
      const started = performance.now();
      const res = await app.http.post('/otp/send').send({ destination: uniqueEmail() });
      return { status: res.status, ms: performance.now() - started, res };
    }

    /** Throttle counters in the (restarted, so at first empty) Redis; 0 while it cannot answer. */
    const counters = (): Promise<number> =>
      redis.keys('nest-otp:throttle:*').then(
        (keys) => keys.length,
        () => 0,
      );

    it('answers 202 while Redis is up, counting in Redis', async () => {
      expect((await send()).status).toBe(202);
      expect(await counters()).toBeGreaterThan(0);
    });

    it(`answers every send within 1 s with ${mode === 'closed' ? '503 and Retry-After' : '202'} once Redis is killed, never 500, warning once`, async () => {
      await server.kill();
      const answers = [];
      for (let i = 0; i < 5; i += 1) answers.push(await send());

      expect(Math.max(...answers.map((a) => a.ms))).toBeLessThan(1000);
      for (const { status, res } of answers) {
        if (mode === 'closed') {
          expect(status).toBe(503);
          expect(res.body).toMatchObject({ statusCode: 503, code: 'SERVICE_UNAVAILABLE' });
          expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
        } else {
          expect(status).toBe(202);
        }
      }
      // One warning for the outage, not one per request; the client's own errors as rarely.
      const warnings = warn.mock.calls.filter(([message]) => STORE_WARNING.test(String(message)));
      expect(warnings).toHaveLength(1);
      expect(String(warnings[0]?.[0])).toContain(`'${mode}'`);
      expect(redisLogger.warn.mock.calls.length).toBeLessThanOrEqual(1);
    });

    it('throttles through Redis again within 10 s of its restart', async () => {
      await server.restart();
      const restarted = performance.now();
      let recoveredAfter: number | null = null;
      while (performance.now() - restarted < 10_000) {
        const { status } = await send();
        expect(status).not.toBe(500);
        // Counted in the new, empty Redis: the storage answers again.
        if (status === 202 && (await counters()) > 0) {
          recoveredAfter = performance.now() - restarted;
          break;
        }
        await sleep(100);
      }
      expect(recoveredAfter).not.toBeNull();
      expect(recoveredAfter).toBeLessThan(10_000);
    });
  });
});

type SendResponse = Awaited<ReturnType<TestApp['http']['post']>>;
