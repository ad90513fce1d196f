import { plainToInstance, type ClassConstructor } from 'class-transformer';
import { validateSync, type ValidationError } from 'class-validator';
import { ValidationFailedError } from '../errors/otp.errors.js';
import { passesFastPath } from './validation-fast-path.js';

const messages = (errors: ValidationError[]): string[] =>
  errors.flatMap((e) => [...Object.values(e.constraints ?? {}), ...messages(e.children ?? [])]);

// class-transformer skips these keys (a guard against prototype pollution), so the whitelist never
// sees them: without this check `{"__proto__": ...}` would be ignored instead of refused.
const SKIPPED_KEYS = ['__proto__', 'constructor', 'prototype'];

/**
 * Validates untrusted input against a DTO class and returns the instance, or throws the contract's
 * 400 `VALIDATION_FAILED` naming every problem. Unknown fields are refused by name and nothing is
 * converted (a number is not a string code), whatever the host's own global pipes are set to: the
 * module validates its own input, on its routes and in `OtpService` alike.
 */
export function validateOtpInput<T extends object>(type: ClassConstructor<T>, value: unknown): T {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ValidationFailedError(['request body must be a JSON object']);
  }
  const skipped = SKIPPED_KEYS.filter((key) => Object.prototype.hasOwnProperty.call(value, key));
  if (skipped.length > 0) {
    throw new ValidationFailedError(skipped.map((key) => `property ${key} should not exist`));
  }
  // Valid input, the common case, is recognised without class-transformer or class-validator's
  // executor (which a request ran twice: route, then service). The module's DTOs carry no
  // class-transformer decorators, so the instance plainToInstance would build is a new instance
  // with the body's own fields copied onto it; anything else is for class-validator to judge.
  if (passesFastPath(type, value)) {
    return value instanceof type ? value : Object.assign(new type(), value);
  }
  const instance =
    value instanceof type
      ? value
      : plainToInstance(type, value, { enableImplicitConversion: false });
  const errors = validateSync(instance, {
    whitelist: true,
    forbidNonWhitelisted: true,
    forbidUnknownValues: true,
    validationError: { target: false, value: false },
  });
  if (errors.length > 0) throw new ValidationFailedError(messages(errors));
  return instance;
}
