/**
 * What a target against the bare service leaves nest-otp, in CPU. On the bench's 2 cores the
 * server, its Postgres backends and the client driving it share the machine, so a run's rate goes
 * as the inverse of their CPU a request summed (the section prints the rate this predicts next to
 * the one measured). A target of `atLeast` times the bare service's rate then caps that sum at the
 * bare service's own divided by `atLeast`; the Nest floor (the bare request in a bare Nest
 * controller) spends part of it before nest-otp does anything.
 */

/** One load run's CPU, as the side-by-side section measures it. */
export interface RunCpu {
  rps: number;
  /** The server process's CPU, ms a request. */
  serverMs: number;
  /** Its Postgres backends' CPU, ms a request. */
  postgresMs: number;
  /** The client's CPU over the run, in % of a core. */
  clientPct: number;
}

/** The run's CPU a request, by part and summed. */
export interface CpuParts {
  serverMs: number;
  postgresMs: number;
  clientMs: number;
  totalMs: number;
}

export function cpuParts(run: RunCpu): CpuParts {
  // % of a core over the run, spread over its requests: pct / 100 * 1000 ms a second / rps.
  const clientMs = (run.clientPct * 10) / run.rps;
  return {
    serverMs: run.serverMs,
    postgresMs: run.postgresMs,
    clientMs,
    totalMs: run.serverMs + run.postgresMs + clientMs,
  };
}

export interface TargetBudget {
  /** The path's rate over the bare service's, as measured. */
  measured: number;
  /** The same ratio as the CPU sums predict: the bare service's sum over the path's. */
  predicted: number;
  /** The most a request of the path may cost, summed, for the target to hold. */
  allowedMs: number;
  /** The Nest floor's request, summed. */
  floorMs: number;
  /** What the target leaves nest-otp over the framework alone (negative: less than nothing). */
  leftMs: number;
  /** What nest-otp's request costs over the floor's, by part. */
  overFloor: CpuParts;
}

export function targetBudget(
  path: RunCpu,
  bare: RunCpu,
  floor: RunCpu,
  atLeast: number,
): TargetBudget {
  const mine = cpuParts(path);
  const bareMs = cpuParts(bare).totalMs;
  const floorParts = cpuParts(floor);
  const allowedMs = bareMs / atLeast;
  return {
    measured: path.rps / bare.rps,
    predicted: bareMs / mine.totalMs,
    allowedMs,
    floorMs: floorParts.totalMs,
    leftMs: allowedMs - floorParts.totalMs,
    overFloor: {
      serverMs: mine.serverMs - floorParts.serverMs,
      postgresMs: mine.postgresMs - floorParts.postgresMs,
      clientMs: mine.clientMs - floorParts.clientMs,
      totalMs: mine.totalMs - floorParts.totalMs,
    },
  };
}
