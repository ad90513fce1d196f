import { createRequire } from 'node:module';
import type * as SwaggerPackage from '@nestjs/swagger';

/**
 * `@nestjs/swagger` when the host has it installed, else `undefined`. It is an optional peer: the
 * module's controller and DTOs carry its decorators, so a host's `SwaggerModule.createDocument`
 * lists the OTP routes, but a host without it must still be able to import the module. Loaded
 * synchronously (decorators run when a class is defined) with `require`, which loads this ESM
 * package on Node >= 20.19 (the `engines` floor) and shares the host's instance of it.
 *
 * Internal: nothing here is re-exported, so the package's public declarations never name
 * `@nestjs/swagger` types (a host without it compiles with `skipLibCheck: false`).
 */
// Not named `require`: under jest (CommonJS) that line would be dropped by the transform.
const requireFromHere = createRequire(import.meta.url);

const SWAGGER = '@nestjs/swagger';

function loadSwagger(): typeof SwaggerPackage | undefined {
  try {
    return requireFromHere(SWAGGER) as typeof SwaggerPackage;
  } catch (error) {
    // Only the package itself missing means "no swagger"; a broken install should still be seen.
    const missing =
      error instanceof Error &&
      (error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' &&
      error.message.includes(`'${SWAGGER}'`);
    if (missing) return undefined;
    throw error;
  }
}

const swagger = loadSwagger();

/** True when `@nestjs/swagger` is installed and the decorators below document the routes. */
export const SWAGGER_AVAILABLE = swagger !== undefined;

// A decorator that does nothing, for any decorator factory when swagger is absent.
const noop = () => (): void => {
  /* swagger is not installed: nothing to document */
};

type Swagger = typeof SwaggerPackage;

const pick = <K extends keyof Swagger>(name: K): Swagger[K] =>
  swagger ? swagger[name] : (noop as unknown as Swagger[K]);

export const ApiBody = pick('ApiBody');
export const ApiExtraModels = pick('ApiExtraModels');
export const ApiHeader = pick('ApiHeader');
export const ApiOperation = pick('ApiOperation');
export const ApiParam = pick('ApiParam');
export const ApiProperty = pick('ApiProperty');
export const ApiPropertyOptional = pick('ApiPropertyOptional');
export const ApiResponse = pick('ApiResponse');
export const ApiSecurity = pick('ApiSecurity');
export const ApiTags = pick('ApiTags');
