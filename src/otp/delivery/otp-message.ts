import { trimToCapacity } from '../common/trim-to-capacity.js';
import type { OtpChannel } from '../otp.types.js';

/**
 * The texts of a code message, as templates. Placeholders: `{code}`; `{digits}` (the code spoken
 * digit by digit: "0, 4, 2"); `{appName}`; `{yourApp}` ("your Acme", or "your" with the default
 * app name); `{lifetime}` ("5 minutes"); `{minutes}` (a number, for other languages). Every
 * template must show the code (`{code}`, or `{digits}` for voice): one that drops it is refused at
 * start.
 */
export interface OtpMessageTemplates {
  /** The SMS body. The code first and alone on its line. */
  sms: string;
  /** The email subject, code first. */
  emailSubject: string;
  /** The email's plain-text part. */
  emailText: string;
  /** The email's HTML part; values are HTML-escaped where they are put in. */
  emailHtml: string;
  /** What a voice call says, phrase by phrase, with a pause between them. */
  voice: string[];
}

/** One locale's texts: any of them, and per-purpose overrides of any of them. */
export type OtpLocaleMessages = Partial<OtpMessageTemplates> & {
  purposes?: Record<string, Partial<OtpMessageTemplates>>;
};

/** English, built in: short, the code first, the app name, the lifetime, no link. */
export const ENGLISH_MESSAGES: OtpMessageTemplates = {
  sms: '{code}\n{appName} verification code. It expires in {lifetime}. Do not share it.',
  emailSubject: '{code} is {yourApp} verification code',
  emailText:
    '{code}\n\n{appName} verification code. It expires in {lifetime}. Do not share it with ' +
    'anyone. If you did not ask for it, ignore this email.',
  emailHtml:
    '<div style="font-family:system-ui,sans-serif;line-height:1.5">' +
    '<p style="font-size:32px;font-weight:700;letter-spacing:6px;margin:0 0 16px">{code}</p>' +
    '<p style="margin:0 0 8px">{appName} verification code. It expires in {lifetime}.</p>' +
    '<p style="margin:0;color:#555">Do not share it with anyone. If you did not ask for it, ' +
    'ignore this email.</p></div>',
  voice: [
    '{appName} verification code is',
    '{digits}.',
    'Again:',
    '{digits}.',
    'It expires in {lifetime}.',
  ],
};

/** What a message is composed from. */
export interface OtpMessageInput {
  appName: string;
  code: string;
  channel: OtpChannel;
  ttlSeconds: number;
  purpose?: string;
  /** A locale of `messages`; falls back to its language, then to English. */
  locale?: string;
  /** Locales and overrides given by the host, over the built-in English. */
  messages?: Record<string, OtpLocaleMessages>;
  /** Adds the WebOTP / iOS auto-fill line `@<domain> #<code>` as the SMS's last line. */
  webOtpDomain?: string;
}

/** The texts of one code message, for every kind of channel. */
export interface OtpMessageTexts {
  text: string;
  subject: string;
  html: string;
  speech: string[];
}

/** The templates for a locale and purpose: English, under the locale's, under the purpose's. */
export function messageTemplates(
  messages: Record<string, OtpLocaleMessages> = {},
  locale?: string,
  purpose?: string,
): OtpMessageTemplates {
  const chain = [...new Set(['en', locale?.split('-')[0], locale].filter(Boolean))] as string[];
  let templates: OtpMessageTemplates = { ...ENGLISH_MESSAGES };
  for (const tag of chain) {
    const { purposes, ...own } = messages[tag] ?? {};
    templates = { ...templates, ...definedOnly(own) };
    if (purpose && purposes?.[purpose])
      templates = { ...templates, ...definedOnly(purposes[purpose]) };
  }
  return templates;
}

/** Every text a provider may need for one message. */
export function composeOtpMessage(input: OtpMessageInput): OtpMessageTexts {
  const t = messageTemplates(input.messages, input.locale, input.purpose);
  const values: Record<string, string> = {
    code: input.code,
    digits: input.code.split('').join(', '),
    appName: input.appName,
    yourApp: input.appName === 'Your' ? 'your' : `your ${input.appName}`,
    lifetime: lifetime(input.ttlSeconds),
    minutes: String(Math.floor(input.ttlSeconds / 60)),
  };
  const fill = (template: string, escape = (v: string) => v): string => {
    const parts = compiled(template);
    let text = parts[0] as string;
    for (let i = 1; i < parts.length; i += 2) {
      const name = parts[i] as string;
      // Own keys only: `{constructor}` is not a placeholder; unknown ones stay as written.
      text += Object.hasOwn(values, name) ? escape(values[name] as string) : `{${name}}`;
      text += parts[i + 1] as string;
    }
    return text;
  };
  const sms = fill(t.sms);
  return {
    // The WebOTP line must be the very last line, exactly "@domain #code".
    text:
      input.channel === 'sms' && input.webOtpDomain
        ? `${sms}\n\n@${input.webOtpDomain} #${input.code}`
        : input.channel === 'email'
          ? fill(t.emailText)
          : input.channel === 'voice'
            ? t.voice.map((phrase) => fill(phrase)).join(' ')
            : sms,
    subject: fill(t.emailSubject),
    html: fill(t.emailHtml, escapeHtml),
    speech: t.voice.map((phrase) => fill(phrase)),
  };
}

/**
 * Problems with host-given templates, each naming its key (`messages.fr.sms`): a template must be
 * a string that shows the code, voice a non-empty list of strings one of which says it.
 */
export function templateProblems(messages: Record<string, OtpLocaleMessages>): string[] {
  const problems: string[] = [];
  const check = (key: string, templates: Partial<OtpMessageTemplates>): void => {
    for (const name of ['sms', 'emailSubject', 'emailText', 'emailHtml'] as const) {
      const value = templates[name];
      if (value === undefined) continue;
      if (typeof value !== 'string' || !value.includes('{code}')) {
        problems.push(`${key}.${name} must be a string containing {code}`);
      }
    }
    const voice = templates.voice;
    if (
      voice !== undefined &&
      (!Array.isArray(voice) ||
        voice.length === 0 ||
        voice.some((p) => typeof p !== 'string') ||
        !voice.some((p) => p.includes('{digits}') || p.includes('{code}')))
    ) {
      problems.push(`${key}.voice must be a list of phrases, one containing {digits} or {code}`);
    }
  };
  for (const [locale, own] of Object.entries(messages ?? {})) {
    if (!/^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/.test(locale)) {
      problems.push(
        `messages has an invalid locale "${locale}" (use a BCP 47 tag such as 'fr' or 'pt-BR')`,
      );
      continue;
    }
    const { purposes, ...templates } = own ?? {};
    check(`messages.${locale}`, templates);
    for (const [purpose, overrides] of Object.entries(purposes ?? {})) {
      check(`messages.${locale}.purposes.${purpose}`, overrides);
    }
  }
  return problems;
}

/** Templates already split, by their text: a few per locale and purpose the host configures. */
const compiledTemplates = new Map<string, readonly string[]>();
/** Bounds the cache, should a host build templates on the fly. */
const MAX_COMPILED_TEMPLATES = 512;

/**
 * A template split once into literal text (even indexes) and placeholder names (odd indexes), so
 * a send fills it by concatenation instead of running the placeholder regex on every text.
 */
function compiled(template: string): readonly string[] {
  let parts = compiledTemplates.get(template);
  if (parts === undefined) {
    parts = template.split(/\{(\w+)\}/);
    compiledTemplates.set(template, parts);
    trimToCapacity(compiledTemplates, MAX_COMPILED_TEMPLATES);
  }
  return parts;
}

/** The message's plain text alone (what the SMS says), for hosts that format elsewhere. */
export function formatOtpMessage(input: OtpMessageInput): string {
  return composeOtpMessage(input).text;
}

export function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A lifetime in words, never longer than the real one (rounding up would promise time it lacks). */
function lifetime(seconds: number): string {
  const plural = (n: number, unit: string): string => `${n} ${unit}${n === 1 ? '' : 's'}`;
  if (seconds % 60 !== 0 && seconds < 120) return plural(seconds, 'second');
  return plural(Math.floor(seconds / 60), 'minute');
}
