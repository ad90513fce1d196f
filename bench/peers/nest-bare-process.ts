/**
 * The framework's floor: the bare service's request (read a JSON body, one INSERT, one SELECT on
 * a pool of 10, answer JSON) as a NestJS 12 controller with `@Body()`, nothing else: no guard, no
 * validation, no filter, on Express (the default, without X-Powered-By and ETags, as the example
 * app runs it) or on Fastify (`platform`). What nest-otp's host pays for Nest and its adapter
 * alone, apart from anything nest-otp does, so the bench can tell the module's cost from the
 * framework's on each adapter.
 */
import 'reflect-metadata';
import { Body, Controller, HttpCode, type INestApplication, Module, Post } from '@nestjs/common';
import { type AbstractHttpAdapter, NestFactory } from '@nestjs/core';
import { withoutExpressExtras } from '../../example/express-settings.js';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import pg from 'pg';
import { type Handlers, RssSampler, serveCommands, samplerCommands } from '../child.js';
import type { PeerCommands } from './peer-protocol.js';

/** Each floor has a table of its own, so neither grows the other's index. */
const statements = (table: string): { insert: string; select: string } => ({
  insert: `INSERT INTO ${table} (id, destination, code) VALUES ($1, $2, $3)`,
  select: `SELECT id, created_at FROM ${table} WHERE destination = $1 ORDER BY created_at DESC LIMIT 1`,
});

let sql = statements('nest_bare_requests');
let pool: pg.Pool | undefined;
let app: INestApplication | undefined;
const sampler = new RssSampler();

@Controller()
class RequestsController {
  @Post('requests')
  @HttpCode(200)
  async create(
    @Body() body: { destination?: unknown; code?: unknown },
  ): Promise<{ id?: string; createdAt?: Date }> {
    const db = pool as pg.Pool;
    const destination = String(body.destination);
    const code = typeof body.code === 'string' ? body.code : null;
    await db.query(sql.insert, [randomUUID(), destination, code]);
    const { rows } = await db.query<{ id: string; created_at: Date }>(sql.select, [destination]);
    return { id: rows[0]?.id, createdAt: rows[0]?.created_at };
  }
}

@Module({ controllers: [RequestsController] })
class FloorModule {}

/** Loaded only when asked for, as in example/bootstrap.ts: the Express floor never loads Fastify. */
async function fastifyAdapter(): Promise<AbstractHttpAdapter> {
  const { FastifyAdapter } = await import('@nestjs/platform-fastify');
  return new FastifyAdapter();
}

const handlers: Handlers<PeerCommands> = {
  async start({ databaseUrl, platform }) {
    const fastify = platform === 'fastify';
    const table = fastify ? 'nest_bare_fastify_requests' : 'nest_bare_requests';
    sql = statements(table);
    // Named, so the bench can find its Postgres backends' CPU; never idled out during a run.
    const db = new pg.Pool({
      connectionString: databaseUrl,
      max: 10,
      idleTimeoutMillis: 0,
      application_name: fastify ? 'bench-nest-bare-fastify' : 'bench-nest-bare',
    });
    pool = db;
    await db.query(`CREATE TABLE IF NOT EXISTS ${table} (
      id uuid PRIMARY KEY, destination varchar(254) NOT NULL, code varchar(10),
      created_at timestamptz NOT NULL DEFAULT now())`);
    await db.query(
      `CREATE INDEX IF NOT EXISTS ${table}_destination_idx ON ${table} (destination, created_at)`,
    );
    app = fastify
      ? await NestFactory.create(FloorModule, await fastifyAdapter(), { logger: false })
      : await NestFactory.create(FloorModule, { logger: false });
    // Express configured as the example app configures it, so the floor is the same Express.
    if (!fastify) withoutExpressExtras(app);
    await app.listen(0, '127.0.0.1');
    const server = app.getHttpServer() as Server;
    server.keepAliveTimeout = 60_000;
    const port = (server.address() as AddressInfo).port;
    return { port, paths: { send: '/requests', verify: '/requests' } };
  },
  ...samplerCommands(sampler),
  async stop() {
    await app?.close();
    await pool?.end();
    return null;
  },
};

serveCommands(handlers, () => handlers.stop({}));
