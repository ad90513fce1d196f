/**
 * The floor: a bare `node:http` + `pg` service, no framework, no validation library, doing per
 * request what any Postgres-backed endpoint does at least: read a JSON body, one INSERT and one
 * SELECT (two round trips on a pool of 10, as nest-otp's), answer JSON. Nothing a real service
 * can do per request costs less, so it bounds what nest-otp can reach on this machine.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import {
  closeServer,
  type Handlers,
  RssSampler,
  samplerCommands,
  serveCommands,
} from '../child.js';
import type { PeerCommands } from './peer-protocol.js';

let server: http.Server | undefined;
/** Requests being handled (their handlers may outlive their sockets). */
let inFlight = 0;
let pool: pg.Pool | undefined;
const sampler = new RssSampler();

const INSERT = 'INSERT INTO bare_requests (id, destination, code) VALUES ($1, $2, $3)';
const SELECT =
  'SELECT id, created_at FROM bare_requests WHERE destination = $1 ORDER BY created_at DESC LIMIT 1';

async function serve(db: pg.Pool, body: string): Promise<[number, string]> {
  let input: { destination?: unknown; code?: unknown };
  try {
    input = JSON.parse(body) as typeof input;
  } catch {
    return [400, '{"error":"invalid JSON"}'];
  }
  if (typeof input.destination !== 'string') return [400, '{"error":"destination"}'];
  const code = typeof input.code === 'string' ? input.code : null;
  await db.query(INSERT, [randomUUID(), input.destination, code]);
  const { rows } = await db.query<{ id: string; created_at: Date }>(SELECT, [input.destination]);
  return [200, JSON.stringify({ id: rows[0]?.id, createdAt: rows[0]?.created_at })];
}

const handlers: Handlers<PeerCommands> = {
  async start({ databaseUrl }) {
    // Named, so the bench can find its Postgres backends' CPU; never idled out during a run.
    const db = new pg.Pool({
      connectionString: databaseUrl,
      max: 10,
      idleTimeoutMillis: 0,
      application_name: 'bench-bare',
    });
    pool = db;
    await db.query(`CREATE TABLE IF NOT EXISTS bare_requests (
      id uuid PRIMARY KEY, destination varchar(254) NOT NULL, code varchar(10),
      created_at timestamptz NOT NULL DEFAULT now())`);
    await db.query(
      'CREATE INDEX IF NOT EXISTS bare_requests_destination_idx ON bare_requests (destination, created_at)',
    );
    server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        inFlight += 1;
        serve(db, Buffer.concat(chunks).toString('utf8'))
          .finally(() => (inFlight -= 1))
          .then(
            ([status, json]) =>
              res.writeHead(status, { 'content-type': 'application/json' }).end(json),
            () => res.writeHead(500).end(),
          );
      });
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    return { port, paths: { send: '/requests', verify: '/requests' } };
  },
  ...samplerCommands(sampler),
  async stop() {
    await closeServer(server, () => inFlight);
    await pool?.end();
    return null;
  },
};

serveCommands(handlers, () => handlers.stop({}));
