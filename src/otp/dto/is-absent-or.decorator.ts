import { ValidateIf } from 'class-validator';

/**
 * Like `@IsOptional()`, but only a missing field is optional: `null` is a value of the wrong type
 * and gets validated (and refused) like any other. The contract's optional fields are "absent or a
 * string", never null.
 */
export const IsAbsentOr = (): PropertyDecorator =>
  ValidateIf((_object, value) => value !== undefined);
