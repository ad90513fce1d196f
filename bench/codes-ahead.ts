/**
 * How many codes to mint before a verify run, so that the run never runs out: a run that runs dry
 * stops early, and measures fewer seconds than the others. The estimate is the fastest rate seen
 * for that client, server and path; before any measured run, the warm-up's rate, which a 1 s run
 * on a cold JIT understates, hence `WARM_UP_HEADROOM`. A fixed 1,500 a second, assumed before round
 * 13, ran the first Fastify verify dry on a host where it ran at 2,359.
 */
export const WARM_UP_HEADROOM = 2;
/** Margin over the estimate, for a run faster than every one before it. */
export const RUN_HEADROOM = 1.4;
/** The least rate assumed, whatever was seen. */
export const FLOOR_RATE = 1500;

export function codesAhead(
  seen: { bestRate?: number; warmUpRate?: number },
  seconds: number,
): number {
  const estimate =
    seen.bestRate ?? (seen.warmUpRate === undefined ? 0 : seen.warmUpRate * WARM_UP_HEADROOM);
  return Math.ceil(Math.max(estimate, FLOOR_RATE) * seconds * RUN_HEADROOM) + 100;
}
