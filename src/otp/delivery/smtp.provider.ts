import type { OtpChannel } from '../otp.types.js';
import type { OtpMessage, OtpProvider } from './otp-provider.interface.js';

/**
 * The one mail {@link SmtpOtpProvider} hands its transport. nodemailer's `sendMail` takes it as
 * is; `signal` is honoured by nodemailer 10 and ignored by older versions.
 */
export interface SmtpMail {
  from: string;
  to: string;
  subject: string;
  text: string;
  html: string;
  signal?: AbortSignal;
}

/**
 * What {@link SmtpOtpProvider} needs of a transport: a nodemailer transporter
 * (`nodemailer.createTransport(...)`) fits. Written out here so that no nodemailer type reaches
 * this library's public types: a host without nodemailer compiles against them too.
 */
export interface SmtpTransport {
  sendMail(mail: SmtpMail): Promise<unknown>;
  close?(): void;
}

export interface SmtpOtpProviderOptions {
  /**
   * Where to send, e.g. `smtp://user:pass@smtp.example.com:587` (STARTTLS when the server offers
   * it) or `smtps://user:pass@smtp.example.com:465` (implicit TLS). Percent-encode reserved
   * characters in the user and password. Query parameters are nodemailer's SMTP options, e.g.
   * `?requireTLS=true`, `?tls.rejectUnauthorized=false`, `?maxConnections=2`. Connections are
   * pooled. Give either `url` or `transport`.
   */
  url?: string;
  /**
   * A transport you made, e.g. `nodemailer.createTransport({ ... })`, for what a URL cannot say
   * (OAuth2, DKIM, a custom lookup). You own it: {@link SmtpOtpProvider.close} leaves it open.
   */
  transport?: SmtpTransport;
  /** The sender, e.g. `'Acme <no-reply@acme.test>'` or `'no-reply@acme.test'`. Required. */
  from: string;
}

/** A pool this provider made from its URL. */
type OwnTransport = SmtpTransport & { close(options?: { force?: boolean }): void };

/** The part of nodemailer this provider calls. */
interface NodemailerModule {
  createTransport(url: string): OwnTransport;
}

const MISSING_NODEMAILER = "SmtpOtpProvider needs the 'nodemailer' package: npm install nodemailer";

// `Name <local@domain>` or `local@domain`; no line breaks, which would inject headers.
const FROM_PATTERN = /^(?:[^<>\r\n]*<[^\s<>@]+@[^\s<>@]+>|[^\s<>@]+@[^\s<>@]+)$/;

/**
 * Sends email codes over SMTP with nodemailer (an optional peer dependency, loaded on first use,
 * so a host that does not use this provider need not install it). Connections are pooled and
 * reused between sends; call {@link close} when the app shuts down, e.g. from a host's
 * `onApplicationShutdown`. Supports the `email` channel only.
 *
 * ```ts
 * const smtp = new SmtpOtpProvider({ url: process.env.SMTP_URL, from: 'Acme <no-reply@acme.test>' });
 * OtpModule.forRoot({ providers: [smtp], channels: ['email'] });
 * ```
 */
export class SmtpOtpProvider implements OtpProvider {
  readonly name = 'smtp';

  private readonly url?: string;
  private readonly from: string;
  private readonly ownsTransport: boolean;
  private transport?: Promise<SmtpTransport>;
  private closed = false;

  constructor(options: SmtpOtpProviderOptions) {
    const { url, transport, from } = options ?? ({} as Partial<SmtpOtpProviderOptions>);
    if ((url === undefined) === (transport === undefined)) {
      throw new Error('SmtpOtpProvider needs exactly one of `url` and `transport`.');
    }
    if (typeof from !== 'string' || !FROM_PATTERN.test(from.trim())) {
      throw new Error(
        "SmtpOtpProvider needs `from`, a sender such as 'Acme <no-reply@acme.test>' or 'no-reply@acme.test'.",
      );
    }
    this.from = from.trim();
    if (transport !== undefined) {
      if (typeof transport.sendMail !== 'function') {
        throw new Error('SmtpOtpProvider `transport` must have a sendMail(mail) method.');
      }
      this.ownsTransport = false;
      this.transport = Promise.resolve(transport);
    } else {
      this.url = poolingUrl(url as string);
      this.ownsTransport = true;
    }
  }

  supports(channel: OtpChannel): boolean {
    return channel === 'email';
  }

  /**
   * Loads nodemailer and builds the transport, without connecting. Optional: the first send does
   * it too. Call it at start to fail there, rather than at the first send, when nodemailer is
   * missing.
   */
  async ready(): Promise<void> {
    await this.getTransport();
  }

  async deliver(message: OtpMessage, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw new Error('SMTP delivery aborted before it started');
    const pool = this.getTransport();
    const transport = await pool;
    let settled = false;
    const sending = transport
      .sendMail({
        from: this.from,
        to: message.destination,
        subject: message.subject,
        text: message.text,
        html: message.html,
        signal,
      })
      .finally(() => {
        settled = true;
      });
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => {
        reject(new Error('aborted'));
        // nodemailer 10 ends the connection of an aborted mail itself; an older one ignores the
        // signal, so a pool of ours still busy with the mail is closed, and made anew next time.
        setImmediate(() => {
          if (!settled && this.ownsTransport) this.retire(pool);
        });
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      await Promise.race([sending, aborted]);
    } catch (error) {
      if (signal.aborted) throw new Error('SMTP delivery aborted (delivery timeout)');
      throw new Error(describeSmtpError(error, message.code));
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort);
      // The losing side of the race must not become an unhandled rejection.
      sending.catch(() => undefined);
      aborted.catch(() => undefined);
    }
  }

  /**
   * Closes the pooled connections this provider opened (from `url`); a `transport` you passed is
   * yours to close. A send after `close()` fails.
   */
  close(): void {
    this.closed = true;
    if (this.ownsTransport && this.transport) this.retire(this.transport);
  }

  private getTransport(): Promise<SmtpTransport> {
    if (this.closed) return Promise.reject(new Error('SmtpOtpProvider was closed'));
    if (!this.transport) {
      const created = loadNodemailer().then((nodemailer) =>
        nodemailer.createTransport(this.url as string),
      );
      // A failed load is not kept: nodemailer may be installed by the next try.
      created.catch(() => {
        if (this.transport === created) this.transport = undefined;
      });
      this.transport = created;
    }
    return this.transport;
  }

  private retire(pool: Promise<SmtpTransport>): void {
    if (this.transport === pool) this.transport = undefined;
    pool.then(
      // `force` (nodemailer 10) also ends a connection in the middle of a stalled mail.
      (transport) => (transport as OwnTransport).close({ force: true }),
      () => undefined,
    );
  }
}

async function loadNodemailer(): Promise<NodemailerModule> {
  let mod: Partial<NodemailerModule> & { default?: Partial<NodemailerModule> };
  try {
    // Typed by hand, so that nodemailer's own types (present or not) decide nothing here.
    const loaded: unknown = await import('nodemailer');
    mod = loaded as typeof mod;
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new Error(MISSING_NODEMAILER);
    }
    throw error;
  }
  // nodemailer 10 has named exports; an older, CommonJS-only one may only have a default.
  const createTransport = mod.createTransport ?? mod.default?.createTransport;
  if (typeof createTransport !== 'function') throw new Error(MISSING_NODEMAILER);
  return { createTransport };
}

/** Validates an SMTP URL and asks for a pool; never echoes the URL, which may hold a password. */
function poolingUrl(raw: string): string {
  const hint = 'expected smtp://user:pass@host:587 or smtps://user:pass@host:465';
  if (typeof raw !== 'string')
    throw new Error(`SmtpOtpProvider \`url\` must be a string: ${hint}.`);
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new Error(`SmtpOtpProvider \`url\` is not a valid URL: ${hint}.`);
  }
  if (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') {
    throw new Error(
      `SmtpOtpProvider \`url\` has the scheme '${url.protocol}', not smtp: or smtps:: ${hint}.`,
    );
  }
  if (!url.hostname) throw new Error(`SmtpOtpProvider \`url\` names no host: ${hint}.`);
  if (url.password && !url.username) {
    throw new Error(`SmtpOtpProvider \`url\` has a password but no user: ${hint}.`);
  }
  try {
    if (url.username) decodeURIComponent(url.username);
    if (url.password) decodeURIComponent(url.password);
  } catch {
    throw new Error(
      'SmtpOtpProvider `url` has a user or password that is not valid percent-encoding.',
    );
  }
  if (!url.searchParams.has('pool')) url.searchParams.set('pool', 'true');
  return url.toString();
}

/**
 * An SMTP failure in words of our own: the reply code, the command and nodemailer's error code.
 * The server's reply text is left out: it may quote the address or the message, code included.
 */
function describeSmtpError(error: unknown, code: string): string {
  const e = (typeof error === 'object' && error !== null ? error : {}) as {
    code?: unknown;
    responseCode?: unknown;
    command?: unknown;
    message?: unknown;
  };
  const kind = typeof e.code === 'string' && /^[A-Z0-9_]{1,32}$/.test(e.code) ? e.code : undefined;
  const command =
    typeof e.command === 'string' && /^[A-Z][A-Z ]{0,15}$/.test(e.command) ? e.command : undefined;
  let text: string;
  if (typeof e.responseCode === 'number') {
    text = `SMTP server answered ${e.responseCode}${command ? ` to ${command}` : ''}`;
  } else if (typeof e.message === 'string' && e.message && kind !== 'EMESSAGE') {
    // No reply from a server: a socket or DNS error, whose text names a host, not a message.
    text = `SMTP delivery failed: ${e.message.slice(0, 200)}`;
  } else {
    text = 'SMTP delivery failed';
  }
  if (kind) text += ` (${kind})`;
  return code ? text.split(code).join('[code]') : text;
}
