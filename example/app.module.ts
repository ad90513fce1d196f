import { type DynamicModule, Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { LoggerModule, type Params } from 'nestjs-pino';
import type { DestinationStream, LevelWithSilent } from 'pino';
import { Registry } from 'prom-client';
import { otpMigrations, OtpModule, type OtpModuleOptionsInput } from '../src/index.js';
import { maskDestination } from '../src/otp/destination/destination.js';
import { OtpHealthIndicator } from '../src/otp/health/index.js';
import { OtpMetricsModule } from '../src/otp/metrics/index.js';
import { HealthController } from './health.controller.js';
import { MetricsController } from './metrics.controller.js';
import { PageModule } from './page/page.module.js';
import { ProtectedController } from './protected.controller.js';

export interface ExampleAppOptions {
  databaseUrl: string;
  otp: OtpModuleOptionsInput;
  /** Pool size of the app's DataSource. Default 10. */
  poolSize?: number;
  /**
   * Structured logs with nestjs-pino: JSON lines, one request id per request. Unset: no
   * LoggerModule (the app logs through whatever logger Nest was given, or none).
   */
  logging?: ExampleLogging;
}

export interface ExampleLogging {
  /** pino's level. Default `info`. */
  level?: LevelWithSilent;
  /** Where the JSON lines go (one `write` per line). Default stdout. Tests pass an in-memory one. */
  stream?: DestinationStream;
}

/** What a request id may look like when a client or proxy sends one; anything else is replaced. */
const REQUEST_ID = /^[\w.:-]{1,128}$/;

/**
 * The request id: the incoming `X-Request-Id` when it is a sane one (a proxy's), else a new UUID.
 * Echoed in the response's `X-Request-Id` so a client can quote it.
 */
function requestId(req: IncomingMessage, res: ServerResponse): string {
  const incoming = req.headers['x-request-id'];
  const id = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
  res.setHeader('X-Request-Id', id);
  return id;
}

const REDACTED = '[Redacted]';

/** A destination as the API shows it (masked); anything else that is not a string, redacted. */
const censor = (value: unknown, path: string[]): unknown =>
  path[path.length - 1] === 'destination' && typeof value === 'string' && value !== ''
    ? maskDestination(value)
    : REDACTED;

/**
 * nestjs-pino's settings: request lines carry the method, the URL (without its query string), the
 * headers with credentials redacted and the status; never a body. Secrets that could still reach
 * a line as a field (a code, a token, a destination) are redacted, a destination masked.
 */
export function exampleLoggerParams(logging: ExampleLogging): Params {
  const options = {
    level: logging.level ?? 'info',
    genReqId: requestId,
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers["x-otp-token"]',
        'req.headers.cookie',
        'req.headers["proxy-authorization"]',
        'res.headers["set-cookie"]',
        // As fields of a line or of an object logged with one (not `*.code`: an error's `code`,
        // such as ECONNREFUSED, is worth keeping).
        'code',
        'verificationToken',
        'destination',
        'body',
        '*.verificationToken',
        '*.destination',
        '*.body',
      ],
      censor,
    },
    serializers: {
      req: (req: { id: unknown; method: string; url: string; headers: unknown }) => ({
        id: req.id,
        method: req.method,
        url: req.url.split('?')[0],
        headers: req.headers,
      }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
  };
  return {
    pinoHttp: logging.stream === undefined ? options : [options, logging.stream],
  };
}

/**
 * The example host app: its own TypeORM connection, the OTP module, one guarded route, and the
 * integrations a NestJS team expects: `GET /health` (terminus) and `GET /metrics` (prom-client).
 */
@Module({})
export class AppModule {
  static register(options: ExampleAppOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ...(options.logging ? [LoggerModule.forRoot(exampleLoggerParams(options.logging))] : []),
        PageModule.register({ appName: options.otp.appName }),
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: options.databaseUrl,
          migrations: otpMigrations,
          migrationsRun: true,
          // One transaction per migration: the index migration builds CONCURRENTLY, outside one.
          migrationsTransactionMode: 'each',
          poolSize: options.poolSize ?? 10,
          // Fail fast instead of queueing forever when the database is gone.
          extra: { connectionTimeoutMillis: 3000 },
          retryAttempts: 3,
        }),
        OtpModule.forRoot(options.otp),
        TerminusModule.forRoot(),
        // A registry per app, so several apps in one process (the tests) keep their own counts.
        OtpMetricsModule.forRoot({ registry: new Registry() }),
      ],
      controllers: [ProtectedController, HealthController, MetricsController],
      providers: [OtpHealthIndicator],
    };
  }
}
