import { type ArgumentMetadata, ValidationPipe } from '@nestjs/common';
import type { ValidationError } from 'class-validator';
import { ValidationFailedError } from '../errors/otp.errors.js';

const messages = (errors: ValidationError[]): string[] =>
  errors.flatMap((e) => [...Object.values(e.constraints ?? {}), ...messages(e.children ?? [])]);

// class-transformer skips these keys (a guard against prototype pollution), so the whitelist never
// sees them: without this check `{"__proto__": ...}` would be ignored instead of refused.
const SKIPPED_KEYS = ['__proto__', 'constructor', 'prototype'];

class OtpValidationPipe extends ValidationPipe {
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (metadata.type === 'body' && typeof value === 'object' && value !== null) {
      const found = SKIPPED_KEYS.filter((key) => Object.prototype.hasOwnProperty.call(value, key));
      if (found.length > 0) {
        throw new ValidationFailedError(found.map((key) => `property ${key} should not exist`));
      }
    }
    return (await super.transform(value, metadata)) as unknown;
  }
}

/**
 * class-validator over every body: unknown fields refused, no implicit type conversion (a number
 * is not a string code), and failures as the contract's `VALIDATION_FAILED`.
 */
export const createOtpValidationPipe = (): ValidationPipe =>
  new OtpValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    forbidUnknownValues: true,
    transform: true,
    transformOptions: { enableImplicitConversion: false },
    validationError: { target: false, value: false },
    exceptionFactory: (errors) => new ValidationFailedError(messages(errors)),
  });
