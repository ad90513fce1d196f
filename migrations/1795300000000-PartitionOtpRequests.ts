import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The opt-in partitioned layout (`otpPartitionedMigrations`): turns the empty otp_requests that
 * `CreateOtpRequests` just made into a table range-partitioned by `created_at`, one partition a
 * UTC day, so retention drops whole days instead of deleting rows. It shares its timestamp with
 * `CreateOtpRequests` and runs right after it, so every later migration (columns, indexes) applies
 * to the partitioned table, on a fresh install and on one that is years old alike. Hosts that run
 * plain `otpMigrations` against a partitioned database (the module's `migrationsRun`) find this one
 * simply not listed: nothing they run undoes it.
 *
 * What changes, and why (docs/scaling.md):
 * - Same columns, defaults, CHECKs and indexes, copied from the table itself (`LIKE`, and each
 *   index definition), except where Postgres requires the partition key in a unique index:
 *   - the primary key becomes `(id, created_at)` (ids are random v4 UUIDs made by the module);
 *   - `otp_requests_idempotency_key_uq` and `otp_requests_active_flow_uq` become plain indexes
 *     (`…_idx`), and a trigger enforces both across every partition, raising the very error the
 *     unique index raised (23505, same constraint name), so the module behaves the same on both
 *     layouts. One active code per flow is already serialized by the compare-and-set on
 *     `otp_destinations`; the trigger re-checks it under that row's lock. An idempotency key is
 *     checked under a transaction-scoped advisory lock on the key.
 *   - `otp_requests_token_hash_uq` becomes `otp_requests_token_hash_idx`: a token is 256 random
 *     bits, so its hash never repeats; the guard's lookup stays one index probe a partition.
 * - Partitions: with pg_partman installed in the database (`CREATE EXTENSION pg_partman`, done by
 *   the DBA first), the table is registered with it (daily, UTC days, 7 days ahead, with its
 *   default partition); otherwise `otp_requests_create_partitions()` makes them (today and 7
 *   days ahead), and the module calls it at start and every hour, and `npx nest-otp partitions`
 *   from cron.
 *
 * Refuses a table that holds rows: converting a live table is not an online operation.
 */
export class PartitionOtpRequests1795300000000 implements MigrationInterface {
  name = 'PartitionOtpRequests1795300000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`SET LOCAL lock_timeout = '5s'`);
    await queryRunner.query(`SET LOCAL statement_timeout = '1min'`);
    await queryRunner.query(`
      DO $$
      BEGIN
        IF (SELECT relkind FROM pg_class WHERE oid = 'otp_requests'::regclass) <> 'r' THEN
          RAISE EXCEPTION 'otp_requests is already partitioned';
        END IF;
        IF EXISTS (SELECT 1 FROM otp_requests) THEN
          RAISE EXCEPTION 'otp_requests holds rows: the partitioned layout is for a new install (see docs/scaling.md)';
        END IF;
      END $$`);
    await queryRunner.query(`
      CREATE TABLE otp_requests_partitioned (LIKE otp_requests
        INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS)
        PARTITION BY RANGE (created_at)`);
    await queryRunner.query(`
      -- Moves every index of the (empty) table to the partitioned one, by its own definition; the
      -- unique ones without created_at become plain indexes named …_idx (the trigger below keeps
      -- two of them unique). An unknown unique index stops the migration rather than go quietly.
      DO $$
      DECLARE
        definitions text[];
        definition text;
      BEGIN
        SELECT array_agg(CASE
                 WHEN NOT x.indisunique THEN pg_get_indexdef(x.indexrelid)
                 WHEN i.relname IN ('otp_requests_active_flow_uq', 'otp_requests_idempotency_key_uq',
                                    'otp_requests_token_hash_uq')
                   THEN regexp_replace(pg_get_indexdef(x.indexrelid),
                          '^CREATE UNIQUE INDEX (\\w+)_uq ', 'CREATE INDEX \\1_idx ')
                 ELSE 'unique ' || i.relname END ORDER BY i.relname)
          INTO definitions
          FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
         WHERE x.indrelid = 'otp_requests'::regclass AND NOT x.indisprimary;
        FOREACH definition IN ARRAY coalesce(definitions, '{}') LOOP
          IF definition LIKE 'unique %' THEN
            RAISE EXCEPTION 'otp_requests has unique index %, which cannot hold across partitions',
              substr(definition, 8);
          END IF;
        END LOOP;
        DROP TABLE otp_requests;
        ALTER TABLE otp_requests_partitioned RENAME TO otp_requests;
        ALTER TABLE otp_requests ADD CONSTRAINT otp_requests_pkey PRIMARY KEY (id, created_at);
        FOREACH definition IN ARRAY coalesce(definitions, '{}') LOOP
          EXECUTE definition;
        END LOOP;
      END $$`);
    await queryRunner.query(`
      -- What otp_requests_idempotency_key_uq and otp_requests_active_flow_uq enforced on the
      -- unpartitioned table, across every partition, raising the same error.
      CREATE FUNCTION otp_requests_check_unique() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.idempotency_key IS NOT NULL
           AND (TG_OP = 'INSERT' OR NEW.idempotency_key IS DISTINCT FROM OLD.idempotency_key) THEN
          -- Held to the end of the transaction: a concurrent holder of the same key commits (and
          -- is seen below) or rolls back before this one looks.
          PERFORM pg_advisory_xact_lock(
            hashtextextended('nest-otp:idempotency-key:' || NEW.idempotency_key, 0));
          IF EXISTS (SELECT 1 FROM otp_requests
                      WHERE idempotency_key = NEW.idempotency_key AND id <> NEW.id) THEN
            RAISE unique_violation USING
              MESSAGE = 'duplicate key value violates unique constraint "otp_requests_idempotency_key_uq"',
              CONSTRAINT = 'otp_requests_idempotency_key_uq', TABLE = 'otp_requests';
          END IF;
        END IF;
        IF NEW.verified_at IS NULL AND NEW.exhausted_at IS NULL AND NEW.superseded_at IS NULL
           AND NEW.delivery_status <> 'failed'
           AND (TG_OP = 'INSERT' OR NEW.destination <> OLD.destination OR NEW.purpose <> OLD.purpose
                OR NOT (OLD.verified_at IS NULL AND OLD.exhausted_at IS NULL
                        AND OLD.superseded_at IS NULL AND OLD.delivery_status <> 'failed')) THEN
          -- The row a send's compare-and-set already holds: sends to one destination pass here
          -- one at a time, each seeing what the one before committed.
          PERFORM 1 FROM otp_destinations WHERE destination = NEW.destination FOR UPDATE;
          IF EXISTS (SELECT 1 FROM otp_requests
                      WHERE destination = NEW.destination AND purpose = NEW.purpose
                        AND verified_at IS NULL AND exhausted_at IS NULL AND superseded_at IS NULL
                        AND delivery_status <> 'failed' AND id <> NEW.id) THEN
            RAISE unique_violation USING
              MESSAGE = 'duplicate key value violates unique constraint "otp_requests_active_flow_uq"',
              CONSTRAINT = 'otp_requests_active_flow_uq', TABLE = 'otp_requests';
          END IF;
        END IF;
        RETURN NEW;
      END $$`);
    await queryRunner.query(`
      CREATE TRIGGER otp_requests_check_unique
        BEFORE INSERT OR UPDATE OF idempotency_key, destination, purpose, verified_at, exhausted_at,
          superseded_at, delivery_status
        ON otp_requests FOR EACH ROW EXECUTE FUNCTION otp_requests_check_unique()`);
    await queryRunner.query(`
      -- Creates the missing daily partitions (UTC days) from days_back days ago to days_ahead days
      -- ahead, named otp_requests_pYYYY_MM_DD as pg_partman names them; returns their names.
      -- CREATE TABLE … LIKE, then ATTACH: that takes SHARE UPDATE EXCLUSIVE on otp_requests, which
      -- lets every read and write go on (CREATE TABLE … PARTITION OF would block them).
      CREATE FUNCTION otp_requests_create_partitions(days_ahead integer DEFAULT 7,
                                                     days_back integer DEFAULT 0)
      RETURNS SETOF text LANGUAGE plpgsql AS $$
      DECLARE
        today date := (statement_timestamp() AT TIME ZONE 'UTC')::date;
        day date;
        partition text;
      BEGIN
        -- Instances starting together and cron: one at a time; the next finds the work done.
        PERFORM pg_advisory_xact_lock(hashtext('nest-otp:partitions'));
        FOR day IN SELECT d::date FROM generate_series(today - days_back, today + days_ahead,
                                                       interval '1 day') AS d LOOP
          partition := 'otp_requests_p' || to_char(day, 'YYYY_MM_DD');
          CONTINUE WHEN to_regclass(quote_ident(partition)) IS NOT NULL;
          -- A day some partition of the DBA's already covers, even in part, is left to it.
          CONTINUE WHEN EXISTS (
            SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid,
                   LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) b
             WHERE i.inhparent = 'otp_requests'::regclass
               AND (regexp_match(b.bound, 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz
                     < (day + 1)::timestamp AT TIME ZONE 'UTC'
               AND (regexp_match(b.bound, 'TO \\(''([^'']+)''\\)'))[1]::timestamptz
                     > day::timestamp AT TIME ZONE 'UTC');
          EXECUTE format('CREATE TABLE %I (LIKE otp_requests INCLUDING DEFAULTS '
                         'INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS)', partition);
          EXECUTE format('ALTER TABLE otp_requests ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                         partition, day::timestamp AT TIME ZONE 'UTC',
                         (day + 1)::timestamp AT TIME ZONE 'UTC');
          RETURN NEXT partition;
        END LOOP;
      END $$`);
    await queryRunner.query(`
      -- pg_partman when the DBA installed it in this database, otherwise the module's own function.
      DO $$
      DECLARE
        partman text := (SELECT extnamespace::regnamespace::text FROM pg_extension
                          WHERE extname = 'pg_partman');
        parent text := format('%I.otp_requests', current_schema());
      BEGIN
        IF partman IS NULL THEN
          PERFORM otp_requests_create_partitions();
          RETURN;
        END IF;
        -- pg_partman cuts days in the session's time zone: UTC days, as the module's function.
        PERFORM set_config('timezone', 'UTC', true);
        EXECUTE format('SELECT %s.create_parent(p_parent_table := %L, p_control := %L, '
                       'p_type := %L, p_interval := %L, p_premake := 7, p_start_partition := %L, '
                       'p_jobmon := false)', partman, parent, 'created_at', 'native', 'daily',
                       to_char(statement_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD'));
        -- Keep making days ahead through a quiet spell with no sends.
        EXECUTE format('UPDATE %s.part_config SET infinite_time_partitions = true '
                       'WHERE parent_table = %L', partman, parent);
      END $$`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`SET LOCAL lock_timeout = '5s'`);
    await queryRunner.query(`SET LOCAL statement_timeout = '1min'`);
    await queryRunner.query(`
      -- The unpartitioned table again, with the rows (if any), the unique indexes back, and
      -- pg_partman's registration (if any) gone.
      DO $$
      DECLARE
        partman text := (SELECT extnamespace::regnamespace::text FROM pg_extension
                          WHERE extname = 'pg_partman');
        parent text := format('%I.otp_requests', current_schema());
        definitions text[];
        definition text;
      BEGIN
        IF partman IS NOT NULL THEN
          EXECUTE format('DELETE FROM %s.part_config WHERE parent_table = %L', partman, parent);
          EXECUTE format('DROP TABLE IF EXISTS %s.%I', partman,
                         'template_' || current_schema() || '_otp_requests');
        END IF;
        CREATE TABLE otp_requests_unpartitioned (LIKE otp_requests
          INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS);
        INSERT INTO otp_requests_unpartitioned SELECT * FROM otp_requests;
        SELECT array_agg(CASE
                 WHEN i.relname IN ('otp_requests_active_flow_idx', 'otp_requests_idempotency_key_idx',
                                    'otp_requests_token_hash_idx')
                   THEN regexp_replace(pg_get_indexdef(x.indexrelid),
                          '^CREATE INDEX (\\w+)_idx ON ONLY ', 'CREATE UNIQUE INDEX \\1_uq ON ')
                 ELSE replace(pg_get_indexdef(x.indexrelid), ' ON ONLY ', ' ON ') END
                 ORDER BY i.relname)
          INTO definitions
          FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
         WHERE x.indrelid = 'otp_requests'::regclass AND NOT x.indisprimary;
        DROP TABLE otp_requests;
        ALTER TABLE otp_requests_unpartitioned RENAME TO otp_requests;
        ALTER TABLE otp_requests ADD CONSTRAINT otp_requests_pkey PRIMARY KEY (id);
        FOREACH definition IN ARRAY coalesce(definitions, '{}') LOOP
          EXECUTE definition;
        END LOOP;
      END $$`);
    await queryRunner.query(`DROP FUNCTION otp_requests_create_partitions(integer, integer)`);
    await queryRunner.query(`DROP FUNCTION otp_requests_check_unique()`);
  }
}
