import { Inject, Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { DataSource, type DataSourceOptions } from 'typeorm';
import {
  OTP_SCHEMA_COLUMNS,
  OTP_SCHEMA_RELATIONS,
  OTP_SCHEMA_TYPES,
  otpMigrations,
} from '../../../migrations/index.js';
import { OTP_DATA_SOURCE, OTP_OPTIONS } from '../otp.constants.js';
import type { OtpModuleOptions } from '../otp.options.js';

/**
 * At start, checks that the module's tables, columns and types and the latest migration's indexes
 * are in the database, so an unmigrated database stops the app with a message that says what to
 * run, instead of a first send answering 500. With `migrationsRun`, it runs the pending migrations instead.
 */
@Injectable()
export class OtpSchemaCheck implements OnModuleInit {
  private readonly logger = new Logger('OtpModule');

  constructor(
    @Inject(OTP_DATA_SOURCE) private readonly dataSource: DataSource,
    @Inject(OTP_OPTIONS) private readonly options: OtpModuleOptions,
  ) {}

  async onModuleInit(): Promise<void> {
    if (!this.dataSource.isInitialized) {
      throw new Error(
        'OtpModule: the DataSource is not initialized. Pass an initialized DataSource as `dataSource`, ' +
          'or let TypeOrmModule.forRoot(...) create it.',
      );
    }
    let missing = await this.missingRelations();
    if (missing.length === 0) return;
    if (this.options.migrationsRun) {
      await this.runMigrations();
      missing = await this.missingRelations();
      if (missing.length === 0) return;
    }
    throw new Error(
      `OtpModule: the database is missing nest-otp's tables, indexes or types (${missing.join(', ')}); ` +
        `its migrations have not been run. Add \`otpMigrations\` (from 'nest-otp/migrations') to your ` +
        `DataSource's \`migrations\` and run them: \`npx typeorm migration:run -d <your data source file>\`, ` +
        `or TypeOrmModule's \`migrationsRun: true\`, or OtpModule's \`migrationsRun: true\`.`,
    );
  }

  private missingRelations(): Promise<string[]> {
    return findMissingOtpSchema(this.dataSource);
  }

  /**
   * Runs only this module's migrations, recorded in the host's migrations table, under an advisory
   * lock so instances that start together apply them once.
   */
  private async runMigrations(): Promise<void> {
    const lock = this.dataSource.createQueryRunner();
    await lock.connect();
    try {
      // Polled, not pg_advisory_lock: a session blocked in it holds a snapshot, and CREATE INDEX
      // CONCURRENTLY waits for every older snapshot, so the waiting instances would stall the
      // migration the lock holder runs (until its lock_timeout). Between tries none is held.
      for (;;) {
        const [row] = (await lock.query('SELECT pg_try_advisory_lock(hashtext($1)) AS locked', [
          'nest-otp:migrations',
        ])) as { locked: boolean }[];
        if (row?.locked) break;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      const migrator = new DataSource({
        ...this.dataSource.options,
        entities: [],
        subscribers: [],
        migrations: otpMigrations,
        migrationsRun: false,
        synchronize: false,
        poolSize: 1,
      } as DataSourceOptions);
      await migrator.initialize();
      try {
        // 'each': the index migration builds CONCURRENTLY, outside any transaction.
        const applied = await migrator.runMigrations({ transaction: 'each' });
        this.logger.log(`applied ${applied.length} nest-otp migration(s)`);
      } finally {
        await migrator.destroy();
      }
    } finally {
      await lock.query('SELECT pg_advisory_unlock(hashtext($1))', ['nest-otp:migrations']);
      await lock.release();
    }
  }
}

/**
 * The module's tables, indexes, columns and types (`OTP_SCHEMA_RELATIONS`, `OTP_SCHEMA_COLUMNS`,
 * `OTP_SCHEMA_TYPES`) missing from the database, by name; empty once every migration ran. One
 * query; rejects when the database cannot be reached. The start-up check and `OtpHealthIndicator`
 * both use it.
 */
export async function findMissingOtpSchema(dataSource: DataSource): Promise<string[]> {
  const rows: { name: string }[] = await dataSource.query(
    `SELECT name FROM unnest($1::text[]) AS name WHERE to_regclass(name) IS NULL
        -- A unique index of otp_requests is a plain …_idx on the partitioned layout.
        AND to_regclass(regexp_replace(name, '_uq$', '_idx')) IS NULL
     UNION ALL
     SELECT wanted FROM unnest($2::text[]) AS wanted
      WHERE NOT EXISTS (
        SELECT 1 FROM information_schema.columns c
         WHERE c.table_schema = current_schema()
           AND c.table_name = split_part(wanted, '.', 1)
           AND c.column_name = split_part(wanted, '.', 2))
        -- A missing table is named once, not with each of its columns.
        AND to_regclass(split_part(wanted, '.', 1)) IS NOT NULL
     UNION ALL
     SELECT name FROM unnest($3::text[]) AS name WHERE to_regtype(name) IS NULL`,
    [OTP_SCHEMA_RELATIONS, OTP_SCHEMA_COLUMNS, OTP_SCHEMA_TYPES],
  );
  return rows.map((r) => r.name);
}
