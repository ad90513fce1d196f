// jest transform: TypeScript, and the ESM-only packages (NestJS 12), to CommonJS.
// Why: on Node 20, jest cannot let a CommonJS package (@nestjs/throttler) require an ESM one
// (@nestjs/common); compiling both to CommonJS keeps one copy of every module. Type checking is
// done by `tsc` before jest runs, so this only transpiles.
const { createHash } = require('node:crypto');
const { readFileSync } = require('node:fs');
const ts = require('typescript');

const self = readFileSync(__filename);

const compilerOptions = {
  module: ts.ModuleKind.CommonJS,
  target: ts.ScriptTarget.ES2022,
  esModuleInterop: true,
  experimentalDecorators: true,
  emitDecoratorMetadata: true,
  allowJs: true,
  sourceMap: false,
  inlineSourceMap: true,
  inlineSources: true,
};

module.exports = {
  process(source, filename) {
    // CommonJS has no import.meta, and has its own `require`: an ESM file that builds one with
    // createRequire(import.meta.url) gets the module's own instead.
    const code = source
      .replace(/^(const|let|var) require = .*$/m, '')
      .replace(/\bimport\.meta\.url\b/g, '("file://" + __filename)')
      .replace(/\bimport\.meta\.dirname\b/g, '__dirname')
      .replace(/\bimport\.meta\.filename\b/g, '__filename')
      // import.meta.resolve gives a file URL; require.resolve a path.
      .replace(/\bimport\.meta\.resolve\(/g, '((s) => "file://" + require.resolve(s))(');
    const { outputText } = ts.transpileModule(code, { fileName: filename, compilerOptions });
    return { code: outputText };
  },
  getCacheKey(source, filename) {
    return createHash('sha256')
      .update(ts.version)
      .update(filename)
      .update(source)
      .update(self)
      .digest('hex');
  },
};
