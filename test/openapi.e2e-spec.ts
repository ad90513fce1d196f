import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { OpenAPIObject } from '@nestjs/swagger';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createExampleDocument } from '../example/bootstrap.js';
import { startTestApp, type TestApp } from './support/test-app.js';

/**
 * The OpenAPI document a host gets from `SwaggerModule.createDocument`, checked against the
 * contract itself: every expectation below that the contract states is read from
 * docs/http-contract.md, so the document and the contract cannot drift apart.
 */

// ---------------------------------------------------------------------------------------------
// The contract, parsed. Everything from "## Planned" on is not built, so it is not read.

const contractText = readFileSync('docs/http-contract.md', 'utf8');
const contract = contractText.split(/^## Planned/m)[0] ?? '';

/** A route as the document names it: `POST /otp/send`, `GET /otp/requests/{requestId}`. */
const routeKey = (method: string, path: string): string =>
  `${method.toUpperCase()} ${path.replace(/:(\w+)/g, '{$1}')}`;

/** The text of each `### ` section, by heading, up to the next heading of any level. */
const sections = new Map(
  contract
    .split(/^(?=#{1,3} )/m)
    .filter((part) => part.startsWith('### '))
    .map((part) => [part.slice(4, part.indexOf('\n')).trim(), part] as const),
);

/** The text of a `## ` section, up to the next `## ` heading. */
const chapter = (title: string): string =>
  contract.split(/^## /m).find((part) => part.startsWith(`${title}\n`)) ?? '';

interface StatedError {
  status: number;
  code: string;
  /** Body fields besides `{ statusCode, code, message }`, from a table's "extra fields" column. */
  extras: string[];
}

/** `(status, code)` pairs a text states, in tables and in prose ("a 400 `VALIDATION_FAILED`"). */
function statedErrors(text: string): StatedError[] {
  const found: StatedError[] = [];
  let header: string[] | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith('|')) {
      header = undefined;
      continue;
    }
    const cells = line.split('|').map((cell) => cell.trim());
    if (!header) {
      header = cells;
      continue;
    }
    const statusAt = cells.findIndex((cell) => /^\d{3}$/.test(cell));
    const codeAt = cells.findIndex((cell) => /^`[A-Z][A-Z_]+`$/.test(cell));
    if (statusAt < 0 || codeAt < 0) continue;
    const extras = cells[header.indexOf('extra fields')] ?? '';
    found.push({
      status: Number(cells[statusAt]),
      code: cells[codeAt]!.slice(1, -1),
      extras: [...extras.matchAll(/`([a-z][A-Za-z]+)`/g)].map((m) => m[1]!),
    });
  }
  for (const m of text.matchAll(/\b([45]\d\d) `([A-Z][A-Z_]+)`/g)) {
    found.push({ status: Number(m[1]), code: m[2]!, extras: [] });
  }
  return found;
}

/** The success status a section states: "`202 Accepted`:", "`200`:", or a table row. */
function successStatus(text: string): number | undefined {
  const prose = /^`(2\d\d)(?: [A-Za-z ]+)?`:/m.exec(text)?.[1];
  const row = /^\|[^|\n]*\|\s*(2\d\d)\s*\|/m.exec(text)?.[1];
  const status = prose ?? row;
  return status === undefined ? undefined : Number(status);
}

/** Field names of a body written `{ "a": string, "b"?: ... }`, and which are required. */
function bodyFields(text: string): { all: string[]; required: string[] } {
  const body = /^Body: `\{([^`]+)\}`/m.exec(text)?.[1] ?? '';
  const fields = [...body.matchAll(/"(\w+)"(\?)?:/g)];
  return {
    all: fields.map((m) => m[1]!),
    required: fields.filter((m) => !m[2]).map((m) => m[1]!),
  };
}

/** The contract's code → status (every error table and every prose mention). */
const contractStatusOf = new Map<string, number>();
for (const { status, code } of statedErrors(contract)) {
  const known = contractStatusOf.get(code);
  if (known !== undefined && known !== status) {
    throw new Error(`docs/http-contract.md gives ${code} two statuses: ${known} and ${status}`);
  }
  contractStatusOf.set(code, status);
}

/** The rows of the `## Errors` table: the codes any route may answer. */
const errorTable = statedErrors(chapter('Errors'));

/** The routes the contract names, with their section's text. */
const guardedRoute = /`(GET|POST) (\/[^`\s]+)`, guarded by `@RequireOtp/.exec(contract);
const routeSections = new Map<string, string>([
  ...[...sections]
    .filter(([heading]) => /^(GET|POST) \//.test(heading))
    .map(([heading, text]) => {
      const [method, path] = heading.split(' ');
      return [routeKey(method!, path!), text] as const;
    }),
  ...(guardedRoute
    ? [[routeKey(guardedRoute[1]!, guardedRoute[2]!), sections.get('Guarded routes') ?? '']]
    : []),
] as [string, string][]);
const otpRoutes = [...routeSections.keys()].filter((key) => key.includes(' /otp/'));

/**
 * The error codes the contract requires of a route: those its own section states, plus the
 * `## Errors` rows that by their nature apply to it: body errors to routes with a body, the
 * per-IP throttle to every OTP route ("Every OTP route is throttled"), and the database being
 * down to every route (each one reads or writes the OTP table).
 */
function requiredCodes(route: string): Set<string> {
  const text = routeSections.get(route)!;
  const codes = new Set(statedErrors(text).map((e) => e.code));
  if (bodyFields(text).all.length > 0) {
    codes.add('VALIDATION_FAILED');
    codes.add('PAYLOAD_TOO_LARGE');
  }
  if (
    otpRoutes.includes(route) &&
    /Every OTP route is throttled per IP/.test(contract) &&
    !/Not throttled\s+per IP/.test(text)
  ) {
    codes.add('RATE_LIMITED');
  }
  codes.add('SERVICE_UNAVAILABLE');
  return codes;
}

// ---------------------------------------------------------------------------------------------
// The document.

// The document is walked as plain JSON: its typed shape (unions of schema and $ref) says less.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>;

/** Operations of the document, by route key. */
function operations(document: OpenAPIObject): Map<string, Json> {
  const found = new Map<string, Json>();
  for (const [path, item] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(item as Json)) {
      if (['get', 'post', 'put', 'patch', 'delete'].includes(method)) {
        found.set(routeKey(method, path), operation as Json);
      }
    }
  }
  return found;
}

const jsonSchema = (response: Json): Json => response.content?.['application/json']?.schema as Json;

/** Follows a `$ref` to `#/components/schemas/...`. */
function deref(document: OpenAPIObject, schema: Json): Json {
  const ref = schema.$ref as string | undefined;
  if (!ref) return schema;
  const found = document.components?.schemas?.[ref.replace('#/components/schemas/', '')];
  if (!found) throw new Error(`dangling ${ref}`);
  return found;
}

/** The `(status, codes)` a route's operation documents, for error statuses. */
function documentedErrors(operation: Json): Map<number, string[]> {
  return new Map(
    Object.entries(operation.responses as Json)
      .filter(([status]) => Number(status) >= 400)
      .map(([status, response]) => [
        Number(status),
        jsonSchema(response as Json).properties.code.enum as string[],
      ]),
  );
}

// Express only: the document comes from Nest's metadata (and Swagger UI on Fastify is off).
describe('OpenAPI document', () => {
  let t: TestApp;
  let document: OpenAPIObject;
  let ops: Map<string, Json>;

  beforeAll(async () => {
    t = await startTestApp();
    document = createExampleDocument(t.app);
    ops = operations(document);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('reads the routes and error tables from the contract', () => {
    // Guards the parser itself: an empty parse would make every check below pass vacuously.
    expect([...routeSections.keys()].sort()).toEqual([
      'GET /otp/requests/{requestId}',
      'POST /example/protected',
      'POST /otp/delivery-status/twilio',
      'POST /otp/delivery-status/webhook',
      'POST /otp/requests/{requestId}/cancel',
      'POST /otp/send',
      'POST /otp/verify',
    ]);
    expect(errorTable.length).toBeGreaterThanOrEqual(10);
  });

  it('lists every route of the contract', () => {
    for (const route of routeSections.keys())
      expect(ops.has(route) ? route : undefined).toBe(route);
  });

  it('tags the OTP routes `otp`', () => {
    for (const route of otpRoutes)
      expect({ route, tags: ops.get(route)?.tags }).toEqual({ route, tags: ['otp'] });
  });

  describe.each([...routeSections.keys()])('%s', (route) => {
    const text = routeSections.get(route)!;

    it('documents the success status the contract states, and no other 2xx', () => {
      // A guarded route's success is the host's to document: the contract states none for it.
      const statuses = Object.keys(ops.get(route)!.responses as Json).map(Number);
      const success = successStatus(text);
      expect(statuses.filter((s) => s < 400)).toEqual(success === undefined ? [] : [success]);
    });

    it('documents every error status and code the contract gives the route', () => {
      const documented = documentedErrors(ops.get(route)!);
      for (const code of requiredCodes(route)) {
        const status = contractStatusOf.get(code);
        expect({ code, status, codes: documented.get(status!) ?? [] }).toEqual({
          code,
          status,
          codes: expect.arrayContaining([code]),
        });
      }
    });

    it("documents only the contract's codes, each under its own status", () => {
      for (const [status, codes] of documentedErrors(ops.get(route)!)) {
        for (const code of codes)
          expect({ code, status }).toEqual({ code, status: contractStatusOf.get(code) });
      }
    });

    it("documents each error body in the contract's shape, with the extra fields of its codes", () => {
      for (const [key, response] of Object.entries(ops.get(route)!.responses as Json)) {
        const status = Number(key);
        if (status < 400) continue;
        const schema = jsonSchema(response as Json);
        expect(schema.required).toEqual(expect.arrayContaining(['statusCode', 'code', 'message']));
        expect(schema.properties.statusCode.enum).toEqual([status]);
        expect(schema.properties.message.oneOf).toEqual([
          { type: 'string' },
          { type: 'array', items: { type: 'string' } },
        ]);
        const codes = schema.properties.code.enum as string[];
        const extras = statedErrors(contract)
          .filter((e) => codes.includes(e.code))
          .flatMap((e) => e.extras);
        for (const extra of extras) expect(Object.keys(schema.properties)).toContain(extra);
        if (status === 429) {
          // "Every 429 carries `retryAfter` ... in the body and a `Retry-After` header."
          expect(schema.required).toContain('retryAfter');
          expect(schema.properties.retryAfter).toMatchObject({ type: 'integer', minimum: 1 });
          expect((response as Json).headers['Retry-After']).toMatchObject({ required: true });
        }
      }
    });
  });

  it('documents every code of the error tables on some route, under its status', () => {
    const documented = new Map<string, number>();
    for (const route of routeSections.keys()) {
      for (const [status, codes] of documentedErrors(ops.get(route)!)) {
        for (const code of codes) documented.set(code, status);
      }
    }
    for (const { status, code } of errorTable)
      expect({ code, status: documented.get(code) }).toEqual({ code, status });
  });

  it.each(['POST /otp/send', 'POST /otp/verify'])(
    'documents the body of %s: its fields, which are required, and their formats',
    (route) => {
      const fields = bodyFields(routeSections.get(route)!);
      const body = ops.get(route)!.requestBody as Json;
      expect(body.required).toBe(true);
      const schema = deref(document, jsonSchema(body));
      expect(Object.keys(schema.properties).sort()).toEqual([...fields.all].sort());
      expect([...(schema.required as string[])].sort()).toEqual([...fields.required].sort());
      // Every example is a valid body: only known fields, every required one.
      const examples = Object.values(body.content['application/json'].examples as Json);
      expect(examples.length).toBeGreaterThan(0);
      for (const { value } of examples as { value: Json }[]) {
        expect(fields.all).toEqual(expect.arrayContaining(Object.keys(value)));
        expect(Object.keys(value)).toEqual(expect.arrayContaining(fields.required));
      }
    },
  );

  it('gives the body fields the formats the contract states', () => {
    const send = routeSections.get('POST /otp/send')!;
    const sendBody = deref(document, jsonSchema(ops.get('POST /otp/send')!.requestBody as Json));
    const verifyBody = deref(
      document,
      jsonSchema(ops.get('POST /otp/verify')!.requestBody as Json),
    );
    const purposePattern = /`purpose`: `(\^[^`]+\$)`/.exec(send)?.[1];
    expect(purposePattern).toBeDefined();
    const channels = /"channel"\?: ((?:"\w+"(?: \| )?)+)/.exec(send)?.[1]?.match(/\w+/g);
    expect(channels?.length).toBeGreaterThan(0);
    const maxLength = Number(/at most (\d+) characters/.exec(send)?.[1]);

    expect(sendBody.properties.purpose.pattern).toBe(purposePattern);
    expect(verifyBody.properties.purpose.pattern).toBe(purposePattern);
    expect(sendBody.properties.channel.enum).toEqual(channels);
    expect(sendBody.properties.destination.maxLength).toBe(maxLength);
    expect(verifyBody.properties.destination.maxLength).toBe(maxLength);
    // "`code`: ASCII digits 0-9 only, exactly the configured length, no spaces".
    const code = new RegExp(verifyBody.properties.code.pattern as string);
    expect(['123456', '0000']).toEqual(['123456', '0000'].filter((c) => code.test(c)));
    expect(['12 345', '12345a', '١٢٣٤٥٦', '']).toEqual(
      ['12 345', '12345a', '١٢٣٤٥٦', ''].filter((c) => !code.test(c)),
    );
  });

  it("documents the send's headers: Idempotency-Key (optional, with its format) and Accept-Language", () => {
    const parameters = (ops.get('POST /otp/send')!.parameters as Json[]).filter(
      (p) => p.in === 'header',
    );
    const byName = new Map(parameters.map((p) => [(p.name as string).toLowerCase(), p]));
    expect(parameters).toHaveLength(byName.size); // one parameter a header, whatever its case
    const key = byName.get('idempotency-key');
    expect(key).toMatchObject({ required: false, schema: { maxLength: 255 } });
    const pattern = new RegExp(key!.schema.pattern as string);
    expect(pattern.test('order-42')).toBe(true);
    expect(pattern.test('')).toBe(false);
    expect(pattern.test('caf\u00e9')).toBe(false);
    expect(pattern.test('x'.repeat(256))).toBe(false);
    expect(byName.get('accept-language')).toMatchObject({ required: false });
  });

  it('documents the 202 of a send with every field of the contract, and the optional fallbackChannel', () => {
    const example = /`202 Accepted`:\s*```json\n([\s\S]+?)```/.exec(
      routeSections.get('POST /otp/send')!,
    )?.[1];
    const fields = Object.keys(JSON.parse(example ?? '{}') as object);
    expect(fields.length).toBeGreaterThan(0);
    const schema = deref(document, jsonSchema(ops.get('POST /otp/send')!.responses['202']));
    const optional = ['fallbackChannel', 'challengeRequired'];
    expect(Object.keys(schema.properties).sort()).toEqual([...fields, ...optional].sort());
    expect([...(schema.required as string[])].sort()).toEqual([...fields].sort());
    expect(schema.properties.fallbackChannel.enum).toEqual(schema.properties.channel.enum);
  });

  it('documents the 200 of a verify with the fields the contract lists', () => {
    const row = contract.split('\n').find((line) => /^\|[^|]*\|\s*200\s*\|/.test(line)) ?? '';
    const fields = [...row.matchAll(/"(\w+)":/g)].map((m) => m[1]!);
    expect(fields.length).toBeGreaterThan(0);
    const schema = deref(document, jsonSchema(ops.get('POST /otp/verify')!.responses['200']));
    expect(Object.keys(schema.properties).sort()).toEqual([...fields].sort());
    expect([...(schema.required as string[])].sort()).toEqual([...fields].sort());
  });

  it('documents the 200 of a status with the fields and statuses the contract lists', () => {
    const text = routeSections.get('GET /otp/requests/{requestId}')!;
    const fields = (/^`200`: `\{([^`]+)\}`/m.exec(text)?.[1] ?? '')
      .split(',')
      .map((field) => field.trim().split(/\s/)[0]!)
      .filter(Boolean);
    const statuses = /`status` one of `([^`]+)`/.exec(text)?.[1]?.split(/\s*\|\s*/);
    expect(fields.length).toBeGreaterThan(0);
    const schema = deref(
      document,
      jsonSchema(ops.get('GET /otp/requests/{requestId}')!.responses['200']),
    );
    expect(Object.keys(schema.properties).sort()).toEqual([...fields].sort());
    expect(schema.properties.status.enum).toEqual(statuses);
  });

  it('documents the guarded route as needing the X-OTP-Token API key', () => {
    const header = /needs header `([\w-]+):/.exec(sections.get('Guarded routes') ?? '')?.[1];
    expect(header).toBe('X-OTP-Token');
    const guarded = ops.get(routeKey(guardedRoute![1]!, guardedRoute![2]!))!;
    const [scheme] = Object.keys((guarded.security as Json[])[0]!);
    expect(document.components?.securitySchemes?.[scheme!]).toEqual({
      type: 'apiKey',
      in: 'header',
      name: header,
    });
    for (const route of otpRoutes) expect(ops.get(route)!.security).toBeUndefined();
  });

  it('GET /docs-json answers the same document', async () => {
    const res = await t.http.get('/docs-json');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body).toEqual(JSON.parse(JSON.stringify(document)));
    expect(res.body.info).toMatchObject({ title: 'nest-otp example', version: expect.any(String) });
  });

  it('GET /docs serves Swagger UI', async () => {
    const res = await t.http.get('/docs').redirects(1);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.text).toContain('swagger-ui');
  });
});

// ---------------------------------------------------------------------------------------------
// @nestjs/swagger stays optional.

describe('nest-otp without @nestjs/swagger', () => {
  const entry = resolve('build/src/index.js');
  let dir = '';

  beforeAll(() => {
    if (!existsSync(entry)) throw new Error('build/ is missing: run `tsc -p tsconfig.json` first.');
    dir = mkdtempSync(join(tmpdir(), 'nest-otp-no-swagger-'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('loads its main entry, with the decorators doing nothing', () => {
    // @nestjs/swagger made unresolvable for both `require` (what the module's shim uses) and
    // `import` (what a stray top-level import would use).
    const hide = join(dir, 'hide-swagger.cjs');
    writeFileSync(
      hide,
      `const Module = require('node:module');
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (request === '@nestjs/swagger' || request.startsWith('@nestjs/swagger/')) {
    const error = new Error("Cannot find module '" + request + "'");
    error.code = 'MODULE_NOT_FOUND';
    throw error;
  }
  return resolve.call(this, request, ...rest);
};
Module.register(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});
`,
    );
    writeFileSync(
      join(dir, 'hooks.mjs'),
      `export async function resolve(specifier, context, next) {
  if (specifier === '@nestjs/swagger' || specifier.startsWith('@nestjs/swagger/')) {
    const error = new Error("Cannot find package '" + specifier + "'");
    error.code = 'ERR_MODULE_NOT_FOUND';
    throw error;
  }
  return next(specifier, context);
}
`,
    );
    const script = `
const main = await import(${JSON.stringify(pathToFileURL(entry).href)});
const shim = await import(${JSON.stringify(pathToFileURL(resolve('build/src/otp/openapi/swagger.js')).href)});
let swagger = 'unresolvable';
try { await import('@nestjs/swagger'); swagger = 'resolvable'; } catch {}
console.log(JSON.stringify({
  controller: typeof main.OtpController,
  requireOtp: typeof main.RequireOtp('login'),
  swaggerAvailable: shim.SWAGGER_AVAILABLE,
  swagger,
}));`;
    const run = spawnSync(
      process.execPath,
      ['--require', hide, '--input-type=module', '--eval', script],
      { cwd: dirname(entry), encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } },
    );
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
    expect(JSON.parse(run.stdout)).toEqual({
      controller: 'function',
      requireOtp: 'function',
      swaggerAvailable: false,
      swagger: 'unresolvable',
    });
  });

  it('names no @nestjs/swagger type in the declarations its entries reach', () => {
    const seen = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file) || !existsSync(file)) return;
      seen.add(file);
      const text = readFileSync(file, 'utf8');
      expect({ file, swagger: /['"]@nestjs\/swagger['"]/.test(text) }).toEqual({
        file,
        swagger: false,
      });
      for (const m of text.matchAll(/(?:from|import\()\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
        visit(resolve(dirname(file), m[1]!.replace(/\.js$/, '.d.ts')));
      }
    };
    visit(resolve('build/src/index.d.ts'));
    visit(resolve('build/src/testing/index.d.ts'));
    expect(seen.size).toBeGreaterThan(10);
  });
});
