import type { ProcessStats } from '../child.js';

/** The commands of a peer service process (Better Auth, the bare service, the Nest floors). */
export interface PeerCommands {
  /**
   * Creates its tables, listens on 127.0.0.1 (random port); the paths of its send and verify.
   * `platform`: the Nest floor's HTTP adapter (Express by default); the other peers ignore it.
   */
  start: {
    args: { databaseUrl: string; webhookUrl?: string; platform?: 'express' | 'fastify' };
    result: { port: number; paths: { send: string; verify: string } };
  };
  stats: { args: Record<string, never>; result: ProcessStats };
  resetPeak: { args: Record<string, never>; result: null };
  stop: { args: Record<string, never>; result: null };
}
