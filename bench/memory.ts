import type { Figures } from './figures.js';
import { mb } from './stats.js';

/** RSS of the app process over one load phase (bytes). */
export interface MemoryRow {
  app: 'bcrypt' | 'hmac';
  phase: string;
  bootRss: number;
  phasePeak: number;
  rss: number;
  maxRss: number;
}

/** Section 4: peak RSS of the app process during the load runs. */
export function memorySection(rows: MemoryRow[], figures: Figures): void {
  console.log('\n== 4. memory: RSS of the app process (MiB) ==');
  console.table(
    rows.map((r) => ({
      app: r.app,
      phase: r.phase,
      'after boot': mb(r.bootRss),
      'peak in phase (sampled 100 ms)': mb(r.phasePeak),
      'at end of phase': mb(r.rss),
      'process max (getrusage)': mb(r.maxRss),
    })),
  );
  for (const app of ['bcrypt', 'hmac'] as const) {
    const mine = rows.filter((r) => r.app === app);
    if (mine.length === 0) continue;
    figures.add(`app-peak-rss-mib-${app}`, Math.max(...mine.map((r) => mb(r.phasePeak))), 1);
  }
}
