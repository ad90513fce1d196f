import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type INestApplication, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { existsSync, mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { AppModule } from '../example/app.module.js';
import { PAGE_CSP, pageDirectory, readPageFiles } from '../example/page/page.controller.js';
import { PageModule } from '../example/page/page.module.js';
import { postJson } from './support/child-app.js';
import {
  CapturingProvider,
  TEST_SECRET,
  testDatabaseUrl,
  travel,
  uniqueEmail,
  uniquePhone,
} from './support/test-app.js';

/**
 * The verification page in a real browser: Debian's chromium (never a browser downloaded by a
 * tool), driven by playwright-core. Every wait is for text or state, never a fixed sleep.
 */
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ARTIFACTS = resolve('test/artifacts');
/** Written when missing, or again with UPDATE_PAGE_SCREENSHOT=1 (it is committed, for README). */
const README_SCREENSHOT = resolve('docs/verification-page.png');
/** Long enough to see the resend button wait on a busy machine, short enough to wait it out. */
const RESEND_COOLDOWN_SECONDS = 8;
const APP_NAME = 'Acme';
const WAIT_MS = 20_000;

// Express only: the browser page is the example's own, served the same on either platform.
describe('GET / (the verification page)', () => {
  let app: INestApplication;
  let url: string;
  let provider: CapturingProvider;
  let browser: Browser;
  let context: BrowserContext;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `No chromium at ${CHROMIUM}: the browser test needs Debian's chromium. Install it with ` +
          '`apt-get update && apt-get install -y chromium` (or set CHROMIUM_PATH).',
      );
    }
    mkdirSync(ARTIFACTS, { recursive: true });
    provider = new CapturingProvider();
    const otp = {
      appName: APP_NAME,
      hasher: 'hmac' as const,
      hmacSecret: TEST_SECRET,
      throttleLimit: 10_000,
      resendCooldownSeconds: [RESEND_COOLDOWN_SECONDS],
      providers: [provider],
    };
    @Module({
      imports: [
        AppModule.register({ databaseUrl: testDatabaseUrl(), otp }),
        PageModule.register({ appName: otp.appName }),
      ],
    })
    class PageHostModule {}
    app = await NestFactory.create<NestExpressApplication>(PageHostModule, { logger: false });
    await app.listen(0, '127.0.0.1');
    const server = app.getHttpServer() as Server;
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    // A phone's width: the page is meant to be read there.
    context = await browser.newContext({ viewport: { width: 390, height: 720 }, locale: 'en-US' });
    context.setDefaultTimeout(WAIT_MS);
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await app?.close();
  });

  /** What went wrong in the page's own script (or against its CSP), per page. */
  const pageErrors = new Map<Page, string[]>();

  async function openPage(): Promise<Page> {
    const page = await context.newPage();
    const errors: string[] = [];
    pageErrors.set(page, errors);
    page.on('pageerror', (error) => errors.push(error.message));
    // A 4xx answer is logged as "Failed to load resource": expected here, not a fault.
    page.on('console', (entry) => {
      if (entry.type() === 'error' && !entry.text().startsWith('Failed to load resource')) {
        errors.push(entry.text());
      }
    });
    await page.goto(`${url}/`);
    await page.locator('#destination').waitFor();
    return page;
  }

  async function sendCode(page: Page, destination: string): Promise<void> {
    await page.locator('#destination').fill(destination);
    await page.locator('#send').click();
    await page.locator('#code').waitFor();
  }

  const message = (page: Page, text: RegExp): Promise<void> =>
    page.locator('#message', { hasText: text }).waitFor();

  const shot = (page: Page, name: string): Promise<Buffer> =>
    page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

  /** A code that is certainly not `code`: every digit changed. */
  const wrong = (code: string): string => code.replace(/\d/g, (d) => String((Number(d) + 1) % 10));

  it('serves the page, its script and style, with a CSP that runs its own script only', async () => {
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toBe(PAGE_CSP);
    expect(PAGE_CSP).toContain("script-src 'self'");
    const html = await page.text();
    expect(html).toContain('<title>Acme verification</title>');
    expect(html).not.toMatch(/<script>|<style>| on\w+=/);

    const script = await fetch(`${url}/page.js`);
    expect(script.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(await script.text()).toContain('/otp/verify');
    const style = await fetch(`${url}/page.css`);
    expect(style.headers.get('content-type')).toMatch(/^text\/css/);
  });

  it('puts the app name in the page escaped', () => {
    const { html } = readPageFiles(`<img src=x onerror="alert('$&')"> & co`);
    expect(html).toContain(
      '<h1 id="title">&lt;img src=x onerror=&quot;alert(&#39;$&amp;&#39;)&quot;&gt; &amp; co verification</h1>',
    );
    expect(html).not.toContain('<img');
  });

  it('finds its files from the compiled build/ as from the source', () => {
    const source = resolve('example/page');
    expect(pageDirectory(pathToFileURL(join(source, 'page.controller.ts')).href)).toBe(source);
    const built = resolve('build/example/page/page.controller.js');
    expect(pageDirectory(pathToFileURL(built).href)).toBe(source);
  });

  it('runs the flow: masked destination, timers, a wrong code, a pasted code, the guarded route', async () => {
    const page = await openPage();
    await expect(page.title()).resolves.toBe(`${APP_NAME} verification`);
    await expect(page.locator('h1').textContent()).resolves.toBe(`${APP_NAME} verification`);
    await shot(page, '01-start');
    if (!existsSync(README_SCREENSHOT) || process.env.UPDATE_PAGE_SCREENSHOT === '1') {
      const card = await page.locator('main').boundingBox();
      const height = Math.ceil((card?.y ?? 0) + (card?.height ?? 704)) + 16;
      await page.screenshot({ path: README_SCREENSHOT, clip: { x: 0, y: 0, width: 390, height } });
    }

    const email = uniqueEmail();
    await sendCode(page, email);
    await expect(page.locator('#masked').textContent()).resolves.toBe('u•••@example.com');
    await message(page, /Code sent by email/);
    const code = page.locator('#code');
    await expect(page.evaluate('document.activeElement.id')).resolves.toBe('code');
    expect(await code.getAttribute('autocomplete')).toBe('one-time-code');
    expect(await code.getAttribute('inputmode')).toBe('numeric');
    expect(await code.getAttribute('maxlength')).toBe('6');
    expect(await code.getAttribute('aria-label')).toMatch(/code/i);

    // The resend button waits, and says for how long.
    const resend = page.locator('#resend');
    expect(await resend.isDisabled()).toBe(true);
    expect(await resend.textContent()).toMatch(/^Resend code in 0:0\d$/);
    expect(await page.locator('#fallback').isHidden()).toBe(true);

    // The expiry countdown moves.
    const expiry = page.locator('#expiry');
    const first = await expiry.textContent();
    expect(first).toMatch(/^Code expires in [45]:\d\d$/);
    await page.locator('#expiry', { hasNotText: first ?? '' }).waitFor();
    expect(await expiry.textContent()).toMatch(/^Code expires in 4:\d\d$/);
    await shot(page, '02-code-sent');

    const sent = provider.lastCode(email);
    await code.pressSequentially(wrong(sent));
    await message(page, /^That code is not right\. 2 attempts left\.$/);
    expect(await code.inputValue()).toBe('');
    await shot(page, '03-wrong-code');

    // A whole code pasted with a space and a dash is taken, and submits by itself.
    await paste(page, ` ${sent.slice(0, 3)} -${sent.slice(3)}`);
    await page.locator('#done').waitFor();
    await expect(page.locator('#done-title').textContent()).resolves.toBe("You're verified");
    await expect(page.evaluate('document.activeElement.id')).resolves.toBe('done-title');
    const answer = JSON.parse((await page.locator('#answer').textContent()) ?? '') as unknown;
    expect(answer).toEqual({ ok: true, destination: email });
    await shot(page, '04-verified');
    expect(pageErrors.get(page)).toEqual([]);
    await page.close();
  });

  it('says a code has expired', async () => {
    const page = await openPage();
    const email = uniqueEmail();
    await sendCode(page, email);
    await travel(email, 400);
    await page.locator('#code').pressSequentially(provider.lastCode(email));
    await message(page, /^This code has expired\. Ask for a new code\.$/);
    expect(await page.locator('#code').inputValue()).toBe('');
    expect(await page.locator('#code').isDisabled()).toBe(true);
    await shot(page, '05-expired');
    expect(pageErrors.get(page)).toEqual([]);
    await page.close();
  });

  it('says when to try again once the last attempt is used', async () => {
    const page = await openPage();
    const email = uniqueEmail();
    await sendCode(page, email);
    const bad = wrong(provider.lastCode(email));
    const code = page.locator('#code');
    await code.pressSequentially(bad);
    await message(page, /2 attempts left/);
    await code.pressSequentially(bad);
    await message(page, /1 attempt left/);
    await code.pressSequentially(bad);
    await message(
      page,
      /^Too many wrong codes\. You can ask for a new code in \d+ seconds \(at \d{1,2}:\d{2}.*\)\.$/,
    );
    expect(await code.inputValue()).toBe('');
    expect(await page.locator('#resend').textContent()).toMatch(/^Resend code in \d+:\d\d$/);
    await shot(page, '06-locked');
    expect(pageErrors.get(page)).toEqual([]);
    await page.close();
  });

  it('says to wait when a code is asked for again too soon', async () => {
    const email = uniqueEmail();
    expect((await postJson(`${url}/otp/send`, { destination: email })).status).toBe(202);
    const page = await openPage();
    await page.locator('#destination').fill(email);
    await page.locator('#send').click();
    await message(page, /^A code was sent a moment ago\. You can ask for a new one in \d+ seconds/);
    await shot(page, '07-send-cooldown');
    await page.close();
  });

  it('takes an SMS code from WebOTP, and offers a call after two texts', async () => {
    const page = await context.newPage();
    // Headless chromium receives no SMS: a stand-in for navigator.credentials.get that the test
    // answers, recording what the page asked for and whether it aborted.
    await page.addInitScript(`
      window.OTPCredential = window.OTPCredential || function OTPCredential() {};
      window.webOtpCalls = [];
      Object.defineProperty(navigator.credentials, 'get', {
        value: (options) => new Promise((resolve, reject) => {
          const call = {
            transport: options.otp && options.otp.transport,
            signal: options.signal instanceof AbortSignal,
            aborted: false,
            resolve,
          };
          window.webOtpCalls.push(call);
          if (options.signal) options.signal.addEventListener('abort', () => {
            call.aborted = true;
            reject(new DOMException('aborted', 'AbortError'));
          });
        }),
      });
    `);
    await page.goto(`${url}/`);
    const phone = uniquePhone();
    await sendCode(page, phone);
    await expect(page.locator('#masked').textContent()).resolves.toBe(
      `+1${'•'.repeat(8)}${phone.slice(-2)}`,
    );
    await message(page, /Code sent by text message/);
    const calls = (): Promise<unknown> =>
      page.evaluate(
        'window.webOtpCalls.map((c) => ({ transport: c.transport, signal: c.signal, aborted: c.aborted }))',
      );
    await expect(calls()).resolves.toEqual([{ transport: ['sms'], signal: true, aborted: false }]);

    // A second text once the cooldown is over; the page then offers a call.
    const resend = page.locator('#resend');
    await page
      .locator('#resend:enabled')
      .waitFor({ timeout: (RESEND_COOLDOWN_SECONDS + 15) * 1000 });
    expect(await resend.textContent()).toBe('Resend code');
    await resend.click();
    const fallback = page.locator('#fallback');
    await fallback.waitFor();
    expect(await fallback.textContent()).toMatch(/^Call me instead in 0:0\d$/);
    expect(await fallback.isDisabled()).toBe(true);
    await expect(calls()).resolves.toEqual([
      { transport: ['sms'], signal: true, aborted: true },
      { transport: ['sms'], signal: true, aborted: false },
    ]);
    await shot(page, '08-fallback-offered');

    const code = provider.lastCode(phone);
    await page.evaluate(
      `window.webOtpCalls[1].resolve({ type: 'otp', code: ${JSON.stringify(code)} })`,
    );
    await page.locator('#done').waitFor();
    const answer = JSON.parse((await page.locator('#answer').textContent()) ?? '') as unknown;
    expect(answer).toEqual({ ok: true, destination: phone });
    await page.close();
  });
});

/** A paste as the browser fires it: a ClipboardEvent carrying the text. */
async function paste(page: Page, text: string): Promise<void> {
  await page.evaluate(`(() => {
    const data = new DataTransfer();
    data.setData('text/plain', ${JSON.stringify(text)});
    const input = document.getElementById('code');
    input.focus();
    input.dispatchEvent(
      new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }),
    );
  })()`);
}
