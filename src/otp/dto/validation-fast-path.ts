import { getMetadataStorage } from 'class-validator';

/** One property's checks, compiled from its class-validator decorators. */
interface PropertyChecks {
  name: string;
  /** `@ValidateIf` conditions (our `@IsAbsentOr`): the checks run only when all are true. */
  conditions: ((object: object, value: unknown) => boolean)[];
  checks: ((value: unknown) => boolean)[];
}

type Accepts = (instance: object) => boolean;

/** A DTO class (abstract too): what the checks are compiled from. */
type DtoType = abstract new (...args: never[]) => object;

/** The built-in constraints the fast path knows, by class-validator's name, exactly as it checks them. */
const CONSTRAINTS: Record<string, (constraints: unknown[]) => (value: unknown) => boolean> = {
  isString: () => (value) => typeof value === 'string',
  isNotEmpty: () => (value) => value !== '' && value !== null && value !== undefined,
  isIn: ([allowed]) => {
    if (!Array.isArray(allowed)) return () => false;
    return (value) => allowed.some((candidate) => candidate === value);
  },
  // class-validator counts code points (a surrogate pair is one): a string whose UTF-16 length is
  // within the bound is within it for class-validator too; a longer one goes the slow way.
  maxLength:
    ([max]) =>
    (value) =>
      typeof value === 'string' && value.length <= (max as number),
  matches: ([pattern, modifiers]) => {
    const regex =
      pattern instanceof RegExp ? pattern : new RegExp(pattern as string, modifiers as string);
    // What validator.js's `matches` runs (String#match), so global or sticky flags behave alike.
    return (value) => typeof value === 'string' && value.match(regex) !== null;
  },
};

/**
 * Compiles the DTO's class-validator metadata into plain checks, or null when it uses anything the
 * fast path does not reproduce exactly (groups, `each`, per-decorator `validateIf`, nested or
 * custom validators, another constraint): then every input goes through class-validator.
 */
function compile(type: DtoType): Accepts | null {
  const metadatas = getMetadataStorage().getTargetValidationMetadatas(type, '', false, false);
  const properties = new Map<string, PropertyChecks>();
  for (const metadata of metadatas) {
    const extra = metadata as { validateIf?: unknown };
    if (metadata.each || (metadata.groups?.length ?? 0) > 0 || extra.validateIf !== undefined) {
      return null;
    }
    let property = properties.get(metadata.propertyName);
    if (!property) {
      property = { name: metadata.propertyName, conditions: [], checks: [] };
      properties.set(metadata.propertyName, property);
    }
    if (metadata.type === 'conditionalValidation') {
      const condition = metadata.constraints?.[0] as unknown;
      if (typeof condition !== 'function') return null;
      property.conditions.push(condition as PropertyChecks['conditions'][number]);
    } else if (metadata.type === 'customValidation') {
      const make = metadata.name ? CONSTRAINTS[metadata.name] : undefined;
      if (!make) return null;
      property.checks.push(make(metadata.constraints ?? []));
    } else {
      return null;
    }
  }
  const list = [...properties.values()];
  return (instance) => {
    // The whitelist: a field no decorator names is refused (forbidNonWhitelisted).
    for (const key of Object.keys(instance)) if (!properties.has(key)) return false;
    for (const property of list) {
      const value = (instance as Record<string, unknown>)[property.name];
      if (!property.conditions.every((condition) => condition(instance, value))) continue;
      for (const check of property.checks) if (!check(value)) return false;
    }
    return true;
  };
}

const compiled = new WeakMap<object, Accepts | null>();

/**
 * True when `candidate`, as an instance of `type`, certainly passes class-validator with the
 * module's options (whitelist, forbidNonWhitelisted): the common, valid input is accepted without
 * class-validator's executor, which was the largest cost of a verify in the app after the framework
 * (bench/README.md). `candidate` may be the plain body: for a flat object of primitives the checks
 * read the same keys and values as on the instance class-transformer would build from it. False
 * means "not sure": the caller runs class-validator, which decides and words the errors, so the
 * fast path can never accept what class-validator would refuse, nor change a message.
 */
export function passesFastPath(type: DtoType, candidate: object): boolean {
  let accepts = compiled.get(type);
  if (accepts === undefined) {
    accepts = compile(type);
    compiled.set(type, accepts);
  }
  return accepts !== null && accepts(candidate);
}
