import type { MigrationInterface, QueryRunner } from 'typeorm';
import { AddPolicyIndexes1795300000002 } from './1795300000002-AddPolicyIndexes.js';

/**
 * The per-account history (sends and guesses of one `subject` across its destinations): an index
 * range scan with a LIMIT, on rows that carry a subject only. Built CONCURRENTLY on the live table,
 * like `AddPolicyIndexes` (same timeouts, same handling of an INVALID index left by a failed build).
 */
export class AddSubjectIndex1795300000005 implements MigrationInterface {
  name = 'AddSubjectIndex1795300000005';
  transaction = false;

  private readonly build = AddPolicyIndexes1795300000002.concurrentIndexes([
    {
      name: 'otp_requests_subject_created_at_idx',
      on: '(subject, created_at) WHERE subject IS NOT NULL',
    },
  ]);

  up(queryRunner: QueryRunner): Promise<void> {
    return this.build.up(queryRunner);
  }

  down(queryRunner: QueryRunner): Promise<void> {
    return this.build.down(queryRunner);
  }
}
