import { readFileSync } from 'node:fs';
import type { BenchDb } from './bench-db.js';

/** Clock ticks a second in /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** CPU time (user + system, ms) of one process from /proc, or undefined when unreadable. */
function processCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND) * 1000;
  } catch {
    return undefined;
  }
}

/**
 * CPU time of the Postgres backends serving one application (by `application_name`), read from
 * /proc: what a server's statements cost Postgres, apart from what they cost the server. Only
 * meaningful with Postgres on this machine (the default); NaN otherwise.
 */
export class PostgresCpu {
  constructor(private readonly db: BenchDb) {}

  /** CPU ms so far of each backend of `applicationName`, by pid. */
  async snapshot(applicationName: string): Promise<Map<number, number>> {
    const rows = await this.db.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE application_name = $1',
      [applicationName],
    );
    const cpu = new Map<number, number>();
    for (const { pid } of rows) {
      const ms = processCpuMs(pid);
      if (ms !== undefined) cpu.set(pid, ms);
    }
    return cpu;
  }

  /** CPU ms the backends spent between two snapshots (a backend new in `after` counts whole). */
  static spent(before: Map<number, number>, after: Map<number, number>): number {
    if (after.size === 0) return Number.NaN;
    let ms = 0;
    for (const [pid, now] of after) ms += now - (before.get(pid) ?? 0);
    return ms;
  }
}
