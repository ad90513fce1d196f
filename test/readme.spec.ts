import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { OtpModuleOptions } from '../src/otp/otp.options.js';

const readme = readFileSync('README.md', 'utf8');

describe('README.md', () => {
  it("shows the fixture host app's module verbatim, the one the package e2e test builds and runs", () => {
    const fixture = readFileSync('test/fixtures/host-app/src/app.module.ts', 'utf8');
    // If this fails, copy test/fixtures/host-app/src/app.module.ts into README's "Use it in your app".
    expect(readme).toContain('```ts\n' + fixture + '```');
  });

  it.each(Object.keys(new OtpModuleOptions()))(
    'lists the option %s in the options table',
    (key) => {
      // A row names one option, or two that go together (`a` / `b`).
      expect(readme).toMatch(new RegExp(`^\\| (\`\\w+\` / )?\`${key}\`( / \`\\w+\`)? +\\|`, 'm'));
    },
  );

  it('links nothing outside the repository', () => {
    expect(readme).not.toMatch(/\.\.\/shared|\]\(\.\.\//);
  });
});
