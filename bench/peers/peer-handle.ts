import { fileURLToPath } from 'node:url';
import { ChildHandle } from '../child.js';
import type { WebhookCommands } from '../webhook-process.js';
import type { PeerCommands } from './peer-protocol.js';

/**
 * A peer service (Better Auth, the bare service, the bare service in Nest on Express or on
 * Fastify) in its own process.
 */
export class PeerHandle extends ChildHandle<PeerCommands> {
  port = 0;
  paths = { send: '', verify: '' };
  /** The database its sessions are on. */
  databaseUrl = '';

  static async start(
    which: 'better-auth' | 'bare' | 'nest-bare' | 'nest-bare-fastify',
    databaseUrl: string,
    webhookUrl?: string,
  ): Promise<PeerHandle> {
    // Both Nest floors are one script, on the adapter it is told.
    const fastify = which === 'nest-bare-fastify';
    const name = fastify ? 'nest-bare' : which;
    const script = fileURLToPath(new URL(`./${name}-process.js`, import.meta.url));
    const handle = new PeerHandle(ChildHandle.spawn(script), which);
    const platform = fastify ? 'fastify' : undefined;
    const { port, paths } = await handle.call('start', { databaseUrl, webhookUrl, platform });
    handle.port = port;
    handle.paths = paths;
    handle.databaseUrl = databaseUrl;
    return handle;
  }
}

/** The local webhook sink in its own process (see webhook-process.ts). */
export class WebhookHandle extends ChildHandle<WebhookCommands> {
  url = '';

  static async start(): Promise<WebhookHandle> {
    const script = fileURLToPath(new URL('../webhook-process.js', import.meta.url));
    const handle = new WebhookHandle(ChildHandle.spawn(script), 'webhook sink');
    const { port } = await handle.call('start', { delayMs: 0 });
    handle.url = `http://127.0.0.1:${port}/otp`;
    return handle;
  }
}
