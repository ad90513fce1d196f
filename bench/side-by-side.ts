import type { AppHandle } from './app-handle.js';
import type { BenchDb } from './bench-db.js';
import type { ProcessStats } from './child.js';
import { codesAhead } from './codes-ahead.js';
import { type RunCpu, targetBudget } from './cpu-budget.js';
import { CONCURRENCY_SIDE_BY_SIDE, settings } from './config.js';
import { CLIENTS, type Client, drive, runFetchLoad } from './fetch-load.js';
import type { Figures } from './figures.js';
import type { LoadOptions, LoadResult } from './load.js';
import type { PeerHandle, WebhookHandle } from './peers/peer-handle.js';
import { PostgresCpu } from './postgres-cpu.js';
import { DELIVERY_RECORDS_TOGETHER, labelOf } from './statements.js';
import { median, round } from './stats.js';

type Code = [destination: string, code: string];
/** nest-otp's example app on each adapter. */
type AppName = 'nest-otp' | 'nest-otp-fastify';
/** The servers whose verify takes a real code minted beforehand. */
type Verifier = AppName | 'better-auth';
type ServerName = Verifier | 'bare' | 'nest-bare' | 'nest-bare-fastify';
/** `resend`: nest-otp only, a send to a destination with an active code this instance sent. */
type Path = 'send' | 'verify' | 'resend';

interface Target {
  name: ServerName;
  /** The `application_name` of its Postgres sessions. */
  applicationName: string;
  /** The database its sessions are on. */
  database: string;
  port: number;
  paths: Record<'send' | 'verify', string>;
  stats: () => Promise<ProcessStats>;
}

interface Row {
  repeat: number;
  client: Client;
  server: ServerName;
  path: Path;
  'req/s': number;
  'p50 ms': number;
  'p99 ms': number;
  'server CPU ms/req': number;
  'Postgres CPU ms/req': number;
  /** The bench process's CPU over the run, in % of one core: the client's own cost. */
  'client CPU %': number;
  statuses: string;
  errors: number;
  'ran dry': boolean;
}

/** The processes section 5 compares (each in its own process). */
export interface SideBySideServers {
  /** nest-otp's example app on Express (what the other sections run). */
  app: AppHandle;
  /** The same app, same options, on Fastify, on a database of its own (see `snapshot`). */
  fastifyApp: AppHandle;
  betterAuth: PeerHandle;
  bare: PeerHandle;
  /** The Nest floors: the bare request in a bare Nest controller, on Express and on Fastify. */
  nestBare: PeerHandle;
  nestBareFastify: PeerHandle;
}

/** The bench process's CPU, in % of one core, from which a run counts as client-bound. */
const CLIENT_BOUND_PCT = 90;

const databaseName = (url: string): string => decodeURIComponent(new URL(url).pathname.slice(1));

/**
 * Section 5: nest-otp (HMAC, codes delivered by its `WebhookOtpProvider`) on Express and on
 * Fastify, side by side with Better Auth's email-otp plugin (codes delivered by its
 * `sendVerificationOTP` to the same webhook), a bare `node:http` + `pg` service (one INSERT and
 * one SELECT a request) and the same request in a bare Nest controller on each adapter (the
 * framework's floor), in one run, each server in its own process, on the same Postgres, at 16
 * concurrent requests, driven by a Node `fetch` client and by autocannon in turn. Sends go to
 * fresh destinations, as the peers' do; verifies use real codes (right code: nest-otp answers 200
 * with a token, Better Auth signs in and answers 200 with a session). nest-otp also sends again to
 * destinations holding an active code it sent (`resend`: the history read first, the code
 * superseded), which a destination's first send does not show. The CPU time of each server's process over
 * each run, a request, is printed too, and that of the Postgres backends serving it (by
 * application_name and database, from /proc).
 */
export async function sideBySideSection(
  servers: SideBySideServers,
  sink: WebhookHandle,
  db: BenchDb,
  figures: Figures,
): Promise<void> {
  const c = CONCURRENCY_SIDE_BY_SIDE;
  const postgres = new PostgresCpu(db);
  console.log(
    `\n== 5. side by side: nest-otp on Express and on Fastify, Better Auth email-otp, bare ` +
      `node:http + pg, the Nest floors (${c} concurrent, ${settings.loadSeconds} s runs, fetch ` +
      `and autocannon clients) ==`,
  );
  const apps: Record<AppName, AppHandle> = {
    'nest-otp': servers.app,
    'nest-otp-fastify': servers.fastifyApp,
  };
  const app = (name: AppName): Target => ({
    name,
    // The module names its pool's sessions so, whatever the host's DataSource says.
    applicationName: 'nest-otp',
    database: databaseName(apps[name].databaseUrl),
    port: apps[name].port,
    paths: { send: '/otp/send', verify: '/otp/verify' },
    stats: () => apps[name].call('stats', {}),
  });
  const peer = (name: ServerName, handle: PeerHandle, applicationName: string): Target => ({
    name,
    applicationName,
    database: databaseName(handle.databaseUrl),
    port: handle.port,
    paths: handle.paths,
    stats: () => handle.call('stats', {}),
  });
  const targets: Record<ServerName, Target> = {
    'nest-otp': app('nest-otp'),
    'nest-otp-fastify': app('nest-otp-fastify'),
    'better-auth': peer('better-auth', servers.betterAuth, 'bench-better-auth'),
    bare: peer('bare', servers.bare, 'bench-bare'),
    'nest-bare': peer('nest-bare', servers.nestBare, 'bench-nest-bare'),
    'nest-bare-fastify': peer(
      'nest-bare-fastify',
      servers.nestBareFastify,
      'bench-nest-bare-fastify',
    ),
  };
  const isApp = (name: ServerName): name is AppName =>
    name === 'nest-otp' || name === 'nest-otp-fastify';

  /** Each verifier's codes, told apart in the shared sink by their destination's prefix. */
  const prefixes: Record<Verifier, string> = {
    'nest-otp': 'ss-n-',
    'nest-otp-fastify': 'ss-nf-',
    'better-auth': 'ss-ba-',
  };
  const pools: Record<Verifier, Code[]> = {
    'nest-otp': [],
    'nest-otp-fastify': [],
    'better-auth': [],
  };
  const collect = async (): Promise<void> => {
    for (const code of await sink.call('takeCodes', {})) {
      for (const which of Object.keys(prefixes) as Verifier[]) {
        if (code[0].startsWith(prefixes[which])) pools[which].push(code);
      }
    }
  };
  let sequence = 0;
  const nestOtp = (which: AppName): Record<Path, () => unknown> => ({
    send: () => ({ destination: `${prefixes[which]}${sequence++}@bench.example` }),
    verify: () => {
      const entry = pools[which].pop();
      return entry && { destination: entry[0], code: entry[1] };
    },
    resend: () => {
      const entry = pools[which].pop();
      return entry && { destination: entry[0] };
    },
  });
  const bareRequest = (prefix: string): Record<'send' | 'verify', () => unknown> => ({
    send: () => ({ destination: `${prefix}${sequence++}@bench.example`, code: '123456' }),
    verify: () => ({ destination: `${prefix}${sequence++}@bench.example`, code: '123456' }),
  });
  const bodies: Record<ServerName, Partial<Record<Path, () => unknown>>> = {
    'nest-otp': nestOtp('nest-otp'),
    'nest-otp-fastify': nestOtp('nest-otp-fastify'),
    'better-auth': {
      send: () => ({ email: `ss-ba-${sequence++}@bench.example`, type: 'sign-in' }),
      verify: () => {
        const entry = pools['better-auth'].pop();
        return entry && { email: entry[0], otp: entry[1] };
      },
    },
    bare: bareRequest('ss-bare-'),
    'nest-bare': bareRequest('ss-nb-'),
    'nest-bare-fastify': bareRequest('ss-nbf-'),
  };
  const expected: Record<ServerName, Partial<Record<Path, number>>> = {
    'nest-otp': { send: 202, verify: 200, resend: 202 },
    'nest-otp-fastify': { send: 202, verify: 200, resend: 202 },
    'better-auth': { send: 200, verify: 200 },
    bare: { send: 200, verify: 200 },
    'nest-bare': { send: 200, verify: 200 },
    'nest-bare-fastify': { send: 200, verify: 200 },
  };
  const options = (server: Target, path: Path, seconds: number): LoadOptions => ({
    port: server.port,
    path: server.paths[path === 'resend' ? 'send' : path],
    connections: c,
    durationSeconds: seconds,
    nextBody: bodies[server.name][path] ?? (() => undefined),
    expect: expected[server.name][path] ?? 200,
    // Better Auth refuses a POST without an Origin (CSRF); a browser always sends one. Every
    // server gets the same headers.
    headers: { origin: `http://127.0.0.1:${server.port}` },
  });

  /** Codes for a verify run ahead: minted outside the measured runs. */
  let mints = 0;
  const topUp = async (which: Verifier, wanted: number): Promise<void> => {
    await collect();
    const missing = wanted - pools[which].length;
    if (missing <= 0) return;
    mints += 1;
    if (isApp(which)) {
      const prefix = `${prefixes[which]}m${mints}`;
      await apps[which].call('mint', { prefix, count: missing, concurrency: 16 });
    } else {
      let left = missing;
      await runFetchLoad({
        ...options(targets[which], 'send', 600),
        amount: missing,
        nextBody: () => (left-- > 0 ? bodies[which].send?.() : undefined),
      });
    }
    await collect();
  };

  /**
   * CPU ms so far of the Postgres backends serving `server`, by pid. Both nest-otp apps name their
   * sessions 'nest-otp' (the module sets it on its own pool, over the host's), so each app runs
   * on a database of its own (same server, same migrations, both fresh) and its backends are the
   * 'nest-otp' ones on its database. Asked of pg_stat_activity at each snapshot, the set follows
   * the pool as it opens and closes connections during the runs, which a list of pids taken once
   * would not. The peers are filtered by their database too, so nothing of another bench run on
   * the same server is counted.
   */
  const snapshot = async (server: Target): Promise<Map<number, number>> => {
    const cpu = await postgres.snapshot(server.applicationName);
    const rows = await db.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = $2',
      [server.applicationName, server.database],
    );
    const mine = new Set(rows.map((r) => r.pid));
    for (const pid of cpu.keys()) if (!mine.has(pid)) cpu.delete(pid);
    return cpu;
  };

  const measure = async (
    client: Client,
    server: Target,
    path: Path,
    seconds: number,
  ): Promise<[LoadResult, number, number, number]> => {
    const pgBefore = await snapshot(server);
    const before = await server.stats();
    const clientBefore = process.cpuUsage();
    const started = performance.now();
    const result = await drive(client, options(server, path, seconds));
    const clientCpu = process.cpuUsage(clientBefore);
    const clientShare = (clientCpu.user + clientCpu.system) / 10 / (performance.now() - started);
    // The tail of the run (answers still on their way) is part of its CPU.
    if (isApp(server.name)) await apps[server.name].call('settle', {});
    const after = await server.stats();
    const pgAfter = await snapshot(server);
    const answered = Math.max(
      Object.values(result.statuses).reduce((a, n) => a + n, 0),
      1,
    );
    return [
      result,
      (after.cpuMicros - before.cpuMicros) / 1000 / answered,
      PostgresCpu.spent(pgBefore, pgAfter) / answered,
      clientShare,
    ];
  };

  /**
   * Every run of a repeat, one server after the other (each adapter's nest-otp next to the
   * other, each floor next to the other), so drift on the machine spreads over all of them.
   */
  const plan: [ServerName, Path][] = [
    ['nest-otp', 'send'],
    ['nest-otp-fastify', 'send'],
    ['better-auth', 'send'],
    ['bare', 'send'],
    ['nest-bare', 'send'],
    ['nest-bare-fastify', 'send'],
    ['nest-otp', 'verify'],
    ['nest-otp-fastify', 'verify'],
    ['better-auth', 'verify'],
    ['nest-otp', 'resend'],
    ['nest-otp-fastify', 'resend'],
  ];
  const verifiers: Verifier[] = ['nest-otp', 'nest-otp-fastify', 'better-auth'];

  // Warm-up (JIT, pools, connections), not measured.
  for (const client of CLIENTS) {
    for (const server of Object.values(targets)) await measure(client, server, 'send', 1);
  }
  for (const which of verifiers) await topUp(which, isApp(which) ? 2000 : 600);
  /** Rates of the warm-up's verify and resend runs, by client, server and path. */
  const warmUp = new Map<string, number>();
  for (const client of CLIENTS) {
    for (const which of verifiers) {
      const [r] = await measure(client, targets[which], 'verify', 1);
      warmUp.set(`${client}-${which}-verify`, r.rps);
    }
    for (const which of ['nest-otp', 'nest-otp-fastify'] as const) {
      const [r] = await measure(client, targets[which], 'resend', 1);
      warmUp.set(`${client}-${which}-resend`, r.rps);
    }
  }

  const rows: Row[] = [];
  const best = new Map<string, number>();
  for (let repeat = 1; repeat <= settings.repeats; repeat++) {
    for (const client of CLIENTS) {
      for (const [name, path] of plan) {
        const server = targets[name];
        const key = `${client}-${name}`;
        if (path !== 'send') {
          const seen = {
            bestRate: best.get(`${key}-${path}`),
            warmUpRate: warmUp.get(`${key}-${path}`),
          };
          await topUp(name as Verifier, codesAhead(seen, settings.loadSeconds));
        }
        const [r, cpuMs, pgMs, clientPct] = await measure(
          client,
          server,
          path,
          settings.loadSeconds,
        );
        if (path !== 'send') {
          best.set(`${key}-${path}`, Math.max(best.get(`${key}-${path}`) ?? 0, r.rps));
        }
        rows.push({
          repeat,
          client,
          server: name,
          path,
          'req/s': round(r.rps, 1),
          'p50 ms': round(r.p50, 2),
          'p99 ms': round(r.p99, 2),
          'server CPU ms/req': round(cpuMs, 3),
          'Postgres CPU ms/req': round(pgMs, 3),
          'client CPU %': round(clientPct, 0),
          statuses: JSON.stringify(r.statuses),
          errors: r.errors,
          'ran dry': r.ranDry,
        });
      }
      await collect();
    }
  }
  console.table(rows);

  const med = (client: Client, server: ServerName, path: Path, column: keyof Row): number =>
    median(
      rows
        .filter((r) => r.client === client && r.server === server && r.path === path)
        .map((r) => r[column] as number),
    );
  const summary = [];
  for (const client of CLIENTS) {
    for (const [server, path] of plan) {
      const rps = med(client, server, path, 'req/s');
      const cpu = med(client, server, path, 'server CPU ms/req');
      const pgCpu = med(client, server, path, 'Postgres CPU ms/req');
      const bareLike =
        server === 'bare' || server === 'nest-bare' || server === 'nest-bare-fastify';
      const label = bareLike ? 'insert+select' : path;
      // Rounded as the rows are: a median of two is a mean, with a float's noise in its digits.
      summary.push({
        client,
        server,
        path: label,
        'req/s': round(rps, 1),
        'p50 ms': round(med(client, server, path, 'p50 ms'), 2),
        'p99 ms': round(med(client, server, path, 'p99 ms'), 2),
        'server CPU ms/req': round(cpu, 3),
        'Postgres CPU ms/req': round(pgCpu, 3),
        'client CPU %': round(med(client, server, path, 'client CPU %'), 1),
      });
      const name = `side-${client}-${server}-${bareLike ? 'request' : path}`;
      figures.add(`${name}-req/s`, rps, 1);
      figures.add(`${name}-cpu-ms`, cpu, 3);
      figures.add(`${name}-postgres-cpu-ms`, pgCpu, 3);
      figures.add(`${name}-client-cpu-pct`, med(client, server, path, 'client CPU %'), 0);
    }
  }
  console.log('medians over the repeats');
  console.table(summary);

  /** Express's figures keep their names; Fastify's carry `-fastify`. */
  const variants = [
    { app: 'nest-otp', floor: 'nest-bare', tag: '', adapter: 'Express' },
    { app: 'nest-otp-fastify', floor: 'nest-bare-fastify', tag: '-fastify', adapter: 'Fastify' },
  ] as const;

  // The app's CPU a request outside the hash: what the framework, validation, the driver and
  // the module cost. The hasher's own CPU (one hash a send, one check a verify) is measured apart,
  // in each app's own process.
  for (const { app: name, tag, adapter } of variants) {
    const hash = await apps[name].call('hashCost', { count: 2000 });
    const sendCpu = med('fetch', name, 'send', 'server CPU ms/req') - hash.hashMicros / 1000;
    const verifyCpu = med('fetch', name, 'verify', 'server CPU ms/req') - hash.matchMicros / 1000;
    console.log(
      `nest-otp on ${adapter}, CPU a request outside the hash (fetch client, process.cpuUsage ` +
        `over the runs): send ${round(sendCpu, 3)} ms, verify ${round(verifyCpu, 3)} ms ` +
        `(HMAC: ${round(hash.hashMicros, 1)} µs a hash, ${round(hash.matchMicros, 1)} µs a check)`,
    );
    figures.add(`app-cpu-ms-per-send-outside-hash${tag}`, sendCpu, 3);
    figures.add(`app-cpu-ms-per-verify-outside-hash${tag}`, verifyCpu, 3);
  }

  // Statements a send under the same load, counted in one more run after the measured ones (the
  // counter costs the app a little): since round 13 the delivery records of sends that end
  // together share one statement, so a send costs fewer than its two round trips alone.
  for (const { app: name, tag, adapter } of variants) {
    await apps[name].call('countQueries', {});
    const run = await drive('fetch', options(targets[name], 'send', 3));
    await apps[name].call('settle', {});
    const counted = await apps[name].call('queries', {});
    const sends = run.statuses['202'] ?? 0;
    const statements = counted.reduce((sum, s) => sum + s.count, 0);
    const records = counted
      .filter((s) => labelOf(s.text) === DELIVERY_RECORDS_TOGETHER)
      .reduce((sum, s) => sum + s.count, 0);
    console.log(
      `nest-otp on ${adapter}, statements under load (fetch client, 16 concurrent, 3 s, counted): ` +
        `${round(statements / sends, 2)} a send; ${sends} sends recorded their deliveries in ` +
        `${records} statements (${round(sends / records, 2)} a statement)`,
    );
    figures.add(`side-send-statements-per-send${tag}`, statements / sends, 2);
    figures.add(`side-send-sends-per-delivery-record${tag}`, sends / records, 2);
  }

  for (const client of CLIENTS) {
    const rps = (server: ServerName, path: Path): number => med(client, server, path, 'req/s');
    const suffix = client === 'fetch' ? '' : ` (${client}, not a target)`;
    const add = (name: string, mine: number, reference: string, theirs: number, atLeast: number) =>
      client === 'fetch'
        ? figures.target(name, { figure: `${name}`, mine, reference, theirs, atLeast })
        : figures.add(`ratio-${name}-${client}`, mine / theirs, 3);
    // The same targets on each adapter: each adapter's app against the same references.
    for (const { app: name, floor, tag } of variants) {
      const targets: [
        path: Path,
        figure: string,
        reference: string,
        of: number,
        atLeast: number,
      ][] = [
        ['send', 'better-auth-send', 'Better Auth send', rps('better-auth', 'send'), 1.5],
        ['verify', 'better-auth-sign-in', 'Better Auth sign-in', rps('better-auth', 'verify'), 2],
        ['send', 'bare', 'bare node:http + pg', rps('bare', 'send'), 0.4],
        ['verify', 'bare', 'bare node:http + pg', rps('bare', 'send'), 0.8],
      ];
      for (const [path, figure, reference, of, atLeast] of targets) {
        add(
          `hmac-${path}${tag}-vs-${figure}`,
          rps(name, path),
          `${reference}${suffix}`,
          of,
          atLeast,
        );
      }
      // Not a target: a send to a destination with a history (read first, its code superseded),
      // against the same reference as a first send.
      figures.add(
        `ratio-hmac-resend${tag}-vs-better-auth-send-${client}`,
        rps(name, 'resend') / rps('better-auth', 'send'),
        3,
      );
      // Not targets: how far the framework alone stands from the bare service (the same request
      // in a bare Nest controller on this adapter), and nest-otp from that floor.
      const floorRps = rps(floor, 'send');
      figures.add(`ratio-${floor}-vs-bare-${client}`, floorRps / rps('bare', 'send'), 3);
      figures.add(`ratio-hmac-send${tag}-vs-${floor}-${client}`, rps(name, 'send') / floorRps, 3);
      figures.add(
        `ratio-hmac-verify${tag}-vs-${floor}-${client}`,
        rps(name, 'verify') / floorRps,
        3,
      );
    }
  }

  // What each target against the bare service leaves nest-otp once the framework has taken its
  // share (cpu-budget.ts), from the fetch client's medians.
  const cpuOf = (server: ServerName, path: Path): RunCpu => ({
    rps: med('fetch', server, path, 'req/s'),
    serverMs: med('fetch', server, path, 'server CPU ms/req'),
    postgresMs: med('fetch', server, path, 'Postgres CPU ms/req'),
    clientPct: med('fetch', server, path, 'client CPU %'),
  });
  const ms = (value: number): string => round(value, 3).toFixed(3);
  for (const { app: name, floor, tag, adapter } of variants) {
    for (const [path, atLeast] of [
      ['send', 0.4],
      ['verify', 0.8],
    ] as const) {
      const b = targetBudget(
        cpuOf(name, path),
        cpuOf('bare', 'send'),
        cpuOf(floor, 'send'),
        atLeast,
      );
      const over = b.overFloor;
      console.log(
        `CPU budget, ${path} >= ${atLeast}x bare on ${adapter} (server + Postgres + client, ms a ` +
          `request): a ${path} may cost ${ms(b.allowedMs)}; the Nest floor costs ${ms(b.floorMs)}, ` +
          `which leaves nest-otp ${ms(b.leftMs)}; nest-otp's ${path} costs ${ms(over.totalMs)} ` +
          `more than the floor (server ${ms(over.serverMs)}, Postgres ${ms(over.postgresMs)}, ` +
          `client ${ms(over.clientMs)}). Ratio the sums predict ${round(b.predicted, 3)}, ` +
          `measured ${round(b.measured, 3)}`,
      );
      figures.add(`cpu-budget-${path}${tag}-left-ms`, b.leftMs, 3);
      figures.add(`cpu-budget-${path}${tag}-over-floor-ms`, over.totalMs, 3);
      figures.add(`cpu-budget-${path}${tag}-predicted-ratio`, b.predicted, 3);
    }
  }

  // A reference run the client could not drive any faster measures the client, not the server:
  // on a slow host the fetch client, one event loop, tops out at a core before the bare service
  // does, and every ratio against that rate flatters nest-otp. Named, so such a run reads as such.
  const clientBound = (['bare', 'nest-bare', 'nest-bare-fastify'] as const).filter(
    (server) => med('fetch', server, 'send', 'client CPU %') >= CLIENT_BOUND_PCT,
  );
  console.log(
    clientBound.length === 0
      ? `fetch client: below ${CLIENT_BOUND_PCT}% of a core on every reference run`
      : `fetch client at >= ${CLIENT_BOUND_PCT}% of a core on ${clientBound.join(', ')}: ` +
          "those rates are the client's ceiling, not the server's; ratios against them flatter nest-otp",
  );
  figures.add('fetch-client-bound-references', clientBound.join(',') || 'none');
}
