import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';
import { Logger } from 'nestjs-pino';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AppModule, type ExampleAppOptions } from './app.module.js';

/**
 * Builds the example app as `npm start` and the e2e tests run it. Nothing global on the module's
 * behalf: Nest's default body parsing (the OTP routes enforce their own 16 KiB limit, JSON only)
 * and Nest's default error handling (the OTP routes and `@RequireOtp` routes answer their own errors
 * in the contract's shape). Serves Swagger UI at `/docs` and the OpenAPI document at `/docs-json`.
 *
 * Logs are JSON lines through nestjs-pino (`options.logging`, default level `info` on stdout); the
 * module logs through Nest's `Logger`, so its lines go there too. `{ logger: false }` (the tests):
 * no logger at all.
 */
export async function createExampleApp(
  options: ExampleAppOptions,
  nest: { logger?: false } = {},
): Promise<INestApplication> {
  const quiet = nest.logger === false;
  const app = await NestFactory.create<NestExpressApplication>(
    AppModule.register({ ...options, logging: quiet ? undefined : (options.logging ?? {}) }),
    // bufferLogs: Nest's startup lines wait for the pino logger instead of going out as text.
    quiet ? { logger: false } : { bufferLogs: true },
  );
  if (!quiet) app.useLogger(app.get(Logger));
  SwaggerModule.setup('docs', app, () => createExampleDocument(app));
  return app;
}

/** The example app's OpenAPI document: what a host writes to list the OTP routes in its own. */
export function createExampleDocument(app: INestApplication): OpenAPIObject {
  const { name, version, description } = readManifest();
  const config = new DocumentBuilder()
    .setTitle(`${name} example`)
    .setDescription(description)
    .setVersion(version)
    // The scheme `@RequireOtp` routes reference: the token a successful verify answers.
    .addApiKey({ type: 'apiKey', in: 'header', name: 'X-OTP-Token' }, 'X-OTP-Token')
    .build();
  return SwaggerModule.createDocument(app, config);
}

/** The repository's package.json, found upwards from here (example/ under jest, build/example/). */
function readManifest(): { name: string; version: string; description: string } {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`example: no package.json above ${import.meta.url}`);
    dir = parent;
  }
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
    name: string;
    version: string;
    description: string;
  };
}
