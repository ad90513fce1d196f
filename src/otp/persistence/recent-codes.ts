import { trimToCapacity } from '../common/trim-to-capacity.js';

/** A code this instance sent: its request, until it expires. */
export interface RecentCode {
  readonly id: string;
  readonly expiresAt: Date;
}

/**
 * The codes this instance sent lately, one a flow (destination and purpose): the request each one
 * belongs to, so that a verify can bind its guess to that request before the round trip and let the
 * reserving statement compare it (see `HmacCodeHasher.digest`). No hash is kept. Only a hint: the
 * statement still requires the row to be the flow's active, delivered, unexpired code with
 * attempts left, and a missing or stale entry (a resend or verify on another instance, a restart)
 * takes the usual path. Bounded: past `capacity` entries the oldest goes first (a code lives
 * minutes, so the oldest is the likeliest to be dead).
 */
export class RecentCodes {
  private readonly byFlow = new Map<string, RecentCode>();

  constructor(private readonly capacity: number) {}

  remember(destination: string, purpose: string, code: RecentCode): void {
    if (this.capacity === 0) return;
    const key = flowKey(destination, purpose);
    // Re-inserted, so a resend moves its flow to the young end.
    this.byFlow.delete(key);
    this.byFlow.set(key, code);
    trimToCapacity(this.byFlow, this.capacity);
  }

  /** The flow's remembered code, unless it has expired by this instance's clock. */
  recall(destination: string, purpose: string, now = Date.now()): RecentCode | undefined {
    const key = flowKey(destination, purpose);
    const code = this.byFlow.get(key);
    if (code && code.expiresAt.getTime() <= now) {
      this.byFlow.delete(key);
      return undefined;
    }
    return code;
  }

  /** Drops the flow's entry if it still names request `id` (a later send may have replaced it). */
  forget(destination: string, purpose: string, id: string): void {
    const key = flowKey(destination, purpose);
    if (this.byFlow.get(key)?.id === id) this.byFlow.delete(key);
  }

  get size(): number {
    return this.byFlow.size;
  }
}

// A purpose never holds a NUL (it is validated against a pattern), so keys never collide.
const flowKey = (destination: string, purpose: string): string => `${purpose}\u0000${destination}`;
