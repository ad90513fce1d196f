import { Injectable } from '@nestjs/common';
import { OtpConnection } from '../persistence/otp-connection.js';
import { findMissingOtpSchema } from '../persistence/otp-schema.check.js';

/**
 * Internal: what `OtpHealthIndicator` (`nest-otp/health`) asks of the module, kept apart from it so
 * the module exports it without loading `@nestjs/terminus`. Goes through the module's own pool, so
 * it answers within the module's connect and statement timeouts, as a send would.
 */
@Injectable()
export class OtpHealthProbe {
  constructor(private readonly connection: OtpConnection) {}

  /** The module's schema objects missing from the database; rejects when it cannot be reached. */
  missingSchema(): Promise<string[]> {
    return findMissingOtpSchema(this.connection.dataSource);
  }
}
