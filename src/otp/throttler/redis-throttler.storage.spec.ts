import { describe, expect, it, jest } from '@jest/globals';
import { type RedisEvalClient, RedisThrottlerStorage } from './redis-throttler.storage.js';

/** A client whose every call answers `reply`, or never answers at all. */
function client(reply?: unknown[]): RedisEvalClient & { eval: jest.Mock } {
  return {
    eval: jest.fn(() => (reply ? Promise.resolve(reply) : new Promise<never>(() => {}))),
  };
}

describe('RedisThrottlerStorage', () => {
  it('maps the script reply to a throttler record, in seconds', async () => {
    const redis = client([3, 59_500, 0, 0]);
    const record = await new RedisThrottlerStorage(redis).increment(
      'k',
      60_000,
      20,
      60_000,
      'default',
    );
    expect(record).toEqual({
      totalHits: 3,
      timeToExpire: 60,
      isBlocked: false,
      timeToBlockExpire: 0,
    });
    expect(redis.eval.mock.calls[0]?.slice(1, 4)).toEqual([
      2,
      'nest-otp:throttle:default:k:hits',
      'nest-otp:throttle:default:k:block',
    ]);
  });

  it('takes the key prefix as an option, or as the second argument as before', async () => {
    for (const options of [{ keyPrefix: 'app:' }, 'app:']) {
      const redis = client([1, 1000, 0, 0]);
      await new RedisThrottlerStorage(redis, options).increment('k', 1000, 5, 1000, 't');
      expect(redis.eval.mock.calls[0]?.[2]).toBe('app:t:k:hits');
    }
  });

  it('fails after timeoutMs when Redis never answers (a client queueing forever)', async () => {
    const storage = new RedisThrottlerStorage(client(), { timeoutMs: 50 });
    const started = Date.now();
    await expect(storage.increment('k', 1000, 5, 1000, 't')).rejects.toThrow(
      'Redis did not answer within 50 ms',
    );
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('passes on the client failure as it is', async () => {
    const redis = {
      eval: () => Promise.reject(new Error("Stream isn't writeable")),
    } as RedisEvalClient;
    await expect(
      new RedisThrottlerStorage(redis).increment('k', 1000, 5, 1000, 't'),
    ).rejects.toThrow("Stream isn't writeable");
  });

  it.each([0, -1, Number.NaN])('refuses a timeoutMs of %p', (timeoutMs) => {
    expect(() => new RedisThrottlerStorage(client(), { timeoutMs })).toThrow('timeoutMs');
  });
});
