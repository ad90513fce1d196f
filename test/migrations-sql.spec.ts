import { describe, expect, it } from '@jest/globals';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { migrationsSqlDir, renderMigrationSql } from '../scripts/migrations-sql.js';
import { otpPartitionedMigrations } from '../migrations/index.js';

const FIX = 'run `npm run migrations:sql` and commit migrations/sql/';

describe('migrations/sql/ (npm run migrations:sql)', () => {
  it('holds exactly the SQL the TypeORM migrations generate now', async () => {
    const dir = migrationsSqlDir();
    const expected = await renderMigrationSql();
    const present = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.sql')) : [];
    const drift = [
      ...expected.flatMap(({ name, content }) => {
        if (!present.includes(name)) return [`migrations/sql/${name} is missing: ${FIX}`];
        const actual = readFileSync(join(dir, name), 'utf8');
        return actual === content ? [] : [`migrations/sql/${name} is out of date: ${FIX}`];
      }),
      ...present
        .filter((name) => !expected.some((file) => file.name === name))
        .map((name) => `migrations/sql/${name} has no migration: ${FIX}`),
    ];
    expect(drift).toEqual([]);
  });

  it('names the files so that listing them sorts them in the order the migrations run', async () => {
    const names = (await renderMigrationSql()).map((file) => file.name);
    const up = names.filter((name) => name.endsWith('.up.sql'));
    // Both layouts' migrations: otpPartitionedMigrations is otpMigrations plus PartitionOtpRequests.
    expect(up).toHaveLength(otpPartitionedMigrations.length);
    expect([...up].sort()).toEqual(up);
    expect(names.filter((name) => name.endsWith('.down.sql'))).toEqual(
      up.map((name) => name.replace(/\.up\.sql$/, '.down.sql')),
    );
  });

  it('says which files must run outside a transaction, from the migration itself', async () => {
    for (const { name, content } of await renderMigrationSql()) {
      const outside = /CONCURRENTLY/.test(content.replace(/^--.*$/gm, ''));
      expect([name, /^-- Run OUTSIDE a transaction/m.test(content)]).toEqual([name, outside]);
      expect([name, content.includes('-- squawk-disable-assume-in-transaction')]).toEqual([
        name,
        outside,
      ]);
    }
  });
});
