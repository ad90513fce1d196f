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

/**
 * A `ThrottlerStorage` in Redis, so the per-IP limit holds across app instances: pass one as
 * `throttleStorage`. Takes the host's own client (ioredis `new Redis(url)`), so connection,
 * TLS and timeouts stay the host's choice; the module never opens a connection of its own.
 *
 * ```ts
 * throttleStorage: new RedisThrottlerStorage(new Redis(process.env.REDIS_URL))
 * ```
 */
export class RedisThrottlerStorage implements ThrottlerStorage {
  constructor(
    private readonly redis: RedisEvalClient,
    /** Prefix of every key, so several apps can share one Redis. Default `'nest-otp:throttle:'`. */
    private readonly keyPrefix = 'nest-otp:throttle:',
  ) {}

  async increment(
    key: string,
    ttl: number,
    limit: number,
    blockDuration: number,
    throttlerName: string,
  ): Promise<ThrottlerStorageRecord> {
    const base = `${this.keyPrefix}${throttlerName}:${key}`;
    const reply = (await this.redis.eval(
      INCREMENT,
      2,
      `${base}:hits`,
      `${base}:block`,
      Math.max(1, Math.ceil(ttl)),
      limit,
      Math.max(1, Math.ceil(blockDuration)),
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
}
