import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

/** What a re-delivery needs of a send and may not keep in the clear: the code, the fallback email. */
export interface SealedSend {
  code: string;
  /** The account's email the host gave server-side (`fallbackEmail`), if any. */
  fallbackEmail?: string;
  /** The locale the first message was written in. */
  locale?: string;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;
const VERSION = 1;

/**
 * Seals a send's code for a later re-delivery: AES-256-GCM under a key derived (HKDF-SHA256) from a
 * server secret, a fresh 96-bit IV each time, and the request id as additional data, so a sealed
 * value copied onto another request's row does not open. Layout: version byte, IV, tag, ciphertext.
 * See SECURITY.md ("Re-delivery") for why the code is sealed rather than re-issued.
 */
export class CodeSeal {
  private readonly key: Buffer;

  constructor(secret: string) {
    if (Buffer.byteLength(secret) < 32) {
      throw new Error('CodeSeal needs a secret of at least 32 bytes');
    }
    this.key = Buffer.from(
      hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.alloc(0), 'nest-otp code seal v1', 32),
    );
  }

  seal(requestId: string, send: SealedSend): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(requestId.toLowerCase(), 'utf8'));
    const plain = Buffer.from(
      JSON.stringify({ c: send.code, e: send.fallbackEmail, l: send.locale }),
      'utf8',
    );
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), body]);
  }

  /** Opens a sealed send; throws when it was altered, sealed for another request or another key. */
  open(requestId: string, sealed: Buffer): SealedSend {
    if (sealed.length < 1 + IV_BYTES + TAG_BYTES || sealed[0] !== VERSION) {
      throw new Error('sealed code has an unknown layout');
    }
    const iv = sealed.subarray(1, 1 + IV_BYTES);
    const tag = sealed.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', this.key, iv);
    decipher.setAAD(Buffer.from(requestId.toLowerCase(), 'utf8'));
    decipher.setAuthTag(tag);
    const plain = Buffer.concat([
      decipher.update(sealed.subarray(1 + IV_BYTES + TAG_BYTES)),
      decipher.final(),
    ]).toString('utf8');
    const parsed = JSON.parse(plain) as { c: string; e?: string; l?: string };
    return {
      code: parsed.c,
      ...(parsed.e ? { fallbackEmail: parsed.e } : {}),
      ...(parsed.l ? { locale: parsed.l } : {}),
    };
  }
}
