import type { INestApplication } from '@nestjs/common';

/**
 * Turns off two Express defaults a JSON API has no use for: `X-Powered-By` (it names the stack to
 * every scanner) and the weak ETag Express computes on every answer, POSTs included (a SHA-1 of
 * each body, for conditional GETs no client of these routes makes). Fastify sends neither.
 */
export function withoutExpressExtras(app: INestApplication): void {
  const express = app.getHttpAdapter().getInstance() as { disable(setting: string): void };
  express.disable('x-powered-by');
  express.disable('etag');
}
