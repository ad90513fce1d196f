import type { AppHandle } from './app-handle.js';
import type { BenchDb } from './bench-db.js';
import type { ProcessStats } from './child.js';
import { CONCURRENCY_SIDE_BY_SIDE, settings } from './config.js';
import { CLIENTS, type Client, drive, runFetchLoad } from './fetch-load.js';
import type { Figures } from './figures.js';
import type { LoadOptions, LoadResult } from './load.js';
import type { PeerHandle, WebhookHandle } from './peers/peer-handle.js';
import { PostgresCpu } from './postgres-cpu.js';
import { median, round } from './stats.js';

type Code = [destination: string, code: string];
type ServerName = 'nest-otp' | 'better-auth' | 'bare' | 'nest-bare';
type Path = 'send' | 'verify';

interface Target {
  name: ServerName;
  /** The `application_name` of its Postgres sessions. */
  applicationName: string;
  port: number;
  paths: Record<Path, string>;
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
  statuses: string;
  errors: number;
  'ran dry': boolean;
}

/**
 * Section 5: nest-otp (HMAC, codes delivered by its `WebhookOtpProvider`) side by side with Better
 * Auth's email-otp plugin (codes delivered by its `sendVerificationOTP` to the same webhook), a
 * bare `node:http` + `pg` service (one INSERT and one SELECT a request) and the same request in a
 * bare Nest + Express controller (the framework's floor), in one run, each
 * server in its own process, on the same Postgres, at 16 concurrent requests, driven by a Node
 * `fetch` client and by autocannon in turn. Sends go to fresh destinations; verifies use real
 * codes (right code: nest-otp answers 200 with a token, Better Auth signs in and answers 200 with
 * a session). The CPU time of each server's process over each run, a request, is printed too, and
 * that of the Postgres backends serving it (by application_name, from /proc).
 */
export async function sideBySideSection(
  app: AppHandle,
  betterAuth: PeerHandle,
  bare: PeerHandle,
  nestBare: PeerHandle,
  sink: WebhookHandle,
  db: BenchDb,
  figures: Figures,
): Promise<void> {
  const c = CONCURRENCY_SIDE_BY_SIDE;
  const postgres = new PostgresCpu(db);
  console.log(
    `\n== 5. side by side: nest-otp, Better Auth email-otp, bare node:http + pg (${c} concurrent, ` +
      `${settings.loadSeconds} s runs, fetch and autocannon clients) ==`,
  );
  const servers: Record<ServerName, Target> = {
    'nest-otp': {
      name: 'nest-otp',
      applicationName: 'nest-otp',
      port: app.port,
      paths: { send: '/otp/send', verify: '/otp/verify' },
      stats: () => app.call('stats', {}),
    },
    'better-auth': {
      name: 'better-auth',
      applicationName: 'bench-better-auth',
      port: betterAuth.port,
      paths: betterAuth.paths,
      stats: () => betterAuth.call('stats', {}),
    },
    bare: {
      name: 'bare',
      applicationName: 'bench-bare',
      port: bare.port,
      paths: bare.paths,
      stats: () => bare.call('stats', {}),
    },
    'nest-bare': {
      name: 'nest-bare',
      applicationName: 'bench-nest-bare',
      port: nestBare.port,
      paths: nestBare.paths,
      stats: () => nestBare.call('stats', {}),
    },
  };

  const pools: Record<'nest' | 'ba', Code[]> = { nest: [], ba: [] };
  const collect = async (): Promise<void> => {
    for (const code of await sink.call('takeCodes', {})) {
      if (code[0].startsWith('ss-n-')) pools.nest.push(code);
      else if (code[0].startsWith('ss-ba-')) pools.ba.push(code);
    }
  };
  let sequence = 0;
  const bodies: Record<ServerName, Record<Path, () => unknown>> = {
    'nest-otp': {
      send: () => ({ destination: `ss-n-${sequence++}@bench.example` }),
      verify: () => {
        const entry = pools.nest.pop();
        return entry && { destination: entry[0], code: entry[1] };
      },
    },
    'better-auth': {
      send: () => ({ email: `ss-ba-${sequence++}@bench.example`, type: 'sign-in' }),
      verify: () => {
        const entry = pools.ba.pop();
        return entry && { email: entry[0], otp: entry[1] };
      },
    },
    bare: {
      send: () => ({ destination: `ss-bare-${sequence++}@bench.example`, code: '123456' }),
      verify: () => ({ destination: `ss-bare-${sequence++}@bench.example`, code: '123456' }),
    },
    'nest-bare': {
      send: () => ({ destination: `ss-nb-${sequence++}@bench.example`, code: '123456' }),
      verify: () => ({ destination: `ss-nb-${sequence++}@bench.example`, code: '123456' }),
    },
  };
  const expected: Record<ServerName, Record<Path, number>> = {
    'nest-otp': { send: 202, verify: 200 },
    'better-auth': { send: 200, verify: 200 },
    bare: { send: 200, verify: 200 },
    'nest-bare': { send: 200, verify: 200 },
  };
  const options = (server: Target, path: Path, seconds: number): LoadOptions => ({
    port: server.port,
    path: server.paths[path],
    connections: c,
    durationSeconds: seconds,
    nextBody: bodies[server.name][path],
    expect: expected[server.name][path],
    // Better Auth refuses a POST without an Origin (CSRF); a browser always sends one. Every
    // server gets the same headers.
    headers: { origin: `http://127.0.0.1:${server.port}` },
  });

  /** Codes for a verify run ahead: minted outside the measured runs. */
  let mints = 0;
  const topUp = async (which: 'nest' | 'ba', wanted: number): Promise<void> => {
    await collect();
    const missing = wanted - pools[which].length;
    if (missing <= 0) return;
    mints += 1;
    if (which === 'nest') {
      await app.call('mint', { prefix: `ss-n-m${mints}`, count: missing, concurrency: 16 });
    } else {
      let left = missing;
      const target = servers['better-auth'];
      await runFetchLoad({
        ...options(target, 'send', 600),
        amount: missing,
        nextBody: () => (left-- > 0 ? bodies['better-auth'].send() : undefined),
      });
    }
    await collect();
  };

  const measure = async (
    client: Client,
    server: Target,
    path: Path,
    seconds: number,
  ): Promise<[LoadResult, number, number]> => {
    const pgBefore = await postgres.snapshot(server.applicationName);
    const before = await server.stats();
    const result = await drive(client, options(server, path, seconds));
    // The tail of the run (answers still on their way) is part of its CPU.
    if (server.name === 'nest-otp') await app.call('settle', {});
    const after = await server.stats();
    const pgAfter = await postgres.snapshot(server.applicationName);
    const answered = Math.max(
      Object.values(result.statuses).reduce((a, n) => a + n, 0),
      1,
    );
    return [
      result,
      (after.cpuMicros - before.cpuMicros) / 1000 / answered,
      PostgresCpu.spent(pgBefore, pgAfter) / answered,
    ];
  };

  // Warm-up (JIT, pools, connections), not measured.
  for (const client of CLIENTS) {
    for (const server of Object.values(servers)) await measure(client, server, 'send', 1);
  }
  await topUp('nest', 2000);
  await topUp('ba', 600);
  for (const client of CLIENTS) {
    await measure(client, servers['nest-otp'], 'verify', 1);
    await measure(client, servers['better-auth'], 'verify', 1);
  }

  const rows: Row[] = [];
  const best = new Map<string, number>();
  for (let repeat = 1; repeat <= settings.repeats; repeat++) {
    for (const client of CLIENTS) {
      const plan: [Target, Path][] = [
        [servers['nest-otp'], 'send'],
        [servers['better-auth'], 'send'],
        [servers.bare, 'send'],
        [servers['nest-bare'], 'send'],
        [servers['nest-otp'], 'verify'],
        [servers['better-auth'], 'verify'],
      ];
      for (const [server, path] of plan) {
        if (path === 'verify') {
          const key = `${client}-${server.name}`;
          const rate = best.get(key) ?? 1500;
          await topUp(
            server.name === 'nest-otp' ? 'nest' : 'ba',
            Math.ceil(rate * settings.loadSeconds * 1.4) + 100,
          );
        }
        const [r, cpuMs, pgMs] = await measure(client, server, path, settings.loadSeconds);
        if (path === 'verify') {
          const key = `${client}-${server.name}`;
          best.set(key, Math.max(best.get(key) ?? 0, r.rps));
        }
        rows.push({
          repeat,
          client,
          server: server.name,
          path,
          'req/s': round(r.rps, 1),
          'p50 ms': round(r.p50, 2),
          'p99 ms': round(r.p99, 2),
          'server CPU ms/req': round(cpuMs, 3),
          'Postgres CPU ms/req': round(pgMs, 3),
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
    for (const [server, path] of [
      ['nest-otp', 'send'],
      ['better-auth', 'send'],
      ['bare', 'send'],
      ['nest-bare', 'send'],
      ['nest-otp', 'verify'],
      ['better-auth', 'verify'],
    ] as const) {
      const rps = med(client, server, path, 'req/s');
      const cpu = med(client, server, path, 'server CPU ms/req');
      const pgCpu = med(client, server, path, 'Postgres CPU ms/req');
      const bareLike = server === 'bare' || server === 'nest-bare';
      const label = bareLike ? 'insert+select' : path;
      summary.push({
        client,
        server,
        path: label,
        'req/s': rps,
        'p50 ms': med(client, server, path, 'p50 ms'),
        'p99 ms': med(client, server, path, 'p99 ms'),
        'server CPU ms/req': cpu,
        'Postgres CPU ms/req': pgCpu,
      });
      const name = `side-${client}-${server}-${bareLike ? 'request' : path}`;
      figures.add(`${name}-req/s`, rps, 1);
      figures.add(`${name}-cpu-ms`, cpu, 3);
      figures.add(`${name}-postgres-cpu-ms`, pgCpu, 3);
    }
  }
  console.log('medians over the repeats');
  console.table(summary);

  // The app's CPU a request outside the hash: what the framework, validation, the driver and
  // the module cost. The hasher's own CPU (one hash a send, one check a verify) is measured apart.
  const hash = await app.call('hashCost', { count: 2000 });
  const sendCpu = med('fetch', 'nest-otp', 'send', 'server CPU ms/req') - hash.hashMicros / 1000;
  const verifyCpu =
    med('fetch', 'nest-otp', 'verify', 'server CPU ms/req') - hash.matchMicros / 1000;
  console.log(
    `nest-otp CPU a request outside the hash (fetch client, process.cpuUsage over the runs): ` +
      `send ${round(sendCpu, 3)} ms, verify ${round(verifyCpu, 3)} ms ` +
      `(HMAC: ${round(hash.hashMicros, 1)} µs a hash, ${round(hash.matchMicros, 1)} µs a check)`,
  );
  figures.add('app-cpu-ms-per-send-outside-hash', sendCpu, 3);
  figures.add('app-cpu-ms-per-verify-outside-hash', verifyCpu, 3);

  for (const client of CLIENTS) {
    const rps = (server: ServerName, path: Path): number => med(client, server, path, 'req/s');
    const suffix = client === 'fetch' ? '' : ` (${client}, not a target)`;
    const add = (name: string, mine: number, reference: string, theirs: number, atLeast: number) =>
      client === 'fetch'
        ? figures.target(name, { figure: `${name}`, mine, reference, theirs, atLeast })
        : figures.add(`ratio-${name}-${client}`, mine / theirs, 3);
    add(
      'hmac-send-vs-better-auth-send',
      rps('nest-otp', 'send'),
      `Better Auth send${suffix}`,
      rps('better-auth', 'send'),
      1.5,
    );
    add(
      'hmac-verify-vs-better-auth-sign-in',
      rps('nest-otp', 'verify'),
      `Better Auth sign-in${suffix}`,
      rps('better-auth', 'verify'),
      2,
    );
    add(
      'hmac-send-vs-bare',
      rps('nest-otp', 'send'),
      `bare node:http + pg${suffix}`,
      rps('bare', 'send'),
      0.4,
    );
    add(
      'hmac-verify-vs-bare',
      rps('nest-otp', 'verify'),
      `bare node:http + pg${suffix}`,
      rps('bare', 'send'),
      0.8,
    );
    // Not targets: how far the framework alone stands from the bare service (the same request in
    // a Nest + Express controller), and nest-otp from that floor.
    const floor = rps('nest-bare', 'send');
    figures.add(`ratio-nest-bare-vs-bare-${client}`, floor / rps('bare', 'send'), 3);
    figures.add(`ratio-hmac-send-vs-nest-bare-${client}`, rps('nest-otp', 'send') / floor, 3);
    figures.add(`ratio-hmac-verify-vs-nest-bare-${client}`, rps('nest-otp', 'verify') / floor, 3);
  }
}
