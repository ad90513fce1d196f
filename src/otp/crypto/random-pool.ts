import { randomFillSync } from 'node:crypto';

/**
 * CSPRNG bytes drawn a block at a time and handed out once each, as Node does for `randomUUID`:
 * one `randomBytes` call costs microseconds of fixed overhead (a job object, OpenSSL's provider
 * lookup) whatever its size, so a block of 4 KiB serves 128 tokens for about the price of one.
 * The bytes are the same CSPRNG's output; a handed-out range is zeroed, so the block never holds a
 * past secret, only future ones. Never shared across processes (each refills its own).
 */
export class RandomPool {
  private readonly block: Buffer;
  private offset: number;

  constructor(blockSize = 4096) {
    this.block = Buffer.alloc(blockSize);
    this.offset = blockSize; // empty: the first draw fills it
  }

  /** `size` fresh random bytes as base64url, never handed out before. */
  base64url(size: number): string {
    if (size > this.block.length) throw new RangeError(`RandomPool: ${size} bytes a draw at most`);
    if (this.offset + size > this.block.length) {
      randomFillSync(this.block);
      this.offset = 0;
    }
    const start = this.offset;
    this.offset += size;
    const text = this.block.toString('base64url', start, this.offset);
    this.block.fill(0, start, this.offset);
    return text;
  }
}
