import { trimToCapacity } from '../common/trim-to-capacity.js';
import { type Destination, type DestinationRules, normalizeDestination } from './destination.js';

/**
 * Distinct raw destinations kept: about 2 MB of heap for ordinary addresses (3.4 MB were every one
 * 254 characters long), and a verify soon after its send finds its own.
 */
const CAPACITY = 10_000;

/**
 * `normalizeDestination` with a memory of its recent answers. The checks cost microseconds a call
 * (an email's `isEmail` about 7, a phone's parse and number type over 20) and a flow repeats the
 * same raw string: the send, then its verify, a resend, the status. A pure function of the string
 * and the module's fixed rules, so a remembered answer is the answer. Only valid destinations are
 * kept (a refused one throws again, worded the same); past `capacity` the oldest goes first.
 */
export class DestinationNormalizer {
  private readonly known = new Map<string, Destination>();

  constructor(
    private readonly rules: DestinationRules,
    private readonly capacity = CAPACITY,
  ) {}

  normalize(raw: string): Destination {
    const known = this.known.get(raw);
    if (known) return known;
    const destination = Object.freeze(normalizeDestination(raw, this.rules));
    if (this.capacity > 0) {
      this.known.set(raw, destination);
      trimToCapacity(this.known, this.capacity);
    }
    return destination;
  }

  get size(): number {
    return this.known.size;
  }
}
