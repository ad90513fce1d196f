import { Controller, Get, Header, Inject } from '@nestjs/common';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PAGE_FILES = Symbol('PAGE_FILES');

export interface PageFiles {
  html: string;
  script: string;
  style: string;
}

/**
 * Only the page's own script and style run: no inline script or style, no other origin, no
 * framing. The page talks to its own origin only (`connect-src 'self'`).
 */
export const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * The folder of index.html, page.js and page.css. tsc copies no static files, so from the compiled
 * build/example/page/ they are read in the source folder, example/page/; from the source itself
 * (jest), they are next to this file.
 */
export function pageDirectory(moduleUrl: string = import.meta.url): string {
  const here = dirname(fileURLToPath(moduleUrl));
  const candidates = [here, resolve(here, '../../../example/page')];
  const found = candidates.find((dir) => existsSync(join(dir, 'index.html')));
  if (found === undefined) {
    throw new Error(
      `The verification page's files (index.html, page.js, page.css) are in none of ${candidates.join(', ')}: ` +
        'run the example from the repository, or pass PageModule.register({ directory }).',
    );
  }
  return found;
}

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c);
}

/** Reads the page once; the app name goes into the HTML escaped (a function replacer: no `$&`). */
export function readPageFiles(appName: string, directory = pageDirectory()): PageFiles {
  const read = (name: string): string => readFileSync(join(directory, name), 'utf8');
  const name = escapeHtml(appName);
  return {
    html: read('index.html').replace(/\{\{appName\}\}/g, () => name),
    script: read('page.js'),
    style: read('page.css'),
  };
}

/** Serves the page; platform-neutral (headers by decorator, strings as bodies). */
@Controller()
export class PageController {
  constructor(@Inject(PAGE_FILES) private readonly files: PageFiles) {}

  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  @Header('Content-Security-Policy', PAGE_CSP)
  @Header('Cache-Control', 'no-store')
  @Header('Referrer-Policy', 'no-referrer')
  @Header('X-Content-Type-Options', 'nosniff')
  index(): string {
    return this.files.html;
  }

  @Get('page.js')
  @Header('Content-Type', 'text/javascript; charset=utf-8')
  @Header('Cache-Control', 'no-cache')
  @Header('X-Content-Type-Options', 'nosniff')
  script(): string {
    return this.files.script;
  }

  @Get('page.css')
  @Header('Content-Type', 'text/css; charset=utf-8')
  @Header('Cache-Control', 'no-cache')
  @Header('X-Content-Type-Options', 'nosniff')
  style(): string {
    return this.files.style;
  }
}
