import type { OtpChannel } from '../otp.types.js';
import type { OtpDeliveryAccepted, OtpMessage, OtpProvider } from './otp-provider.interface.js';

/** Options of `TwilioOtpProvider`. Give exactly one of `from` and `messagingServiceSid`. */
export interface TwilioOtpProviderOptions {
  /** Your Twilio account SID: `AC` and 32 hex digits. Required. */
  accountSid: string;
  /** The account's auth token. Required; it never appears in a log or an error message. */
  authToken: string;
  /**
   * Your Twilio phone number in E.164 (`+14155550100`): the sender of SMS and the caller ID of
   * voice calls. No default. Voice needs it: with `messagingServiceSid` the provider carries SMS only.
   */
  from?: string;
  /**
   * A Messaging Service SID (`MG` and 32 hex digits) that picks the sender of each SMS (sender pools,
   * alphanumeric sender IDs). No default.
   */
  messagingServiceSid?: string;
  /**
   * Base URL of Twilio's REST API, for a proxy or a test's stand-in; request paths are kept
   * (`<apiUrl>/2010-04-01/Accounts/<sid>/Messages.json`). Default `'https://api.twilio.com'`.
   */
  apiUrl?: string;
  /**
   * Where Twilio posts each SMS's status (`StatusCallback`): the public URL of
   * `POST /otp/delivery-status/twilio`, exactly as `deliveryReceipts.twilio.publicUrl` names it.
   * Default: none (Twilio posts no status; a Messaging Service may set its own).
   */
  statusCallback?: string;
  /** The `<Say voice>` of calls. Default `'alice'`. */
  voice?: string;
  /** The `<Say language>` of calls. Default `'en-US'`. */
  language?: string;
}

/**
 * Carries SMS through Twilio's Messages API and voice codes through its Calls API (inline TwiML
 * that says the digits one at a time, twice), on the official `twilio` package, an optional peer
 * dependency loaded on first use. An error answer from Twilio (21610 unsubscribed, 21211 invalid
 * number, a 5xx...) is a failed delivery, so the next provider or channel takes over.
 */
export class TwilioOtpProvider implements OtpProvider {
  readonly name = 'twilio';

  private readonly accountSid: string;
  private readonly authToken: string;
  private readonly from?: string;
  private readonly messagingServiceSid?: string;
  private readonly apiUrl?: string;
  private readonly statusCallback?: string;
  private readonly say: { voice: string; language: string };

  constructor(options: TwilioOtpProviderOptions) {
    // Messages name the option and never echo a value: a token pasted into the wrong field would
    // otherwise end up in a startup log.
    const fail = (problem: string): never => {
      throw new Error(`TwilioOtpProvider: ${problem}`);
    };
    if (options === null || typeof options !== 'object') {
      fail('needs options { accountSid, authToken, from or messagingServiceSid }');
    }
    const { accountSid, authToken, from, messagingServiceSid, apiUrl } = options;
    if (typeof accountSid !== 'string' || !/^AC[0-9a-fA-F]{32}$/.test(accountSid)) {
      fail('accountSid must be your account SID: "AC" followed by 32 hex digits');
    }
    if (typeof authToken !== 'string' || authToken.trim() === '' || /\s/.test(authToken)) {
      fail('authToken is required (the auth token of your Twilio account, without spaces)');
    }
    if ((from === undefined) === (messagingServiceSid === undefined)) {
      fail('give exactly one of from (a Twilio phone number) and messagingServiceSid');
    }
    if (from !== undefined && (typeof from !== 'string' || !/^\+[1-9]\d{1,14}$/.test(from))) {
      fail('from must be a phone number in E.164 form, e.g. +14155550100');
    }
    if (
      messagingServiceSid !== undefined &&
      (typeof messagingServiceSid !== 'string' || !/^MG[0-9a-fA-F]{32}$/.test(messagingServiceSid))
    ) {
      fail('messagingServiceSid must be a Messaging Service SID: "MG" followed by 32 hex digits');
    }
    if (options.statusCallback !== undefined && !isHttpUrl(options.statusCallback)) {
      fail('statusCallback must be an http(s) URL without query or fragment');
    }
    if (apiUrl !== undefined && !isHttpUrl(apiUrl)) {
      fail('apiUrl must be an http(s) URL without query or fragment, e.g. https://api.twilio.com');
    }
    for (const key of ['voice', 'language'] as const) {
      const value = options[key];
      if (value !== undefined && (typeof value !== 'string' || !/^[\w.-]{1,64}$/.test(value))) {
        fail(`${key} must be a Twilio <Say> ${key} name, e.g. ${DEFAULT_SAY[key]}`);
      }
    }
    this.accountSid = accountSid;
    this.authToken = authToken;
    this.from = from;
    this.messagingServiceSid = messagingServiceSid;
    this.apiUrl = apiUrl?.replace(/\/+$/, '');
    this.statusCallback = options.statusCallback;
    this.say = {
      voice: options.voice ?? DEFAULT_SAY.voice,
      language: options.language ?? DEFAULT_SAY.language,
    };
  }

  supports(channel: OtpChannel): boolean {
    // A call needs a caller ID; a Messaging Service only picks senders of messages.
    return channel === 'sms' || (channel === 'voice' && this.from !== undefined);
  }

  /** Loads `twilio` now, so a missing package stops the app at start (`OtpModule` calls this). */
  async ready(): Promise<void> {
    await loadTwilio();
  }

  async deliver(message: OtpMessage, signal: AbortSignal): Promise<OtpDeliveryAccepted> {
    if (!this.supports(message.channel)) {
      throw new Error(`twilio does not carry ${message.channel} with this configuration`);
    }
    const sdk = await loadTwilio();
    signal.throwIfAborted();
    // A client per delivery: twilio-node takes no AbortSignal, so the delivery's own transport
    // carries it (and the base URL). Building a client is cheap; its APIs load lazily.
    const client = sdk(this.accountSid, this.authToken, {
      httpClient: new AbortableTransport(this.apiUrl, signal) as unknown as RequestClientLike,
    });
    try {
      if (message.channel === 'sms') {
        const sent = await client.messages.create({
          to: message.destination,
          body: message.text,
          ...(this.statusCallback !== undefined ? { statusCallback: this.statusCallback } : {}),
          ...(this.from !== undefined
            ? { from: this.from }
            : { messagingServiceSid: this.messagingServiceSid }),
        });
        return { messageId: sent.sid };
      }
      const call = await client.calls.create({
        to: message.destination,
        from: this.from as string,
        twiml: buildSayTwiml(message.speech, this.say),
      });
      return { messageId: call.sid };
    } catch (error) {
      throw this.failure(error, message, signal);
    }
  }

  /** Twilio's answer in one line ("twilio 21610: ..."), without the token or the code. */
  private failure(error: unknown, message: OtpMessage, signal: AbortSignal): Error {
    let text: string;
    if (signal.aborted) {
      text = 'twilio request abandoned: the delivery timed out';
    } else {
      const e = (error ?? {}) as { code?: unknown; status?: unknown; message?: unknown };
      const said = typeof e.message === 'string' && e.message !== '' ? e.message : 'no message';
      if (typeof e.status === 'number' && typeof e.code === 'number') {
        text = `twilio ${e.code}: ${said} (HTTP ${e.status})`;
      } else if (typeof e.status === 'number') {
        text = `twilio answered HTTP ${e.status}: ${said}`;
      } else {
        text = `twilio request failed: ${said}`;
      }
    }
    const basic = Buffer.from(`${this.accountSid}:${this.authToken}`).toString('base64');
    for (const secret of [this.authToken, basic, message.code]) {
      text = text.split(secret).join('[redacted]');
    }
    return new Error(text);
  }
}

const DEFAULT_SAY = { voice: 'alice', language: 'en-US' } as const;

/**
 * TwiML for a call that says each phrase in turn with a one-second pause between them. Every text
 * is XML-escaped; the digits come already spelled one by one, and repeated, in `speech`.
 */
export function buildSayTwiml(
  speech: readonly string[],
  say: { voice: string; language: string } = DEFAULT_SAY,
): string {
  const attributes = `voice="${escapeXml(say.voice)}" language="${escapeXml(say.language)}"`;
  const phrases = speech.map((phrase) => `<Say ${attributes}>${escapeXml(phrase)}</Say>`);
  return `<?xml version="1.0" encoding="UTF-8"?><Response>${phrases.join('<Pause length="1"/>')}</Response>`;
}

function escapeXml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c] as string,
  );
}

function isHttpUrl(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  try {
    const url = new URL(value);
    return (url.protocol === 'https:' || url.protocol === 'http:') && !url.search && !url.hash;
  } catch {
    return false;
  }
}

// twilio's types stay inside this file: the emitted declarations must not need the package.
type TwilioSdk = typeof import('twilio');
type RequestClientLike = NonNullable<NonNullable<Parameters<TwilioSdk>[2]>['httpClient']>;

let loading: Promise<TwilioSdk> | undefined;

/** Loads `twilio` once, on first use, so hosts that do not use this provider need not install it. */
function loadTwilio(): Promise<TwilioSdk> {
  loading ??= import('twilio').then(
    (module) => module.default,
    (error: unknown) => {
      loading = undefined;
      const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
      throw new Error(
        `TwilioOtpProvider needs the optional peer dependency 'twilio': run \`npm install twilio\` (${reason})`,
      );
    },
  );
  return loading;
}

/** What twilio-node hands its `httpClient` (a subset of its RequestClient's options). */
interface TwilioHttpRequest {
  method: string;
  uri: string;
  username?: string;
  password?: string;
  headers?: Record<string, string | undefined>;
  params?: Record<string, unknown>;
  data?: Record<string, unknown>;
  allowRedirects?: boolean;
}

/** Backstop for a caller that never aborts: twilio-node's own default request timeout. */
const REQUEST_TIMEOUT_MS = 30_000;

/**
 * twilio-node's `httpClient`, on fetch: it carries the delivery's AbortSignal (twilio's
 * RequestClient takes none, so an abandoned request would run on) and rebases URLs on `apiUrl`.
 * twilio-node itself builds the requests and turns error answers into RestExceptions.
 */
class AbortableTransport {
  constructor(
    private readonly apiUrl: string | undefined,
    private readonly signal: AbortSignal,
  ) {}

  async request(
    opts: TwilioHttpRequest,
  ): Promise<{ statusCode: number; body: string; headers: Record<string, string> }> {
    const url = new URL(opts.uri);
    const target = new URL(
      this.apiUrl === undefined ? url.href : `${this.apiUrl}${url.pathname}${url.search}`,
    );
    for (const [key, value] of pairs(opts.params)) target.searchParams.append(key, value);

    const headers = new Headers();
    for (const [key, value] of Object.entries(opts.headers ?? {})) {
      if (value !== undefined) headers.set(key, value);
    }
    if (opts.username && opts.password) {
      const basic = Buffer.from(`${opts.username}:${opts.password}`).toString('base64');
      headers.set('Authorization', `Basic ${basic}`);
    }
    let body: string | undefined;
    if (opts.data !== undefined) {
      body = /json/i.test(headers.get('Content-Type') ?? '')
        ? JSON.stringify(opts.data)
        : new URLSearchParams(pairs(opts.data)).toString();
    }

    const response = await fetch(target, {
      method: opts.method.toUpperCase(),
      headers,
      body,
      signal: AbortSignal.any([this.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
      redirect: opts.allowRedirects ? 'follow' : 'manual',
    });
    // twilio-node parses the text itself, for success and error answers alike.
    return {
      statusCode: response.status,
      body: await response.text(),
      headers: Object.fromEntries(response.headers),
    };
  }
}

/** Form pairs as twilio-node sends them: a list repeats its key, absent values are left out. */
function pairs(values: Record<string, unknown> | undefined): [string, string][] {
  const out: [string, string][] = [];
  for (const [key, value] of Object.entries(values ?? {})) {
    for (const item of Array.isArray(value) ? (value as unknown[]) : [value]) {
      if (item === undefined || item === null) continue;
      out.push([key, typeof item === 'string' ? item : JSON.stringify(item)]);
    }
  }
  return out;
}
