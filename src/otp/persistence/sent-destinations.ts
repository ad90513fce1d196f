import { trimToCapacity } from '../common/trim-to-capacity.js';

/**
 * Distinct destinations kept: about 1.5 MB of heap for ordinary addresses. Past it the oldest goes
 * first; forgetting one costs its next send from this instance one short extra round trip.
 */
const CAPACITY = 10_000;

/**
 * The destinations this instance has seen a history for (it sent to them, or found one there):
 * only a hint of which way a send should go. A destination not here is likely new, and its send
 * tries the one-statement first send (`OtpRequestRepository.insertFirst`), which writes nothing
 * where a history exists, so a wrong guess (a send from another instance, a restart, an entry
 * pushed out) costs that send one short round trip, never a wrong decision. A destination here
 * reads its history first, as every send did before, which is right for any destination.
 */
export class SentDestinations {
  private readonly seen = new Set<string>();

  constructor(private readonly capacity = CAPACITY) {}

  has(destination: string): boolean {
    return this.seen.has(destination);
  }

  add(destination: string): void {
    if (this.capacity === 0 || this.seen.has(destination)) return;
    this.seen.add(destination);
    trimToCapacity(this.seen, this.capacity);
  }

  get size(): number {
    return this.seen.size;
  }
}
