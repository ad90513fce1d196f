import { describe, expect, it, jest } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { OtpMessage } from './otp-provider.interface.js';
import { SmtpOtpProvider, type SmtpMail } from './smtp.provider.js';

/** A pool as an older nodemailer makes it: it ignores `signal`, so a stalled mail never settles. */
class StallingPool {
  readonly mails: SmtpMail[] = [];
  closedWith: unknown = 'open';
  sendMail(mail: SmtpMail): Promise<unknown> {
    this.mails.push(mail);
    return new Promise(() => undefined);
  }
  close(options?: unknown): void {
    this.closedWith = options;
  }
}

let nodemailerInstalled = false;
const pools: StallingPool[] = [];
const urls: string[] = [];

// Without babel-jest nothing is hoisted: this runs before the provider first imports nodemailer,
// which it does lazily, on first use. A throwing factory is not cached, so the test can "install"
// nodemailer later.
jest.mock('nodemailer', () => {
  if (!nodemailerInstalled) {
    throw Object.assign(new Error("Cannot find module 'nodemailer'"), {
      code: 'MODULE_NOT_FOUND',
    });
  }
  return {
    createTransport(url: string) {
      urls.push(url);
      const pool = new StallingPool();
      pools.push(pool);
      return pool;
    },
  };
});

const message: OtpMessage = {
  requestId: '00000000-0000-4000-8000-000000000000',
  channel: 'email',
  destination: 'user@example.com',
  purpose: 'login',
  code: '482915',
  text: 'Acme verification code is 482915.',
  subject: '482915 is your Acme code',
  html: '<p>482915</p>',
  speech: [],
  appName: 'Acme',
  expiresAt: new Date(),
};

describe('SmtpOtpProvider', () => {
  it('fails the delivery, naming the package to install, when nodemailer is missing', async () => {
    const smtp = new SmtpOtpProvider({ url: 'smtp://127.0.0.1:25', from: 'a@acme.test' });
    const missing = "SmtpOtpProvider needs the 'nodemailer' package: npm install nodemailer";
    await expect(smtp.ready()).rejects.toThrow(missing);
    await expect(smtp.deliver(message, new AbortController().signal)).rejects.toThrow(missing);
  });

  it('loads nodemailer on first use once it is there, asking for a pool', async () => {
    nodemailerInstalled = true;
    const smtp = new SmtpOtpProvider({
      url: 'smtp://u:p%40ss@127.0.0.1:2525?ignoreTLS=true',
      from: 'a@acme.test',
    });
    expect(urls).toHaveLength(0);
    await smtp.ready();
    expect(urls).toEqual(['smtp://u:p%40ss@127.0.0.1:2525?ignoreTLS=true&pool=true']);
    smtp.close();
  });

  it('rejects at once on abort, and replaces a pool that ignored the signal', async () => {
    nodemailerInstalled = true;
    const smtp = new SmtpOtpProvider({ url: 'smtp://127.0.0.1:2525', from: 'a@acme.test' });
    const controller = new AbortController();
    const delivering = smtp.deliver(message, controller.signal);
    await smtp.ready();
    const pool = pools.at(-1) as StallingPool;
    await new Promise((resolve) => setImmediate(resolve));
    expect(pool.mails).toHaveLength(1);
    expect(pool.mails[0]).toMatchObject({
      from: 'a@acme.test',
      to: 'user@example.com',
      subject: message.subject,
      text: message.text,
      html: message.html,
      signal: controller.signal,
    });

    controller.abort();
    await expect(delivering).rejects.toThrow('SMTP delivery aborted (delivery timeout)');
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    expect(pool.closedWith).toEqual({ force: true });

    const again = smtp.deliver(message, new AbortController().signal);
    again.catch(() => undefined);
    await smtp.ready();
    expect(pools.at(-1)).not.toBe(pool);
    smtp.close();
  });

  it('keeps nodemailer out of the emitted JavaScript imports and the declarations', () => {
    // Built by `tsc -p tsconfig.json`, which `npm test` runs before jest.
    const built = join(process.cwd(), 'build/src/otp/delivery/smtp.provider');
    if (!existsSync(`${built}.js`)) return;
    const js = readFileSync(`${built}.js`, 'utf8');
    const dts = readFileSync(`${built}.d.ts`, 'utf8');
    expect(js).not.toMatch(/^\s*import\b[^(]*['"]nodemailer['"]/m);
    expect(js).toContain("await import('nodemailer')");
    expect(dts).not.toMatch(/from ['"]nodemailer/);
    expect(dts).not.toMatch(/import\(['"]nodemailer/);
  });
});
