import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  Body,
  Controller,
  Get,
  HttpCode,
  type INestApplication,
  Post,
  UseFilters,
  UseGuards,
} from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import request from 'supertest';
import { createUniqueDatabase, dropDatabase } from '../example/database.js';
import {
  otpMigrations,
  OtpExceptionFilter,
  OtpModule,
  type OtpModuleOptionsInput,
  OtpService,
  OtpThrottlerGuard,
  RequestNotFoundError,
  SendOtpDto,
  type SendOtpInput,
  type SendOtpResult,
  ValidationFailedError,
  type VerifyOtpInput,
} from '../src/index.js';
import { InMemoryOtpProvider } from '../src/testing/index.js';
import { bootApp, LogCapture, queryDatabase } from './support/coexistence-host.js';
import { expectError, uniqueUsPhone } from './support/contract.js';
import { rowsFor, TEST_SECRET, testDatabaseUrl, uniqueEmail } from './support/test-app.js';

const adminUrl = (): string => {
  const url = process.env.TEST_ADMIN_DATABASE_URL;
  if (!url) throw new Error('TEST_ADMIN_DATABASE_URL is not set: run the tests through jest.');
  return url;
};

const hostDatabase = (url: string = testDatabaseUrl()) =>
  TypeOrmModule.forRoot({ type: 'postgres', url, retryAttempts: 0 });

const otpOptions = (extra: OtpModuleOptionsInput = {}): OtpModuleOptionsInput => ({
  hasher: 'hmac',
  hmacSecret: TEST_SECRET,
  ...extra,
});

/** The error a promise rejects with (fails the test when it resolves). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection, but the promise resolved');
}

// Express only: startup checks and the service, not the routes' HTTP behaviour.
describe('OtpModule at start', () => {
  it.each([
    [
      'an unknown option in forRootAsync’s factory',
      () => OtpModule.forRootAsync({ useFactory: () => ({ ttlSecond: 60 }) as never }),
      /unknown option "ttlSecond"/,
    ],
    ['an empty providers list', () => OtpModule.forRoot({ providers: [] }), /providers/],
    [
      'an email-only provider with the default channels',
      () => OtpModule.forRoot({ providers: [new InMemoryOtpProvider(['email'])] }),
      /channels includes 'sms'/,
    ],
  ])('refuses to start on %s, naming the key', async (_name, otpModule, message) => {
    await expect(bootApp({ imports: [otpModule()] })).rejects.toThrow(message);
  });

  describe('with channels: [email] and an email-only InMemoryOtpProvider (nest-otp/testing)', () => {
    const provider = new InMemoryOtpProvider(['email']);
    let app: INestApplication;
    beforeAll(async () => {
      app = await bootApp({
        imports: [
          hostDatabase(),
          OtpModule.forRoot(otpOptions({ providers: [provider], channels: ['email'] })),
        ],
      });
    });
    afterAll(async () => {
      await app?.close();
    });

    const send = (body: object) => request(app.getHttpServer()).post('/otp/send').send(body);

    it('POST /otp/send: starts, and a phone destination is a 400 OTP_CHANNEL_NOT_ALLOWED', async () => {
      const phone = uniqueUsPhone().e164;
      expectError(await send({ destination: phone }), 400, 'OTP_CHANNEL_NOT_ALLOWED');
      expect(await rowsFor(phone)).toHaveLength(0);
      expect((await send({ destination: uniqueEmail() })).status).toBe(202);
    });

    it('InMemoryOtpProvider.lastCode: the newest code per destination', async () => {
      const ada = uniqueEmail();
      const bob = uniqueEmail();
      expect((await send({ destination: ada })).status).toBe(202);
      const bobSent = await send({ destination: bob });
      expect(bobSent.status).toBe(202);
      // Another purpose: a second flow, so no resend cooldown stands in the way.
      const adaSecond = await send({ destination: ada, purpose: 'signup' });
      expect(adaSecond.status).toBe(202);

      expect(provider.lastMessage(ada)?.requestId).toBe(adaSecond.body.requestId);
      expect(provider.lastMessage(bob)?.requestId).toBe(bobSent.body.requestId);
      expect(provider.lastCode(ada)).toBe(provider.lastMessage(ada)?.code);
      const verified = await request(app.getHttpServer())
        .post('/otp/verify')
        .send({ destination: ada, purpose: 'signup', code: provider.lastCode(ada) });
      expect(verified.status).toBe(200);
    });

    it('InMemoryOtpProvider.lastCode: throws for a destination nothing was sent to', () => {
      expect(() => provider.lastCode(uniqueEmail())).toThrow(/no code was sent/);
    });

    it('InMemoryOtpProvider.failing: a failing channel makes POST /otp/send a 503 OTP_DELIVERY_FAILED', async () => {
      const email = uniqueEmail();
      provider.failing.add('email');
      try {
        expectError(await send({ destination: email }), 503, 'OTP_DELIVERY_FAILED');
        expect(provider.lastMessage(email)).toBeUndefined();
      } finally {
        provider.failing.delete('email');
      }
      // A failed delivery starts no cooldown.
      expect((await send({ destination: email })).status).toBe(202);
      expect(provider.lastCode(email)).toMatch(/^[0-9]{6}$/);
    });
  });

  it.each([
    ['production', 'warns', true],
    ['test', 'does not warn', false],
  ])(
    'with NODE_ENV=%s and the default console provider, it %s at start',
    async (nodeEnv, _says, warns) => {
      const before = process.env.NODE_ENV;
      const logger = new LogCapture();
      process.env.NODE_ENV = nodeEnv;
      let app: INestApplication | undefined;
      try {
        app = await bootApp(
          { imports: [hostDatabase(), OtpModule.forRoot(otpOptions())] },
          { logger },
        );
      } finally {
        process.env.NODE_ENV = before;
        await app?.close();
      }
      const consoleWarnings = logger.warnings.filter((w) => /console provider/i.test(w));
      expect(consoleWarnings.length > 0).toBe(warns);
    },
  );

  describe('on a fresh database', () => {
    const created: string[] = [];
    afterAll(async () => {
      for (const url of created) await dropDatabase(adminUrl(), url);
    });
    const freshDatabase = async (): Promise<string> => {
      const url = await createUniqueDatabase(adminUrl(), 'nest_otp_startup');
      created.push(url);
      return url;
    };

    it('refuses to start on an unmigrated database, naming otp_requests and migration:run', async () => {
      const url = await freshDatabase();
      const error = await rejection(
        bootApp({ imports: [hostDatabase(url), OtpModule.forRoot(otpOptions())] }),
      );
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toMatch(/otp_requests/);
      expect((error as Error).message).toMatch(/migration:run/);
      const tables = await queryDatabase(url, `SELECT to_regclass('otp_requests') AS t`);
      expect(tables).toEqual([{ t: null }]);
    });

    it('migrationsRun: true: three instances starting at once apply each migration once', async () => {
      const url = await freshDatabase();
      const provider = new InMemoryOtpProvider();
      const boot = () =>
        bootApp({
          imports: [
            hostDatabase(url),
            OtpModule.forRoot(otpOptions({ providers: [provider], migrationsRun: true })),
          ],
        });
      const results = await Promise.allSettled([boot(), boot(), boot()]);
      const apps = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      try {
        expect(
          results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'started')),
        ).toEqual(['started', 'started', 'started']);
        const tables = await queryDatabase<{ t: string | null }>(
          url,
          `SELECT to_regclass(name)::text AS t FROM unnest(ARRAY['otp_requests', 'otp_destinations']) AS name`,
        );
        expect(tables).toEqual([{ t: 'otp_requests' }, { t: 'otp_destinations' }]);
        const applied = await queryDatabase<{ name: string; count: number }>(
          url,
          'SELECT name, count(*)::int AS count FROM migrations GROUP BY name ORDER BY name',
        );
        const names = otpMigrations.map((M) => new M().name ?? M.name).sort();
        expect(applied).toEqual(names.map((name) => ({ name, count: 1 })));

        const [first, second] = apps as [INestApplication, INestApplication];
        const email = uniqueEmail();
        const sent = await request(first.getHttpServer())
          .post('/otp/send')
          .send({ destination: email });
        expect(sent.status).toBe(202);
        const verified = await request(second.getHttpServer())
          .post('/otp/verify')
          .send({ destination: email, code: provider.lastCode(email) });
        expect(verified.status).toBe(200);
      } finally {
        for (const app of apps) await app.close();
      }
    });
  });
});

@Controller('account')
class AccountController {
  constructor(private readonly otp: OtpService) {}

  @Post('send-code')
  @HttpCode(202)
  @UseFilters(OtpExceptionFilter)
  sendCode(@Body() body: SendOtpDto): Promise<SendOtpResult> {
    return this.otp.send(body);
  }

  @Get('limited')
  @UseGuards(OtpThrottlerGuard)
  limited(): { ok: true } {
    return { ok: true };
  }
}

describe('delivery providers at start and at shutdown', () => {
  /** A provider with the optional lifecycle hooks, as SmtpOtpProvider and TwilioOtpProvider have. */
  class LifecycleProvider extends InMemoryOtpProvider {
    closed = 0;
    constructor(private readonly missing?: string) {
      super();
    }
    ready(): Promise<void> {
      return this.missing
        ? Promise.reject(new Error(`needs the optional peer dependency '${this.missing}'`))
        : Promise.resolve();
    }
    close(): void {
      this.closed += 1;
    }
  }

  it('refuses to start when a provider is not ready, naming the provider and the package', async () => {
    const provider = new LifecycleProvider('twilio');
    const error = await rejection(
      bootApp({
        imports: [hostDatabase(), OtpModule.forRoot(otpOptions({ providers: [provider] }))],
      }),
    );
    expect(String(error)).toMatch(/delivery provider cannot start.*in-memory: .*'twilio'/);
  });

  it('starts with ready providers and closes them once at shutdown', async () => {
    const provider = new LifecycleProvider();
    const app = await bootApp({
      imports: [hostDatabase(), OtpModule.forRoot(otpOptions({ providers: [provider] }))],
    });
    const sent = await request(app.getHttpServer())
      .post('/otp/send')
      .send({ destination: uniqueEmail() });
    expect(sent.status).toBe(202);
    expect(provider.closed).toBe(0);
    await app.close();
    expect(provider.closed).toBe(1);
  });
});

describe('OtpService used directly (controller: false)', () => {
  const provider = new InMemoryOtpProvider();
  let app: INestApplication;
  let otp: OtpService;
  beforeAll(async () => {
    app = await bootApp({
      imports: [
        hostDatabase(),
        OtpModule.forRoot({
          ...otpOptions({ providers: [provider], throttleLimit: 2 }),
          controller: false,
        }),
      ],
      controllers: [AccountController],
    });
    otp = app.get(OtpService);
  });
  afterAll(async () => {
    await app?.close();
  });

  it.each([['/otp/send'], ['/otp/verify']])('POST %s: no route, the host’s 404', async (path) => {
    const res = await request(app.getHttpServer()).post(path).send({ destination: uniqueEmail() });
    expect(res.status).toBe(404);
    expect(res.body.code).toBeUndefined();
  });

  it.each([
    ['send({})', {}, /destination/],
    ['send({ destination: 5 })', { destination: 5 }, /destination must be a string/],
  ])('OtpService.%s rejects with ValidationFailedError (400)', async (_name, input, message) => {
    const error = await rejection(otp.send(input as unknown as SendOtpInput));
    expect(error).toBeInstanceOf(ValidationFailedError);
    const failed = error as ValidationFailedError;
    expect(failed.getStatus()).toBe(400);
    expect(failed.code).toBe('VALIDATION_FAILED');
    const { message: text } = failed.getResponse() as { message: string | string[] };
    expect(([] as string[]).concat(text).join('; ')).toMatch(message);
  });

  it('OtpService.verify: a numeric code rejects with a 400 and uses no attempt', async () => {
    const email = uniqueEmail();
    await otp.send({ destination: email });
    const code = provider.lastCode(email);
    const error = await rejection(
      otp.verify({ destination: email, code: Number(code) } as unknown as VerifyOtpInput),
    );
    expect(error).toBeInstanceOf(ValidationFailedError);
    expect((error as ValidationFailedError).getStatus()).toBe(400);
    expect((await rowsFor(email)).map((r) => r.attempts_used)).toEqual([0]);
    await expect(otp.verify({ destination: email, code })).resolves.toMatchObject({
      verified: true,
    });
  });

  it('OtpService.status: a malformed id rejects with RequestNotFoundError', async () => {
    const error = await rejection(otp.status('not-a-uuid'));
    expect(error).toBeInstanceOf(RequestNotFoundError);
    expect((error as RequestNotFoundError).getStatus()).toBe(404);
  });

  it('POST /account/send-code (@UseFilters(OtpExceptionFilter)): a cooldown is the contract’s 429 with Retry-After', async () => {
    const email = uniqueEmail();
    const http = request(app.getHttpServer());
    expect((await http.post('/account/send-code').send({ destination: email })).status).toBe(202);
    const res = await http.post('/account/send-code').send({ destination: email });
    expectError(res, 429, 'OTP_RESEND_COOLDOWN');
    expect(res.body.retryAfter).toBeGreaterThanOrEqual(1);
  });

  it('GET /account/limited (@UseGuards(OtpThrottlerGuard)): resolves its dependencies and throttles with RATE_LIMITED', async () => {
    const http = request(app.getHttpServer());
    for (let i = 0; i < 2; i += 1) {
      const res = await http.get('/account/limited');
      expect({ status: res.status, body: res.body as unknown }).toEqual({
        status: 200,
        body: { ok: true },
      });
    }
    expectError(await http.get('/account/limited'), 429, 'RATE_LIMITED');
  });
});
