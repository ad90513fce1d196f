import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { OtpExceptionFilter } from '../src/index.js';
import { AppModule, type ExampleAppOptions } from './app.module.js';

/**
 * Builds the example app as `npm start` and the e2e tests run it: Nest's default body parsing (the
 * OTP routes enforce their own 16 KiB limit), and `OtpExceptionFilter` so the module's errors on
 * the app's own guarded route carry `Retry-After` too; every other error stays Nest's.
 */
export async function createExampleApp(
  options: ExampleAppOptions,
  nest: { logger?: false } = {},
): Promise<INestApplication> {
  const app = await NestFactory.create<NestExpressApplication>(
    AppModule.register(options),
    nest.logger === false ? { logger: false } : {},
  );
  app.useGlobalFilters(new OtpExceptionFilter());
  return app;
}
