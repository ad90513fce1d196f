import {
  Controller,
  HttpCode,
  HttpStatus,
  type INestApplication,
  Post,
  Req,
  ValidationPipe,
  type HttpServer,
} from '@nestjs/common';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import request from 'supertest';
import type TestAgent from 'supertest/lib/agent.js';
import {
  OtpModule,
  type OtpModuleOptionsInput,
  type OtpVerifiedRequest,
  RequireOtp,
} from '../../src/index.js';
import { InMemoryOtpProvider } from '../../src/testing/index.js';
import { LogCapture } from './coexistence-host.js';
import { type Platform, TEST_SECRET, testDatabaseUrl } from './test-app.js';

export { type Platform, PLATFORMS } from './test-app.js';

@Controller('host')
export class PlatformHostController {
  /** Guarded by the module: `@RequireOtp` alone answers its 401 in the contract's shape. */
  @Post('protected')
  @HttpCode(HttpStatus.OK)
  @RequireOtp('login')
  protectedRoute(@Req() req: OtpVerifiedRequest): { ok: true; destination: string } {
    return { ok: true, destination: req.otp.destination };
  }
}

export interface PlatformApp {
  app: INestApplication;
  http: TestAgent;
  provider: InMemoryOtpProvider;
  close(): Promise<void>;
}

/**
 * A host app on `platform` with its default body parsers and a strict global ValidationPipe, the
 * OTP module (HMAC, in-memory provider, a high throttle limit unless `otp` says otherwise) and a
 * route under `@RequireOtp('login')`, served over real HTTP.
 */
export async function startPlatformApp(
  platform: Platform,
  otp: OtpModuleOptionsInput = {},
  where: { globalPrefix?: string; routePrefix?: string } = {},
): Promise<PlatformApp> {
  const provider = new InMemoryOtpProvider();
  const ref = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot({ type: 'postgres', url: testDatabaseUrl(), retryAttempts: 0 }),
      OtpModule.forRoot({
        hasher: 'hmac',
        hmacSecret: TEST_SECRET,
        providers: [provider],
        throttleLimit: 10_000,
        ...otp,
        ...(where.routePrefix ? { routePrefix: where.routePrefix } : {}),
      }),
    ],
    controllers: [PlatformHostController],
  })
    .setLogger(new LogCapture())
    .compile();
  const adapter = platform === 'fastify' ? new FastifyAdapter() : new ExpressAdapter();
  const app = ref.createNestApplication(adapter as HttpServer);
  app.useGlobalPipes(
    new ValidationPipe({
      whitelist: true,
      forbidNonWhitelisted: true,
      transform: true,
      transformOptions: { enableImplicitConversion: true },
    }),
  );
  if (where.globalPrefix) app.setGlobalPrefix(where.globalPrefix);
  try {
    await app.init();
    if (platform === 'fastify') {
      await (app.getHttpAdapter().getInstance() as { ready(): Promise<unknown> }).ready();
    }
  } catch (error) {
    await app.close().catch(() => undefined);
    throw error;
  }
  return { app, http: request(app.getHttpServer()), provider, close: () => app.close() };
}
