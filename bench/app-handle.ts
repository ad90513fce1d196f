import { fileURLToPath } from 'node:url';
import type { ExamplePlatform } from '../example/bootstrap.js';
import type { OtpModuleOptionsInput } from '../src/otp/otp.options.js';
import { ChildHandle } from './child.js';
import type { Commands } from './protocol.js';

/** Node flags for the app process, e.g. `--cpu-prof --cpu-prof-dir=…` (BENCH_APP_NODE_OPTIONS). */
const appExecArgv = (): string[] =>
  ['--expose-gc', ...(process.env.BENCH_APP_NODE_OPTIONS ?? '').split(' ')].filter(Boolean);

/** The bench's side of the app process: forks it, boots the app, sends it commands. */
export class AppHandle extends ChildHandle<Commands> {
  port = 0;
  /** RSS of the app process right after boot, in bytes. */
  bootRss = 0;
  /** The database its sessions are on (section 5 tells two apps' Postgres backends apart by it). */
  databaseUrl = '';

  static async start(
    databaseUrl: string,
    otp: OtpModuleOptionsInput,
    webhookUrl?: string,
    platform: ExamplePlatform = 'express',
  ): Promise<AppHandle> {
    const script = fileURLToPath(new URL('./app-process.js', import.meta.url));
    const label = platform === 'express' ? 'app process' : `app process (${platform})`;
    const handle = new AppHandle(ChildHandle.spawn(script, appExecArgv()), label);
    const { port, rss } = await handle.call('start', { databaseUrl, otp, webhookUrl, platform });
    handle.port = port;
    handle.bootRss = rss;
    handle.databaseUrl = databaseUrl;
    return handle;
  }
}
