import { describe, expect, it } from '@jest/globals';
import { composeOtpMessage, formatOtpMessage, templateProblems } from './otp-message.js';

const base = { appName: 'Your', code: '012345', channel: 'sms', ttlSeconds: 300 } as const;

/** GSM 03.38 basic alphabet (no extension table): what fits 160 characters in one segment. */
const GSM7 = /^[@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&'()*+,\-./0-9:;<=>?¡A-ZÄÖÑÜ§¿a-zäöñüà]*$/;

describe('composeOtpMessage', () => {
  describe('SMS', () => {
    it('puts the code first and alone on its line, then the app name, the lifetime and a warning', () => {
      expect(composeOtpMessage(base).text).toBe(
        '012345\nYour verification code. It expires in 5 minutes. Do not share it.',
      );
      expect(composeOtpMessage({ ...base, appName: 'Acme' }).text.split('\n')).toEqual([
        '012345',
        'Acme verification code. It expires in 5 minutes. Do not share it.',
      ]);
    });

    it('ends with exactly "@<domain> #<code>" for WebOTP and auto-fill', () => {
      const lines = composeOtpMessage({ ...base, webOtpDomain: 'acme.test' }).text.split('\n');
      expect(lines[0]).toBe('012345');
      expect(lines.at(-1)).toBe('@acme.test #012345');
    });

    it('stays in one GSM-7 segment with the defaults, and with an app name and a domain', () => {
      for (const input of [
        base,
        { ...base, code: '0123456789', appName: 'Acme Bank', webOtpDomain: 'login.acme-bank.test' },
      ]) {
        const text = composeOtpMessage(input).text;
        expect(text).toMatch(GSM7);
        expect(text.length).toBeLessThanOrEqual(160);
      }
    });

    it('has no link and no secret but the code', () => {
      const text = composeOtpMessage(base).text;
      expect(text).not.toMatch(/https?:|www\./);
      expect(text.match(/\d{4,}/g)).toEqual(['012345']);
    });
  });

  describe('email', () => {
    const email = composeOtpMessage({ ...base, channel: 'email', appName: 'Acme' });

    it('has the code first in the subject', () => {
      expect(email.subject).toBe('012345 is your Acme verification code');
      expect(composeOtpMessage({ ...base, channel: 'email' }).subject).toBe(
        '012345 is your verification code',
      );
    });

    it('has the code first in the text part, and in the HTML part before anything else said', () => {
      expect(email.text.startsWith('012345\n')).toBe(true);
      const visible = email.html.replace(/<[^>]+>/g, ' ').trim();
      expect(visible.startsWith('012345')).toBe(true);
    });

    it('escapes what it puts into the HTML', () => {
      const html = composeOtpMessage({ ...base, channel: 'email', appName: '<b>&"Evil"' }).html;
      expect(html).toContain('&lt;b&gt;&amp;&quot;Evil&quot;');
      expect(html).not.toContain('<b>&');
    });
  });

  describe('voice', () => {
    it('says the digits one by one, twice, leading zeros included', () => {
      const { speech } = composeOtpMessage({ ...base, code: '0012', channel: 'voice' });
      expect(speech.filter((phrase) => phrase === '0, 0, 1, 2.')).toHaveLength(2);
      expect(speech[0]).toBe('Your verification code is');
    });
  });

  it.each([
    [60, '1 minute'],
    [120, '2 minutes'],
    [600, '10 minutes'],
    [1, '1 second'],
    [59, '59 seconds'],
    [90, '90 seconds'],
    [150, '2 minutes'],
  ])('never overstates a %i s lifetime: %s', (ttlSeconds, expected) => {
    expect(formatOtpMessage({ ...base, ttlSeconds })).toContain(`It expires in ${expected}.`);
  });

  describe('templates', () => {
    const messages = {
      fr: {
        sms: '{code}\nCode {appName}. Il expire dans {minutes} min.',
        purposes: { pay: { sms: '{code}\nCode de paiement {appName}.' } },
      },
    };

    it('uses the locale, then its language, then English for what it leaves out', () => {
      expect(composeOtpMessage({ ...base, messages, locale: 'fr' }).text).toBe(
        '012345\nCode Your. Il expire dans 5 min.',
      );
      expect(composeOtpMessage({ ...base, messages, locale: 'fr-CA' }).text).toContain('Il expire');
      expect(composeOtpMessage({ ...base, messages, locale: 'de' }).text).toContain(
        'verification code',
      );
      expect(composeOtpMessage({ ...base, channel: 'email', messages, locale: 'fr' }).subject).toBe(
        '012345 is your verification code',
      );
    });

    it("uses a purpose's override within the locale", () => {
      expect(composeOtpMessage({ ...base, messages, locale: 'fr', purpose: 'pay' }).text).toBe(
        '012345\nCode de paiement Your.',
      );
      expect(composeOtpMessage({ ...base, messages, locale: 'fr', purpose: 'login' }).text).toBe(
        '012345\nCode Your. Il expire dans 5 min.',
      );
    });

    it('fills every placeholder each time, leaves unknown ones and inherited names as written', () => {
      const odd = {
        en: {
          sms: '{code}{code} {nope} {constructor}{toString} {appName}',
          emailHtml: '{code}<b>{appName}</b>',
        },
      };
      const first = composeOtpMessage({ ...base, channel: 'email', messages: odd, appName: 'A&B' });
      const again = composeOtpMessage({ ...base, messages: odd, code: '987654', appName: 'Zed' });
      expect(first.text).not.toContain('{code}');
      expect(first.html).toBe('012345<b>A&amp;B</b>');
      expect(again.text).toBe('987654987654 {nope} {constructor}{toString} Zed');
      expect(composeOtpMessage({ ...base, messages: { en: { sms: '{code}' } } }).text).toBe(
        '012345',
      );
    });

    it('refuses a template without the code, naming its key', () => {
      expect(
        templateProblems({
          fr: { sms: 'Votre code', purposes: { pay: { emailSubject: 'Paiement' } } },
          de: { voice: ['Ihr Code'] },
          'not a tag': {},
        }),
      ).toEqual([
        'messages.fr.sms must be a string containing {code}',
        'messages.fr.purposes.pay.emailSubject must be a string containing {code}',
        'messages.de.voice must be a list of phrases, one containing {digits} or {code}',
        `messages has an invalid locale "not a tag" (use a BCP 47 tag such as 'fr' or 'pt-BR')`,
      ]);
      expect(templateProblems(messages)).toEqual([]);
    });
  });
});
