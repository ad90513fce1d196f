import { describe, expect, it } from '@jest/globals';
import { createHash, randomUUID } from 'node:crypto';
import { generateCode } from './code-generator.js';
import {
  BcryptCodeHasher,
  HmacCodeHasher,
  createCodeHasher,
  type CodeHasher,
} from './code-hasher.js';
import { createVerificationToken, hashVerificationToken } from './verification-token.js';

const SECRET = 'an-hmac-secret-of-at-least-32-bytes!';
const OTHER_SECRET = 'another-hmac-secret-of-32-bytes-or-more';

describe('generateCode', () => {
  it.each([4, 5, 6, 7, 8, 9, 10])('draws %i ASCII digits', (length) => {
    for (let i = 0; i < 200; i++) {
      expect(generateCode(length)).toMatch(new RegExp(`^[0-9]{${length}}$`));
    }
  });

  it('keeps leading zeros', () => {
    // P(no leading zero in 2000 draws) = 0.9^2000: never, unless zeros are dropped or avoided.
    const codes = Array.from({ length: 2000 }, () => generateCode(6));
    expect(codes.some((c) => c.startsWith('0'))).toBe(true);
    expect(codes.every((c) => c.length === 6)).toBe(true);
  });

  it('draws every digit about equally often', () => {
    const counts = new Array<number>(10).fill(0);
    // 100,000 digits: 10,000 expected per digit, standard deviation about 95.
    for (let i = 0; i < 10_000; i++) {
      for (const digit of generateCode(10))
        counts[Number(digit)] = (counts[Number(digit)] ?? 0) + 1;
    }
    expect(counts.reduce((a, b) => a + b, 0)).toBe(100_000);
    for (const count of counts) {
      // ±8% is over 8 standard deviations: a fair generator never fails this, a modulo-biased or
      // digit-skipping one does.
      expect(count).toBeGreaterThan(9_200);
      expect(count).toBeLessThan(10_800);
    }
  });

  it('draws different codes', () => {
    const codes = new Set(Array.from({ length: 1000 }, () => generateCode(10)));
    // 1000 draws from 10^10: a collision is a one-in-20-million event.
    expect(codes.size).toBe(1000);
  });
});

describe.each<[string, () => CodeHasher]>([
  ['BcryptCodeHasher', () => new BcryptCodeHasher(4)],
  ['HmacCodeHasher', () => new HmacCodeHasher(SECRET)],
])('%s', (_name, makeHasher) => {
  const hasher = makeHasher();
  const requestId = randomUUID();
  const code = '042917';

  it('stores something other than the code', async () => {
    const hash = await hasher.hash(code, requestId);
    expect(hash).not.toBe(code);
    expect(hash).not.toContain(code);
  });

  it('matches the right code', async () => {
    const hash = await hasher.hash(code, requestId);
    await expect(hasher.matches(code, requestId, hash)).resolves.toBe(true);
  });

  it.each(['042918', '42917', '0429170', '142917', '', ' 042917'])(
    'rejects a wrong code (%j)',
    async (guess) => {
      const hash = await hasher.hash(code, requestId);
      await expect(hasher.matches(guess, requestId, hash)).resolves.toBe(false);
    },
  );

  it('rejects the right code bound to another request', async () => {
    const hash = await hasher.hash(code, requestId);
    await expect(hasher.matches(code, randomUUID(), hash)).resolves.toBe(false);
  });

  it('hashes the same code differently for two requests', async () => {
    const [a, b] = await Promise.all([
      hasher.hash(code, randomUUID()),
      hasher.hash(code, randomUUID()),
    ]);
    expect(a).not.toBe(b);
  });

  it('rejects a tampered hash', async () => {
    const hash = await hasher.hash(code, requestId);
    // A character in the middle of the digest: changing it changes the decoded bytes.
    const i = hash.length - 12;
    const tampered = hash.slice(0, i) + (hash[i] === 'A' ? 'B' : 'A') + hash.slice(i + 1);
    expect(tampered).not.toBe(hash);
    await expect(hasher.matches(code, requestId, tampered)).resolves.toBe(false);
  });

  it('rejects a truncated hash', async () => {
    const hash = await hasher.hash(code, requestId);
    await expect(hasher.matches(code, requestId, hash.slice(0, -4))).resolves.toBe(false);
  });
});

describe('BcryptCodeHasher', () => {
  it('uses the configured cost and a fresh salt for each hash', async () => {
    const hasher = new BcryptCodeHasher(4);
    const requestId = randomUUID();
    const [a, b] = await Promise.all([
      hasher.hash('123456', requestId),
      hasher.hash('123456', requestId),
    ]);
    expect(a).toMatch(/^\$2[aby]\$04\$/);
    expect(a).not.toBe(b);
  });

  it('does not accept an HMAC hash', async () => {
    const hmacHash = await new HmacCodeHasher(SECRET).hash('123456', 'r');
    await expect(new BcryptCodeHasher(4).matches('123456', 'r', hmacHash)).resolves.toBe(false);
  });
});

describe('HmacCodeHasher', () => {
  it('digest is the hash it stores: the same code and request only, the secret keyed in', async () => {
    const hasher = new HmacCodeHasher(SECRET);
    const requestId = randomUUID();
    const stored = await hasher.hash('123456', requestId);
    expect(hasher.digest('123456', requestId)).toBe(stored);
    expect(hasher.digest('123457', requestId)).not.toBe(stored);
    expect(hasher.digest('123456', randomUUID())).not.toBe(stored);
    expect(new HmacCodeHasher(OTHER_SECRET).digest('123456', requestId)).not.toBe(stored);
    expect(stored).not.toContain('123456');
  });

  it('bcrypt has no digest: its hashes are salted', () => {
    expect((new BcryptCodeHasher(4) as { digest?: unknown }).digest).toBeUndefined();
  });

  it('does not match a hash made with another secret', async () => {
    const requestId = randomUUID();
    const hash = await new HmacCodeHasher(OTHER_SECRET).hash('123456', requestId);
    await expect(new HmacCodeHasher(SECRET).matches('123456', requestId, hash)).resolves.toBe(
      false,
    );
  });

  it('does not accept a bcrypt hash', async () => {
    const bcryptHash = await new BcryptCodeHasher(4).hash('123456', 'r');
    await expect(new HmacCodeHasher(SECRET).matches('123456', 'r', bcryptHash)).resolves.toBe(
      false,
    );
  });

  it('does not accept the digest without its prefix', async () => {
    const hash = await new HmacCodeHasher(SECRET).hash('123456', 'r');
    const digestOnly = hash.slice(hash.indexOf('$') + 1);
    await expect(new HmacCodeHasher(SECRET).matches('123456', 'r', digestOnly)).resolves.toBe(
      false,
    );
  });
});

describe('createCodeHasher', () => {
  it('builds the hasher the options name', () => {
    expect(createCodeHasher({ hasher: 'bcrypt', bcryptCost: 4 })).toBeInstanceOf(BcryptCodeHasher);
    expect(createCodeHasher({ hasher: 'hmac', bcryptCost: 4, hmacSecret: SECRET })).toBeInstanceOf(
      HmacCodeHasher,
    );
  });
});

describe('createVerificationToken', () => {
  it('makes a base64url token of at least 256 bits', () => {
    const { token } = createVerificationToken();
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(Buffer.from(token, 'base64url').length).toBeGreaterThanOrEqual(32);
    expect(Buffer.from(token, 'base64url').toString('base64url')).toBe(token);
  });

  it('stores the SHA-256 of the token, in hex, never the token', () => {
    const { token, hash } = createVerificationToken();
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(hash).toBe(createHash('sha256').update(token).digest('hex'));
    expect(hash).not.toBe(token);
    expect(hash).not.toContain(token);
  });

  it('hashes a token the same way when it comes back', () => {
    const { token, hash } = createVerificationToken();
    expect(hashVerificationToken(token)).toBe(hash);
    expect(hashVerificationToken(`${token}x`)).not.toBe(hash);
  });

  it('makes a different token each time', () => {
    const tokens = new Set(Array.from({ length: 1000 }, () => createVerificationToken().token));
    expect(tokens.size).toBe(1000);
  });
});
