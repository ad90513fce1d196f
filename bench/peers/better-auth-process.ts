/**
 * The peer: Better Auth with its email-otp plugin, as its docs set it up on Node (`toNodeHandler`
 * on a plain `node:http` server), on its own `pg` pool against a bench database of its own.
 * Codes are stored hashed (`storeOTP: 'hashed'`), its rate limit is off (all load comes from one
 * IP, as for nest-otp), and `sendVerificationOTP` POSTs each code as JSON to the same local
 * webhook nest-otp's `WebhookOtpProvider` posts to, and waits for its answer, as nest-otp does.
 */
import { type BetterAuthOptions, betterAuth } from 'better-auth';
import { getMigrations } from 'better-auth/db/migration';
import { toNodeHandler } from 'better-auth/node';
import { emailOTP } from 'better-auth/plugins/email-otp';
import { randomBytes } from 'node:crypto';
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

function options(databaseUrl: string, webhookUrl: string, baseURL: string): BetterAuthOptions {
  // Named, so the bench can find its Postgres backends' CPU; never idled out during a run.
  pool = new pg.Pool({
    connectionString: databaseUrl,
    max: 10,
    idleTimeoutMillis: 0,
    application_name: 'bench-better-auth',
  });
  return {
    database: pool,
    baseURL,
    secret: randomBytes(32).toString('hex'),
    telemetry: { enabled: false },
    rateLimit: { enabled: false },
    logger: { disabled: true },
    plugins: [
      emailOTP({
        storeOTP: 'hashed',
        otpLength: 6,
        allowedAttempts: 3,
        // Codes minted at the start of a run must still verify at its end (as for nest-otp).
        expiresIn: 3600,
        async sendVerificationOTP({ email, otp, type }) {
          const response = await fetch(webhookUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({
              channel: 'email',
              destination: email,
              purpose: type,
              code: otp,
              message: `Your code is ${otp}`,
            }),
            signal: AbortSignal.timeout(5_000),
          });
          await response.arrayBuffer();
          if (!response.ok) throw new Error(`webhook answered ${response.status}`);
        },
      }),
    ],
  };
}

const handlers: Handlers<PeerCommands> = {
  async start({ databaseUrl, webhookUrl }) {
    // Listening first: Better Auth's baseURL needs the port.
    const route: { handler?: (req: http.IncomingMessage, res: http.ServerResponse) => void } = {};
    server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) =>
      route.handler?.(req, res),
    );
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const config = options(databaseUrl, webhookUrl ?? '', `http://127.0.0.1:${port}`);
    // Its own tables (user, session, account, verification), as `npx auth migrate` creates them.
    await (await getMigrations(config)).runMigrations();
    const auth = betterAuth(config);
    const node = toNodeHandler(auth);
    route.handler = (req, res) => {
      inFlight += 1;
      void node(req, res).finally(() => (inFlight -= 1));
    };
    return {
      port,
      paths: {
        send: '/api/auth/email-otp/send-verification-otp',
        verify: '/api/auth/sign-in/email-otp',
      },
    };
  },
  ...samplerCommands(sampler),
  async stop() {
    await closeServer(server, () => inFlight);
    await pool?.end();
    return null;
  },
};

serveCommands(handlers, () => handlers.stop({}));
