import {
  type ArgumentsHost,
  Body,
  Catch,
  Controller,
  type ExceptionFilter,
  Get,
  HttpException,
  type INestApplication,
  type LoggerService,
  type ModuleMetadata,
  type NestApplicationOptions,
  Post,
  Req,
  ValidationPipe,
} from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { ThrottlerGuard, ThrottlerModule } from '@nestjs/throttler';
import { TypeOrmModule } from '@nestjs/typeorm';
import { IsInt, IsString, Min, MinLength } from 'class-validator';
import pg from 'pg';
import request from 'supertest';
import type TestAgent from 'supertest/lib/agent.js';
import {
  OtpModule,
  type OtpModuleOptionsInput,
  type OtpVerifiedRequest,
  RequireOtp,
} from '../../src/index.js';
import { InMemoryOtpProvider } from '../../src/testing/index.js';
import { type Platform, TEST_SECRET, testDatabaseUrl } from './test-app.js';

/**
 * A host app the OTP module is a guest in, with the host's own habits: a strict global
 * ValidationPipe with implicit conversion, a global exception filter with its own envelope, a global
 * ThrottlerGuard, Nest's default body parsers, and its own controllers and DTOs.
 */

/** Every log line, kept instead of printed; tests read the warnings. */
export class LogCapture implements LoggerService {
  readonly lines: { level: string; message: string }[] = [];

  private keep(level: string, message: unknown): void {
    this.lines.push({
      level,
      message: message instanceof Error ? message.message : String(message),
    });
  }

  log(message: unknown): void {
    this.keep('log', message);
  }
  error(message: unknown): void {
    this.keep('error', message);
  }
  warn(message: unknown): void {
    this.keep('warn', message);
  }
  debug(message: unknown): void {
    this.keep('debug', message);
  }
  verbose(message: unknown): void {
    this.keep('verbose', message);
  }

  get warnings(): string[] {
    return this.lines.filter((l) => l.level === 'warn').map((l) => l.message);
  }
}

/** The host's envelope, unlike the contract's: `{ error: { status, message } }`. */
@Catch()
export class HostExceptionFilter implements ExceptionFilter {
  catch(exception: unknown, host: ArgumentsHost): void {
    // Express's response has `json`, Fastify's reply only `send` (which writes JSON for objects).
    const response = host.switchToHttp().getResponse<{
      status(code: number): { json?(body: unknown): void; send(body: unknown): void };
    }>();
    let status = 500;
    let message: unknown = 'Internal server error';
    if (exception instanceof HttpException) {
      status = exception.getStatus();
      const body = exception.getResponse();
      message =
        typeof body === 'object' && body !== null && 'message' in body
          ? body.message
          : exception.message;
    } else if (
      exception instanceof Error &&
      typeof (exception as { status?: unknown }).status === 'number'
    ) {
      status = (exception as Error & { status: number }).status;
      message = exception.message;
    }
    const answer = response.status(status);
    const body = { error: { status, message } };
    if (answer.json) answer.json(body);
    else answer.send(body);
  }
}

export class HostItemDto {
  @IsString()
  name!: string;

  @IsInt()
  @Min(1)
  quantity!: number;
}

export class HostFormDto {
  @IsString()
  @MinLength(1)
  title!: string;
}

@Controller('host')
export class HostController {
  @Get('ping')
  ping(): { pong: true } {
    return { pong: true };
  }

  @Post('items')
  create(@Body() item: HostItemDto): { name: string; quantity: number; quantityType: string } {
    return { name: item.name, quantity: item.quantity, quantityType: typeof item.quantity };
  }

  @Post('form')
  form(@Body() body: HostFormDto): { title: string } {
    return { title: body.title };
  }

  /** Guarded by the module: `@RequireOtp` alone answers its 401 in the contract's shape. */
  @Post('protected')
  @RequireOtp('login')
  protectedRoute(@Req() req: OtpVerifiedRequest): { ok: true; destination: string } {
    return { ok: true, destination: req.otp.destination };
  }
}

/**
 * Compiles, creates and initializes an app; `configure` runs between creation and init (global
 * pipes, filters, prefix). An app whose init fails is closed before the error is rethrown, so it
 * leaves no connection behind.
 */
export async function bootApp(
  metadata: ModuleMetadata,
  options: {
    app?: NestApplicationOptions;
    configure?: (app: INestApplication) => void;
    logger?: LoggerService;
    /** Default Express. */
    platform?: Platform;
  } = {},
): Promise<INestApplication> {
  const ref = await Test.createTestingModule(metadata)
    .setLogger(options.logger ?? new LogCapture())
    .compile();
  const fastify = options.platform === 'fastify';
  const app = fastify
    ? ref.createNestApplication(new FastifyAdapter() as never, options.app)
    : ref.createNestApplication(options.app);
  options.configure?.(app);
  try {
    await app.init();
    if (fastify) {
      await (app.getHttpAdapter().getInstance() as { ready(): Promise<unknown> }).ready();
    }
  } catch (error) {
    await app.close().catch(() => undefined);
    throw error;
  }
  return app;
}

export interface CoexistenceHostOptions {
  /** OtpModule options over the defaults here (HMAC, in-memory provider, high throttle limit). */
  otp?: OtpModuleOptionsInput;
  /** The host ThrottlerModule's limit per route and IP per minute. Default 10 000. */
  hostThrottleLimit?: number;
  /** Nest's default body parsers; `false` for a host that parses nothing. Default true. */
  bodyParser?: boolean;
  /** Default Express. */
  platform?: Platform;
  globalPrefix?: string;
  routePrefix?: string;
}

export interface CoexistenceHost {
  app: INestApplication;
  http: TestAgent;
  provider: InMemoryOtpProvider;
  close(): Promise<void>;
}

export async function startCoexistenceHost(
  options: CoexistenceHostOptions = {},
): Promise<CoexistenceHost> {
  const provider = new InMemoryOtpProvider();
  const app = await bootApp(
    {
      imports: [
        TypeOrmModule.forRoot({ type: 'postgres', url: testDatabaseUrl(), retryAttempts: 0 }),
        ThrottlerModule.forRoot([{ ttl: 60_000, limit: options.hostThrottleLimit ?? 10_000 }]),
        OtpModule.forRoot({
          hasher: 'hmac',
          hmacSecret: TEST_SECRET,
          providers: [provider],
          throttleLimit: 10_000,
          ...options.otp,
          ...(options.routePrefix ? { routePrefix: options.routePrefix } : {}),
        }),
      ],
      controllers: [HostController],
      providers: [{ provide: APP_GUARD, useClass: ThrottlerGuard }],
    },
    {
      app: { bodyParser: options.bodyParser ?? true },
      platform: options.platform,
      configure: (app) => {
        app.useGlobalPipes(
          new ValidationPipe({
            whitelist: true,
            forbidNonWhitelisted: true,
            transform: true,
            transformOptions: { enableImplicitConversion: true },
          }),
        );
        app.useGlobalFilters(new HostExceptionFilter());
        if (options.globalPrefix) app.setGlobalPrefix(options.globalPrefix);
      },
    },
  );
  return { app, http: request(app.getHttpServer()), provider, close: () => app.close() };
}

/** Direct SQL on any database of the test server. */
export async function queryDatabase<T = Record<string, unknown>>(
  url: string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as T[];
  } finally {
    await client.end();
  }
}
