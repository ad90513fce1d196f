import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, type INestApplication, Injectable, Module, Post, Req } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { createUniqueDatabase, dropDatabase, runOtpMigrations } from '../example/database.js';
import {
  OtpModule,
  OtpService,
  RequireOtp,
  type OtpVerifiedRequest,
  OTP_OPTIONS,
  type OtpModuleOptions,
} from '../src/index.js';
import {
  CapturingProvider,
  query,
  TEST_SECRET,
  testDatabaseUrl,
  uniqueEmail,
} from './support/test-app.js';

@Injectable()
class SettingsService {
  readonly ttlSeconds = 120;
}

@Module({ providers: [SettingsService], exports: [SettingsService] })
class SettingsModule {}

@Controller('account')
class AccountController {
  @Post('delete')
  @RequireOtp('delete-account')
  delete(@Req() req: OtpVerifiedRequest): { deleted: string } {
    return { deleted: req.otp.destination };
  }
}

/** A host app with its own DataSource, handed to the module through the options. */
async function hostWith(
  imports: unknown[],
  controllers: unknown[] = [],
): Promise<INestApplication> {
  const ref = await Test.createTestingModule({
    imports: imports as never[],
    controllers: controllers as never[],
  }).compile();
  const app = ref.createNestApplication({ logger: false });
  await app.init();
  return app;
}

// Express only: module wiring (DataSource, migrations), not the routes' HTTP behaviour.
describe('OtpModule', () => {
  let dataSource: DataSource;
  beforeAll(async () => {
    dataSource = new DataSource({ type: 'postgres', url: testDatabaseUrl() });
    await dataSource.initialize();
  });
  afterAll(async () => {
    await dataSource.destroy();
  });

  it('forRootAsync builds options from injected providers and mounts routes under routePrefix', async () => {
    const provider = new CapturingProvider();
    const app = await hostWith(
      [
        OtpModule.forRootAsync({
          imports: [SettingsModule],
          inject: [SettingsService],
          useFactory: (settings: SettingsService) => ({
            ttlSeconds: settings.ttlSeconds,
            hasher: 'hmac' as const,
            hmacSecret: TEST_SECRET,
            providers: [provider],
            dataSource,
          }),
          routePrefix: 'auth/otp',
        }),
      ],
      [AccountController],
    );
    try {
      const email = uniqueEmail();
      await request(app.getHttpServer()).post('/otp/send').send({ destination: email }).expect(404);
      const sent = await request(app.getHttpServer())
        .post('/auth/otp/send')
        .send({ destination: email, purpose: 'delete-account' })
        .expect(202);
      const lifetime = Date.parse(sent.body.expiresAt) - Date.now();
      expect(lifetime).toBeGreaterThan(100_000);
      expect(lifetime).toBeLessThanOrEqual(120_000);
      expect(app.get<OtpModuleOptions>(OTP_OPTIONS).ttlSeconds).toBe(120);

      const verified = await request(app.getHttpServer())
        .post('/auth/otp/verify')
        .send({ destination: email, purpose: 'delete-account', code: provider.lastCode(email) })
        .expect(200);
      const deleted = await request(app.getHttpServer())
        .post('/account/delete')
        .set('X-OTP-Token', verified.body.verificationToken)
        .expect(201);
      expect(deleted.body).toEqual({ deleted: email });
    } finally {
      await app.close();
    }
  });

  it('with controller: false mounts no route and OtpService works alone', async () => {
    const provider = new CapturingProvider();
    const app = await hostWith([
      OtpModule.forRoot({
        hasher: 'hmac',
        hmacSecret: TEST_SECRET,
        providers: [provider],
        dataSource,
        controller: false,
      }),
    ]);
    try {
      const email = uniqueEmail();
      await request(app.getHttpServer()).post('/otp/send').send({ destination: email }).expect(404);
      const otp = app.get(OtpService);
      const sent = await otp.send({ destination: email, purpose: 'signup' });
      expect(sent.purpose).toBe('signup');
      const result = await otp.verify({
        destination: email,
        purpose: 'signup',
        code: provider.lastCode(email),
      });
      expect(result.verified).toBe(true);
      const proof = await otp.consumeToken(result.verificationToken, 'signup');
      expect(proof).toMatchObject({
        destination: email,
        purpose: 'signup',
        requestId: sent.requestId,
      });
      expect(await otp.consumeToken(result.verificationToken, 'signup')).toBeNull();
      const [row] = await query(
        'SELECT verified_at, token_used_at FROM otp_requests WHERE id = $1',
        [sent.requestId],
      );
      expect(row?.verified_at).not.toBeNull();
      expect(row?.token_used_at).not.toBeNull();
    } finally {
      await app.close();
    }
  });

  it('uses the host TypeORM connection when no dataSource is given', async () => {
    const { TypeOrmModule } = await import('@nestjs/typeorm');
    const provider = new CapturingProvider();
    const app = await hostWith([
      TypeOrmModule.forRoot({ type: 'postgres', url: testDatabaseUrl() }),
      OtpModule.forRoot({ hasher: 'hmac', hmacSecret: TEST_SECRET, providers: [provider] }),
    ]);
    try {
      const email = uniqueEmail();
      await request(app.getHttpServer()).post('/otp/send').send({ destination: email }).expect(202);
      expect(provider.messages).toHaveLength(1);
    } finally {
      await app.close();
    }
  });

  it('refuses to start with a clear message when options are invalid', async () => {
    await expect(
      hostWith([OtpModule.forRoot({ hasher: 'hmac', hmacSecret: 'short', dataSource })]),
    ).rejects.toThrow(/hmacSecret \(OTP_SECRET\) of at least 32 bytes/);
  });

  it('refuses to start without a DataSource, saying how to fix it', async () => {
    await expect(
      hostWith([OtpModule.forRoot({ hasher: 'hmac', hmacSecret: TEST_SECRET })]),
    ).rejects.toThrow(/TypeOrmModule\.forRoot/);
  });
});

describe('migrations (npm run migration:run / migration:revert)', () => {
  const adminUrl = (): string => process.env.TEST_ADMIN_DATABASE_URL as string;
  let url: string;
  beforeAll(async () => {
    url = await createUniqueDatabase(adminUrl(), 'nest_otp_migration');
  });
  afterAll(async () => {
    await dropDatabase(adminUrl(), url);
  });

  const tables = async (): Promise<string[]> => {
    const ds = new DataSource({ type: 'postgres', url });
    await ds.initialize();
    try {
      const rows = await ds.query<{ t: string }[]>(
        `SELECT tablename AS t FROM pg_tables WHERE tablename LIKE 'otp\\_%' ORDER BY 1`,
      );
      return rows.map((r) => r.t);
    } finally {
      await ds.destroy();
    }
  };

  const deliveryColumns = async (): Promise<string[]> => {
    const ds = await new DataSource({ type: 'postgres', url }).initialize();
    try {
      const rows: { c: string }[] = await ds.query(
        `SELECT column_name AS c FROM information_schema.columns
          WHERE table_name = 'otp_requests' AND column_name LIKE 'delivered\\_%' AND column_name <> 'delivered_at'
          ORDER BY 1`,
      );
      return rows.map((r) => r.c);
    } finally {
      await ds.destroy();
    }
  };

  it('creates the tables with the CLI, reverts each migration, and creates them again', async () => {
    const run = promisify(execFile);
    const typeorm = ['node_modules/typeorm/cli.js', '-d', 'build/ormconfig.js'];
    const env = { ...process.env, DATABASE_URL: url };
    const cli = (command: string) =>
      run('node', [typeorm[0] as string, command, ...typeorm.slice(1)], { env });
    const all = ['otp_deliveries', 'otp_destinations', 'otp_fallbacks', 'otp_requests'];
    await cli('migration:run');
    expect(await tables()).toEqual(all);
    expect(await deliveryColumns()).toEqual(['delivered_by', 'delivered_to']);
    // Newest first: IndexLiveFlows, MergeOtpRequestsChecks, MoveChecksToDomains,
    // ValidateOtpChannelPush, AddDeliveryReceipts (its tables go), AddSubjectIndex,
    // AddPurposePolicy, then AddDeliveredBy (its columns go).
    await cli('migration:revert');
    expect(await tables()).toEqual(all);
    await cli('migration:revert');
    expect(await tables()).toEqual(all);
    await cli('migration:revert');
    expect(await tables()).toEqual(all);
    await cli('migration:revert');
    expect(await tables()).toEqual(all);
    await cli('migration:revert');
    expect(await tables()).toEqual(['otp_destinations', 'otp_requests']);
    await cli('migration:revert');
    await cli('migration:revert');
    expect(await deliveryColumns()).toEqual(['delivered_by', 'delivered_to']);
    await cli('migration:revert');
    expect(await deliveryColumns()).toEqual([]);
    await cli('migration:revert');
    expect(await tables()).toEqual(['otp_destinations', 'otp_requests']);
    await cli('migration:revert');
    expect(await tables()).toEqual(['otp_requests']);
    await cli('migration:revert');
    expect(await tables()).toEqual([]);
    await cli('migration:run');
    expect(await deliveryColumns()).toEqual(['delivered_by', 'delivered_to']);
    for (let i = 0; i < 11; i += 1) await cli('migration:revert');
    expect(await tables()).toEqual([]);
    await runOtpMigrations(url);
    expect(await tables()).toEqual(all);
  });
});
