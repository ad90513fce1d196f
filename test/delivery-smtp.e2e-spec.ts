import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import type { AddressObject } from 'mailparser';
import nodemailer from 'nodemailer';
import { setTimeout as sleep } from 'node:timers/promises';
import type { OtpMessage } from '../src/otp/delivery/otp-provider.interface.js';
import { SmtpOtpProvider } from '../src/otp/delivery/smtp.provider.js';
import { expectError } from './support/contract.js';
import { startSmtpSink, type SinkMail, type SmtpSink } from './support/smtp-sink.js';
import {
  CapturingProvider,
  rowsFor,
  startTestApp,
  uniqueEmail,
  type TestApp,
} from './support/test-app.js';

const FROM = 'Acme <no-reply@acme.test>';
// Reserved characters, percent-encoded in the URL: the provider must hand them over decoded.
const AUTH = { user: 'otp-mailer', pass: 'p@ss:w/rd%hunter2' };

const address = (header: AddressObject | AddressObject[] | undefined) =>
  (Array.isArray(header) ? header.flatMap((h) => h.value) : (header?.value ?? [])).map((a) => ({
    name: a.name,
    address: a.address,
  }));

/** Visible text of an HTML part, in order. */
const visible = (html: string): string =>
  html
    .replace(/<[^>]*>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();

/** A message as the delivery service composes it, for calling the provider directly. */
function message(destination: string, code = '482915'): OtpMessage {
  return {
    requestId: '00000000-0000-4000-8000-000000000000',
    channel: 'email',
    destination,
    purpose: 'login',
    code,
    text: `Acme verification code is ${code}.`,
    subject: `${code} is your Acme code`,
    html: `<p>${code}</p><p>Acme verification code.</p>`,
    speech: [],
    appName: 'Acme',
    expiresAt: new Date(Date.now() + 300_000),
  };
}

/** Every warning Nest's Logger got while `run` ran, as text. */
async function warningsDuring(run: () => Promise<void>): Promise<string[]> {
  const warn = jest.spyOn(Logger.prototype, 'warn');
  try {
    await run();
    return warn.mock.calls.map((args) => args.map(String).join(' '));
  } finally {
    warn.mockRestore();
  }
}

// Express only: the SMTP delivery is the same whatever platform serves the routes.
describe('email over SMTP (SmtpOtpProvider against a real SMTP server)', () => {
  describe('POST /otp/send and POST /otp/verify', () => {
    let sink: SmtpSink;
    let smtp: SmtpOtpProvider;
    let t: TestApp;

    beforeAll(async () => {
      sink = await startSmtpSink({ auth: AUTH });
      smtp = new SmtpOtpProvider({ url: sink.url, from: FROM });
      t = await startTestApp({ providers: [smtp], channels: ['email'], appName: 'Acme' });
    });
    afterAll(async () => {
      await t?.close();
      smtp?.close();
      await sink?.close();
    });

    it('delivers a mail whose code, in the subject and both parts, verifies', async () => {
      const email = uniqueEmail();
      const sent = await t.http.post('/otp/send').send({ destination: email }).expect(202);
      expect(sent.body.channel).toBe('email');

      const mail: SinkMail = await sink.nextMail();
      expect(mail.user).toBe(AUTH.user);
      expect(mail.envelopeTo).toEqual([email]);
      expect(mail.envelopeFrom).toBe('no-reply@acme.test');
      expect(address(mail.parsed.from)).toEqual([{ name: 'Acme', address: 'no-reply@acme.test' }]);
      expect(address(mail.parsed.to)).toEqual([{ name: '', address: email }]);

      const code = /\b(\d{6})\b/.exec(mail.parsed.subject ?? '')?.[1];
      expect(code).toBeDefined();
      expect(mail.parsed.subject).toMatch(new RegExp(`^${code} `));
      expect(mail.parsed.subject).toContain('Acme');
      expect(mail.parsed.text).toContain(code);
      expect(typeof mail.parsed.html).toBe('string');
      const html = mail.parsed.html as string;
      expect(html).toContain(code);
      // The code comes first, before any other text of the HTML part.
      expect(visible(html).startsWith(code as string)).toBe(true);

      await t.http.post('/otp/verify').send({ destination: email, code }).expect(200);
    });

    it('reuses the pooled connection for the next send', async () => {
      const before = sink.connections.opened;
      expect(before).toBeGreaterThanOrEqual(1);
      await t.http.post('/otp/send').send({ destination: uniqueEmail() }).expect(202);
      await sink.nextMail();
      expect(sink.connections.opened).toBe(before);
    });
  });

  describe('POST /otp/send when the SMTP server refuses the recipient (550)', () => {
    let sink: SmtpSink;

    beforeAll(async () => {
      sink = await startSmtpSink({ auth: AUTH, mode: 'reject-recipient' });
    });
    afterAll(async () => {
      await sink?.close();
    });

    it('answers 503 OTP_DELIVERY_FAILED, leaves no active code, and logs neither code nor password', async () => {
      const smtp = new SmtpOtpProvider({ url: sink.url, from: FROM });
      const deliver = jest.spyOn(smtp, 'deliver');
      const t = await startTestApp({ providers: [smtp], channels: ['email'] });
      const email = uniqueEmail();
      try {
        const warnings = await warningsDuring(async () => {
          const res = await t.http.post('/otp/send').send({ destination: email });
          expectError(res, 503, 'OTP_DELIVERY_FAILED');
        });
        const code = deliver.mock.calls[0]?.[0].code;
        expect(code).toMatch(/^\d{6}$/);

        const rows = await rowsFor(email);
        expect(rows).toHaveLength(1);
        expect(rows[0]).toMatchObject({ delivery_status: 'failed', code_hash: null });

        const smtpWarnings = warnings.filter((w) => / by smtp /.test(w));
        expect(smtpWarnings).toHaveLength(1);
        expect(smtpWarnings[0]).toMatch(/550/);
        for (const w of warnings) {
          expect(w).not.toContain(code);
          expect(w).not.toContain('hunter2');
          expect(w).not.toContain(email);
        }
        expect(sink.mails).toHaveLength(0);
      } finally {
        deliver.mockRestore();
        await t.close();
        smtp.close();
      }
    });

    it('fails over to the next email provider within the same send', async () => {
      const smtp = new SmtpOtpProvider({ url: sink.url, from: FROM });
      const capture = new CapturingProvider();
      const t = await startTestApp({ providers: [smtp, capture], channels: ['email'] });
      const email = uniqueEmail();
      try {
        const res = await t.http.post('/otp/send').send({ destination: email }).expect(202);
        expect(res.body.channel).toBe('email');
        expect(capture.messages).toHaveLength(1);
        const [row] = await rowsFor(email);
        expect(row).toMatchObject({ delivery_status: 'sent' });
        await t.http
          .post('/otp/verify')
          .send({ destination: email, code: capture.lastCode(email) })
          .expect(200);
      } finally {
        await t.close();
        smtp.close();
      }
    });
  });

  describe('SmtpOtpProvider', () => {
    it('keeps the code, the address and the password out of its error when the server quotes the mail back', async () => {
      const sink = await startSmtpSink({ auth: AUTH, mode: 'reject-data' });
      const smtp = new SmtpOtpProvider({ url: sink.url, from: FROM });
      try {
        const email = uniqueEmail();
        const error = await smtp
          .deliver(message(email, '482915'), new AbortController().signal)
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        expect(error).toBeInstanceOf(Error);
        const text = (error as Error).message;
        expect(text).toMatch(/554/);
        expect(text).not.toContain('482915');
        expect(text).not.toContain('hunter2');
        expect(text).not.toContain(email);
        expect((error as Error).cause).toBeUndefined();
      } finally {
        smtp.close();
        await sink.close();
      }
    });

    it('gives up as soon as its signal aborts, and closes the connection', async () => {
      const sink = await startSmtpSink({ mode: 'stall' });
      const smtp = new SmtpOtpProvider({ url: sink.url, from: FROM });
      try {
        const controller = new AbortController();
        const delivering = smtp.deliver(message(uniqueEmail()), controller.signal);
        delivering.catch(() => undefined);
        // Wait until the mail is at the server, which never answers it.
        for (let i = 0; i < 100 && sink.connections.opened === 0; i++) await sleep(20);
        await sleep(200);
        const started = performance.now();
        controller.abort();
        await expect(delivering).rejects.toThrow(/aborted/);
        // The sink never answers, so without the abort this would wait until the test's timeout;
        // 2 s leaves room for a busy machine.
        expect(performance.now() - started).toBeLessThan(2_000);
        for (let i = 0; i < 100 && sink.connections.open > 0; i++) await sleep(20);
        expect(sink.connections.open).toBe(0);
      } finally {
        smtp.close();
        await sink.close();
      }
    });

    it('sends over implicit TLS (smtps://)', async () => {
      const sink = await startSmtpSink({ secure: true, auth: AUTH });
      const smtp = new SmtpOtpProvider({ url: sink.url, from: FROM });
      try {
        const email = uniqueEmail();
        await smtp.deliver(message(email), new AbortController().signal);
        const mail = await sink.nextMail();
        expect(mail.envelopeTo).toEqual([email]);
        expect(mail.user).toBe(AUTH.user);
      } finally {
        smtp.close();
        await sink.close();
      }
    });

    it('sends through a transport the host made with nodemailer', async () => {
      const sink = await startSmtpSink();
      const transport = nodemailer.createTransport(sink.url);
      const smtp = new SmtpOtpProvider({ transport, from: 'no-reply@acme.test' });
      try {
        const email = uniqueEmail();
        await smtp.deliver(message(email), new AbortController().signal);
        expect((await sink.nextMail()).envelopeTo).toEqual([email]);
        smtp.close();
        // The host's transport stays the host's: close() leaves it open.
        await transport.sendMail({ from: 'a@acme.test', to: email, text: 'still open' });
      } finally {
        transport.close();
        await sink.close();
      }
    });

    it('fails a send after close()', async () => {
      const smtp = new SmtpOtpProvider({ url: 'smtp://127.0.0.1:1', from: FROM });
      smtp.close();
      await expect(
        smtp.deliver(message(uniqueEmail()), new AbortController().signal),
      ).rejects.toThrow(/closed/);
    });

    it('supports the email channel only', () => {
      const smtp = new SmtpOtpProvider({ url: 'smtp://127.0.0.1:25', from: FROM });
      expect(smtp.name).toBe('smtp');
      expect(['email', 'sms', 'voice'].filter((c) => smtp.supports(c as 'email'))).toEqual([
        'email',
      ]);
    });

    it.each([
      ['a scheme other than smtp(s)', 'http://u:hunter2@mail.example.com', /scheme 'http:'/],
      ['no URL at all', 'smtp://u:hunter2@ bad host', /not a valid URL/],
      ['a password but no user', 'smtp://:hunter2@mail.example.com', /no user/],
      ['bad percent-encoding', 'smtp://u:hunter2%zz@mail.example.com', /percent-encoding/],
    ])('refuses a URL with %s without echoing the password', (_, url, reason) => {
      let thrown: unknown;
      try {
        new SmtpOtpProvider({ url, from: FROM });
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(Error);
      expect((thrown as Error).message).toMatch(reason);
      expect((thrown as Error).message).not.toContain('hunter2');
      expect((thrown as Error).cause).toBeUndefined();
    });

    it.each([
      ['neither url nor transport', { from: FROM }, /exactly one of/],
      [
        'both url and transport',
        { url: 'smtp://h', transport: { sendMail: () => Promise.resolve() }, from: FROM },
        /exactly one of/,
      ],
      ['no from', { url: 'smtp://h' }, /`from`/],
      ['a from without an address', { url: 'smtp://h', from: 'Acme' }, /`from`/],
      [
        'a from with a line break',
        { url: 'smtp://h', from: 'a@acme.test\r\nBcc: x@y.z' },
        /`from`/,
      ],
    ])('refuses options with %s', (_, options, reason) => {
      expect(
        () => new SmtpOtpProvider(options as ConstructorParameters<typeof SmtpOtpProvider>[0]),
      ).toThrow(reason);
    });
  });
});
