import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { RedisThrottlerStorage } from '../src/index.js';
import { describeWithRedis } from './support/services.js';
import { startTestApp, uniqueEmail, type TestApp } from './support/test-app.js';

const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';

// Needs the Redis at REDIS_URL; reported skipped, with the reason, when none answers there.
// Express only: the counters are shared by the storage; per-IP 429s are on both elsewhere.
describeWithRedis('per-IP throttling across instances (Redis storage)', () => {
  const prefix = `nest-otp-test:${randomUUID()}:`;
  let apps: TestApp[];
  const clients: Redis[] = [];

  beforeAll(async () => {
    // Two instances of the app, each with its own Redis connection, one shared limit.
    apps = await Promise.all(
      [0, 1].map(() =>
        startTestApp({
          throttleLimit: 4,
          throttleTtlSeconds: 60,
          throttleStorage: new RedisThrottlerStorage(
            clients[clients.push(new Redis(REDIS_URL)) - 1]!,
            { keyPrefix: prefix },
          ),
        }),
      ),
    );
  });
  afterAll(async () => {
    await Promise.all(apps.map((a) => a.close()));
    clients.forEach((c) => c.disconnect());
    const redis = new Redis(REDIS_URL);
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it('POST /otp/send: the limit holds over both instances together', async () => {
    const [a, b] = apps as [TestApp, TestApp];
    const statuses: number[] = [];
    for (const app of [a, b, a, b]) {
      const res = await app.http.post('/otp/send').send({ destination: uniqueEmail() });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([202, 202, 202, 202]);

    const limited = await b.http.post('/otp/send').send({ destination: uniqueEmail() });
    expect(limited.status).toBe(429);
    expect(limited.body).toMatchObject({ statusCode: 429, code: 'RATE_LIMITED' });
    expect(limited.body.retryAfter).toBeGreaterThanOrEqual(1);
    expect(limited.headers['retry-after']).toBe(String(limited.body.retryAfter));

    const alsoLimited = await a.http
      .post('/otp/verify')
      .send({ destination: uniqueEmail(), code: '123456' });
    expect(alsoLimited.status).toBe(429);
    expect(alsoLimited.body.code).toBe('RATE_LIMITED');
  });

  it('keeps the counters in Redis, not in the process', async () => {
    const redis = new Redis(REDIS_URL);
    try {
      const keys = await redis.keys(`${prefix}*`);
      expect(keys.length).toBeGreaterThan(0);
    } finally {
      redis.disconnect();
    }
  });
});
