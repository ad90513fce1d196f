import { readFileSync } from 'node:fs';

/** The parts of a V8 `.cpuprofile` (from `node --cpu-prof`) the summary reads. */
interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
  }[];
  samples: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileEntry {
  name: string;
  ms: number;
  share: number;
}

/** Where a frame's code lives: a package, the module's own source, the bench, or Node itself. */
export function ownerOf(url: string): string {
  if (url === '') return '(native / V8)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1] as string;
  if (url.startsWith('node:')) return 'node:' + (url.slice(5).split('/')[0] ?? '');
  const own = /\/build\/(src|example|bench)\//.exec(url);
  if (own) return `nest-otp ${own[1]}/`;
  return url;
}

/**
 * Native socket writes. V8 samples on wall-clock time, and on 2 vCPUs a process that wakes another
 * (a write to Postgres, to the client) is often preempted inside the syscall: samples land there
 * while the process is off the CPU. /proc shows the app's system time at ~0.1 ms a request, while
 * these frames collect ~half the samples, so they are reported apart, not as CPU spent.
 */
const OFF_CPU = /^(writev|writeBuffer|writeUtf8String|writeLatin1String|writeAsciiString)$/;

/**
 * Self time of a CPU profile, by function (name, file and line) and by owner (package), largest
 * first: where the app's CPU went, outside anything it waited on. Idle time and the socket-write
 * frames (`OFF_CPU`) are left out of the entries and the shares; `offCpu` says how much that was.
 */
export function summarizeProfile(
  path: string,
  top = 25,
): { total: number; offCpu: number; functions: ProfileEntry[]; owners: ProfileEntry[] } {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  // Each sample counts for the nominal interval, not for its time delta: on a loaded machine the
  // sampling thread is itself delayed, and a late sample would lend its whole delay to whatever
  // frame it happens to land on.
  const interval = (profile.endTime - profile.startTime) / Math.max(profile.samples.length, 1);
  const selfUs = new Map<number, number>();
  for (const id of profile.samples) selfUs.set(id, (selfUs.get(id) ?? 0) + interval);
  const functions = new Map<string, number>();
  const owners = new Map<string, number>();
  let total = 0;
  let offCpu = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)?.callFrame;
    if (!frame || frame.functionName === '(idle)') continue;
    if (frame.url === '' && OFF_CPU.test(frame.functionName)) {
      offCpu += us;
      continue;
    }
    total += us;
    const file = frame.url.replace(/^.*node_modules\//, '').replace(/^.*\/build\//, '');
    const key = frame.url
      ? `${frame.functionName || '(anonymous)'} ${file}:${frame.lineNumber + 1}`
      : frame.functionName;
    functions.set(key, (functions.get(key) ?? 0) + us);
    const owner = ownerOf(frame.url);
    owners.set(owner, (owners.get(owner) ?? 0) + us);
  }
  const entries = (map: Map<string, number>): ProfileEntry[] =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({
        name,
        ms: Math.round(us / 100) / 10,
        share: Math.round((us / total) * 1000) / 10,
      }));
  return {
    total: total / 1000,
    offCpu: offCpu / 1000,
    functions: entries(functions),
    owners: entries(owners),
  };
}
