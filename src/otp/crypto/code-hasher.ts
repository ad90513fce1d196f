import bcrypt from 'bcrypt';
import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Hashes codes at rest and checks a guess against a stored hash, in constant time. Every hash is
 * bound to its request (`binding`, the request id), so a code hash is worthless for any other row
 * and equal codes never hash alike.
 */
export interface CodeHasher {
  /**
   * The hash `hash` would store for `code` and `binding`, for a hasher whose hashes are a function
   * of the two (HMAC). A verify that knows the request (a code this instance sent) hands it to the
   * reserving statement, which compares it with the stored hash on the attempt it reserves: a right
   * code then verifies in one statement. A salted hasher (bcrypt) has none.
   */
  digest?(code: string, binding: string): string;
  hash(code: string, binding: string): Promise<string>;
  matches(code: string, binding: string, storedHash: string): Promise<boolean>;
}

const boundInput = (code: string, binding: string): string => `${binding}:${code}`;

/** bcrypt: slow on purpose, salted. Runs on libuv's thread pool, off the event loop. */
export class BcryptCodeHasher implements CodeHasher {
  constructor(private readonly cost: number) {}

  hash(code: string, binding: string): Promise<string> {
    return bcrypt.hash(boundInput(code, binding), this.cost);
  }

  matches(code: string, binding: string, storedHash: string): Promise<boolean> {
    return bcrypt.compare(boundInput(code, binding), storedHash);
  }
}

/**
 * HMAC-SHA256 keyed with a server secret: fast, and a leaked table cannot be brute-forced offline
 * without the secret, whereas any unkeyed hash of a 6-digit code falls to 10^6 guesses.
 */
export class HmacCodeHasher implements CodeHasher {
  private static readonly PREFIX = 'hmac-sha256$';

  constructor(private readonly secret: string) {}

  hash(code: string, binding: string): Promise<string> {
    return Promise.resolve(this.digest(code, binding));
  }

  digest(code: string, binding: string): string {
    return HmacCodeHasher.PREFIX + this.mac(code, binding).toString('base64');
  }

  matches(code: string, binding: string, storedHash: string): Promise<boolean> {
    if (!storedHash.startsWith(HmacCodeHasher.PREFIX)) return Promise.resolve(false);
    const expected = Buffer.from(storedHash.slice(HmacCodeHasher.PREFIX.length), 'base64');
    const actual = this.mac(code, binding);
    return Promise.resolve(expected.length === actual.length && timingSafeEqual(expected, actual));
  }

  private mac(code: string, binding: string): Buffer {
    return createHmac('sha256', this.secret).update(boundInput(code, binding)).digest();
  }
}

/** Builds the hasher the options ask for. */
export function createCodeHasher(options: {
  hasher: 'bcrypt' | 'hmac';
  bcryptCost: number;
  hmacSecret?: string;
}): CodeHasher {
  return options.hasher === 'hmac'
    ? new HmacCodeHasher(options.hmacSecret as string)
    : new BcryptCodeHasher(options.bcryptCost);
}
