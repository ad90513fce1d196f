import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { OTP_PROVIDERS } from '../otp.constants.js';
import type { OtpProvider } from './otp-provider.interface.js';

/**
 * Starts and stops the delivery providers with the app: `ready()` at start, so a provider that
 * cannot work (its optional package missing) stops the app with a message naming what to install;
 * `close()` at shutdown, so pooled connections do not keep the process alive.
 */
@Injectable()
export class OtpProvidersLifecycle implements OnModuleInit, OnApplicationShutdown {
  constructor(@Inject(OTP_PROVIDERS) private readonly providers: OtpProvider[]) {}

  async onModuleInit(): Promise<void> {
    const results = await Promise.allSettled(
      this.providers.map(async (p) => {
        await p.ready?.();
      }),
    );
    const problems = results.flatMap((result, i) =>
      result.status === 'rejected'
        ? [
            `${this.providers[i]?.name ?? 'provider'}: ${
              result.reason instanceof Error ? result.reason.message : String(result.reason)
            }`,
          ]
        : [],
    );
    if (problems.length > 0) {
      throw new Error(`OtpModule: a delivery provider cannot start. ${problems.join('; ')}`);
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.allSettled(
      this.providers.map(async (p) => {
        await p.close?.();
      }),
    );
  }
}
