import type { ThrottlerStorage } from '@nestjs/throttler';

/** What `ThrottlerStorage.increment` resolves to (not exported by @nestjs/throttler's index). */
type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>;

/**
 * The one command the storage sends: `EVAL script numKeys ...keysAndArgs`. ioredis's `Redis` and
 * `Cluster` have it; typed structurally so this module does not load ioredis itself.
 */
export interface RedisEvalClient {
  eval(script: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
}

// One round trip, atomic on the Redis server: count the hit in a fixed window of `ttl` ms; past
// `limit`, block the key for `blockDuration` ms and start a fresh window after it, as
// @nestjs/throttler's in-memory storage does. Returns { hits, msToExpire, blocked, msToBlockExpire }.
const INCREMENT = `
local blockTtl = redis.call('PTTL', KEYS[2])
if blockTtl > 0 then
  return { tonumber(ARGV[2]) + 1, blockTtl, 1, blockTtl }
end
local hits = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
if hits > tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return { hits, ttl, 1, tonumber(ARGV[3]) }
end
return { hits, ttl, 0, 0 }
`;

/** Options of a `RedisThrottlerStorage`. */
export interface RedisThrottlerStorageOptions {
  /** Prefix of every key, so several apps can share one Redis. Default `'nest-otp:throttle:'`. */
  keyPrefix?: string;
  /**
   * Longest a request waits for Redis, in ms; past it the call fails and `throttleStoreFailure`
   * decides (503 or let through). Bounds even a client that queues commands forever. Default `500`.
   */
  timeoutMs?: number;
}

/**
 * A `ThrottlerStorage` in Redis, so the per-IP limit holds across app instances: pass one as
 * `throttleStorage`. Takes the host's own client (ioredis), so connection, TLS and timeouts stay
 * the host's choice; the module never opens a connection of its own. Every call is bounded by
 * `timeoutMs`, so a Redis that is gone costs a request at most that long.
 *
 * Give the client {@link RedisThrottlerStorage.clientOptions} so it fails at once while Redis is
 * down instead of queueing, and an `error` listener (without one, ioredis prints "Unhandled error
 * event" on every reconnect attempt):
 *
 * ```ts
 * const redis = new Redis(process.env.REDIS_URL, RedisThrottlerStorage.clientOptions);
 * redis.on('error', (e) => logger.warn(`Redis: ${e.message}`)); // rate-limit it in production
 * throttleStorage: new RedisThrottlerStorage(redis)
 * ```
 */
export class RedisThrottlerStorage implements ThrottlerStorage {
  /**
   * The ioredis options a throttle client should have: no offline queue (a command while
   * disconnected fails at once rather than waiting for a reconnect), one retry per command,
   * bounded connect and command times. ioredis keeps reconnecting in the background, so the
   * limit is back by itself when Redis is.
   */
  static readonly clientOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 1_000,
    commandTimeout: 500,
  } as const;

  private readonly keyPrefix: string;
  private readonly timeoutMs: number;

  /**
   * @param redis the host's client, e.g. ioredis's `Redis` or `Cluster`.
   * @param options options, or (as before) just the key prefix.
   */
  constructor(
    private readonly redis: RedisEvalClient,
    options: RedisThrottlerStorageOptions | string = {},
  ) {
    const { keyPrefix = 'nest-otp:throttle:', timeoutMs = 500 } =
      typeof options === 'string' ? { keyPrefix: options } : options;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new Error(
        `RedisThrottlerStorage: timeoutMs must be a positive number, got ${timeoutMs}.`,
      );
    }
    this.keyPrefix = keyPrefix;
    this.timeoutMs = timeoutMs;
  }

  async increment(
    key: string,
    ttl: number,
    limit: number,
    blockDuration: number,
    throttlerName: string,
  ): Promise<ThrottlerStorageRecord> {
    const base = `${this.keyPrefix}${throttlerName}:${key}`;
    const reply = (await this.bounded(
      this.redis.eval(
        INCREMENT,
        2,
        `${base}:hits`,
        `${base}:block`,
        Math.max(1, Math.ceil(ttl)),
        limit,
        Math.max(1, Math.ceil(blockDuration)),
      ),
    )) as [number, number, number, number];
    const [totalHits, msToExpire, blocked, msToBlockExpire] = reply.map(Number) as [
      number,
      number,
      number,
      number,
    ];
    return {
      totalHits,
      timeToExpire: Math.ceil(msToExpire / 1000),
      isBlocked: blocked === 1,
      timeToBlockExpire: Math.ceil(msToBlockExpire / 1000),
    };
  }

  /** The call's own answer, or a rejection once `timeoutMs` has passed, whichever comes first. */
  private bounded<T>(call: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`Redis did not answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      // A late answer or failure after the timeout is dropped, never an unhandled rejection.
      call.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });
  }
}
