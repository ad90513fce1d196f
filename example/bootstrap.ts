import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { OtpExceptionFilter } from '../src/index.js';
import { AppModule, type ExampleAppOptions } from './app.module.js';

/** Request bodies over this are a 413 `PAYLOAD_TOO_LARGE`. */
export const BODY_LIMIT = '16kb';

/**
 * Builds the example app as `npm start` and the e2e tests run it: JSON bodies up to 16 KiB, the
 * contract's error shape everywhere (body-parser errors included).
 */
export async function createExampleApp(
  options: ExampleAppOptions,
  nest: { logger?: false } = {},
): Promise<INestApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule.register(options), {
    bodyParser: false,
    ...(nest.logger === false ? { logger: false } : {}),
  });
  app.useBodyParser('json', { limit: BODY_LIMIT });
  app.useGlobalFilters(new OtpExceptionFilter());
  return app;
}
