import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { AppModule, type ExampleAppOptions } from './app.module.js';

/**
 * Builds the example app as `npm start` and the e2e tests run it. Nothing global on the module's
 * behalf: Nest's default body parsing (the OTP routes enforce their own 16 KiB limit, JSON only)
 * and Nest's default error handling (the OTP routes and `@RequireOtp` routes answer their own errors
 * in the contract's shape).
 */
export async function createExampleApp(
  options: ExampleAppOptions,
  nest: { logger?: false } = {},
): Promise<INestApplication> {
  return NestFactory.create<NestExpressApplication>(
    AppModule.register(options),
    nest.logger === false ? { logger: false } : {},
  );
}
