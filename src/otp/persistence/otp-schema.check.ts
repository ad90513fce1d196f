import { Inject, Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { DataSource, type DataSourceOptions } from 'typeorm';
import {
  OTP_SCHEMA_COLUMNS,
  OTP_SCHEMA_RELATIONS,
  otpMigrations,
} from '../../../migrations/index.js';
import { OTP_DATA_SOURCE, OTP_OPTIONS } from '../otp.constants.js';
import type { OtpModuleOptions } from '../otp.options.js';

/**
 * At start, checks that the module's tables and the latest migration's indexes are in the
 * database, so an unmigrated database stops the app with a message that says what to run, instead
 * of a first send answering 500. With `migrationsRun`, it runs the pending migrations instead.
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
      `OtpModule: the database is missing nest-otp's tables or indexes (${missing.join(', ')}); ` +
        `its migrations have not been run. Add \`otpMigrations\` (from 'nest-otp/migrations') to your ` +
        `DataSource's \`migrations\` and run them: \`npx typeorm migration:run -d <your data source file>\`, ` +
        `or TypeOrmModule's \`migrationsRun: true\`, or OtpModule's \`migrationsRun: true\`.`,
    );
  }

  private async missingRelations(): Promise<string[]> {
    const rows: { name: string }[] = await this.dataSource.query(
      `SELECT name FROM unnest($1::text[]) AS name WHERE to_regclass(name) IS NULL
       UNION ALL
       SELECT wanted FROM unnest($2::text[]) AS wanted
        WHERE NOT EXISTS (
          SELECT 1 FROM information_schema.columns c
           WHERE c.table_schema = current_schema()
             AND c.table_name = split_part(wanted, '.', 1)
             AND c.column_name = split_part(wanted, '.', 2))`,
      [OTP_SCHEMA_RELATIONS, OTP_SCHEMA_COLUMNS],
    );
    return rows.map((r) => r.name);
  }

  /**
   * Runs only this module's migrations, recorded in the host's migrations table, under an advisory
   * lock so instances that start together apply them once.
   */
  private async runMigrations(): Promise<void> {
    const lock = this.dataSource.createQueryRunner();
    await lock.connect();
    try {
      await lock.query('SELECT pg_advisory_lock(hashtext($1))', ['nest-otp:migrations']);
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
        const applied = await migrator.runMigrations({ transaction: 'all' });
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
