import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { type AbstractHttpAdapter, NestFactory } from '@nestjs/core';
import { DocumentBuilder, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';
import { Logger } from 'nestjs-pino';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AppModule, type ExampleAppOptions } from './app.module.js';
import { withoutExpressExtras } from './express-settings.js';

/** The HTTP platforms the example app runs on: Express (`npm start`) or Fastify (the e2e suite). */
export type ExamplePlatform = 'express' | 'fastify';

/**
 * Builds the example app as `npm start` and the e2e tests run it. Nothing global on the module's
 * behalf: Nest's default body parsing (the OTP routes enforce their own 16 KiB limit, JSON only)
 * and Nest's default error handling (the OTP routes and `@RequireOtp` routes answer their own errors
 * in the contract's shape). Serves Swagger UI at `/docs` and the OpenAPI document at `/docs-json`.
 * On Express, without `X-Powered-By` and ETags (`withoutExpressExtras`): the host's own settings.
 *
 * Logs are JSON lines through nestjs-pino (`options.logging`, default level `info` on stdout); the
 * module logs through Nest's `Logger`, so its lines go there too. `{ logger: false }` (the tests):
 * no logger at all.
 *
 * `platform` (default `express`, what `npm start` runs): `fastify` builds the same app on
 * `@nestjs/platform-fastify`, so the e2e suite runs the OTP routes on both. Two parts stay
 * Express's: Swagger UI, which on Fastify needs `@fastify/static` (not a dependency here), so a
 * Fastify app serves `/docs-json` only; and the nestjs-pino request logs, tested on Express only,
 * so a Fastify app is built quiet (`{ logger: false }`) or not at all.
 */
export async function createExampleApp(
  options: ExampleAppOptions,
  nest: { logger?: false; platform?: ExamplePlatform } = {},
): Promise<INestApplication> {
  const quiet = nest.logger === false;
  const fastify = nest.platform === 'fastify';
  if (fastify && !quiet) {
    throw new Error(
      'example: the Fastify app is built for the tests only: pass { logger: false } with it.',
    );
  }
  const module = AppModule.register({
    ...options,
    logging: quiet ? undefined : (options.logging ?? {}),
  });
  // bufferLogs: Nest's startup lines wait for the pino logger instead of going out as text.
  const settings = quiet ? { logger: false as const } : { bufferLogs: true };
  const app = fastify
    ? await NestFactory.create(module, await fastifyAdapter(), settings)
    : await NestFactory.create(module, settings);
  if (!quiet) app.useLogger(app.get(Logger));
  if (!fastify) withoutExpressExtras(app);
  SwaggerModule.setup('docs', app, () => createExampleDocument(app), { ui: !fastify });
  return app;
}

/** Loaded only when asked for: `npm start` never loads Fastify. */
async function fastifyAdapter(): Promise<AbstractHttpAdapter> {
  const { FastifyAdapter } = await import('@nestjs/platform-fastify');
  return new FastifyAdapter();
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
