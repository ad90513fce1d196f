import { DataSource, type MigrationInterface } from 'typeorm';

/** `work` on a TypeORM DataSource of its own on `url` (knowing `migrations`), destroyed after. */
export async function withDataSource<T>(
  url: string,
  work: (ds: DataSource) => Promise<T>,
  migrations: readonly (new () => MigrationInterface)[] = [],
): Promise<T> {
  const dataSource = await new DataSource({
    type: 'postgres',
    url,
    migrations: [...migrations],
  }).initialize();
  try {
    return await work(dataSource);
  } finally {
    await dataSource.destroy();
  }
}
