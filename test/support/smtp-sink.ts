import { simpleParser, type ParsedMail } from 'mailparser';
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerDataStream } from 'smtp-server';

/** A mail the sink accepted: its envelope and the parsed message. */
export interface SinkMail {
  envelopeFrom: string;
  envelopeTo: string[];
  /** The user that authenticated the session, if any. */
  user?: string;
  parsed: ParsedMail;
}

export interface SmtpSinkOptions {
  /** Require AUTH PLAIN with these credentials (over plain text: a test server only). */
  auth?: { user: string; pass: string };
  /** What to do with a mail: accept it, refuse its recipient (550 at RCPT TO), refuse it at DATA
   * (554, quoting its subject back, as some servers quote a message), or never answer DATA. */
  mode?: 'accept' | 'reject-recipient' | 'reject-data' | 'stall';
  /** Implicit TLS (smtps://) with smtp-server's built-in, self-signed certificate. */
  secure?: boolean;
}

export interface SmtpSink {
  port: number;
  /** `smtp://` (or `smtps://`) URL of the sink, with the credentials when it requires AUTH. */
  url: string;
  mails: SinkMail[];
  /** Sessions opened so far, and those still open. */
  connections: { opened: number; open: number };
  /** Resolves with the next mail (or one already here and not yet taken). */
  nextMail(timeoutMs?: number): Promise<SinkMail>;
  close(): Promise<void>;
}

/**
 * A real SMTP server on 127.0.0.1 and a free port (the `smtp-server` package), keeping every mail
 * it accepts, parsed with mailparser. STARTTLS is disabled, so nodemailer talks plain text to it.
 */
export async function startSmtpSink(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const mode = options.mode ?? 'accept';
  const mails: SinkMail[] = [];
  let taken = 0;
  const waiters: (() => void)[] = [];
  const connections = { opened: 0, open: 0 };

  const server = new SMTPServer({
    secure: options.secure ?? false,
    disabledCommands: options.secure ? [] : ['STARTTLS'],
    authMethods: ['PLAIN'],
    authOptional: !options.auth,
    allowInsecureAuth: true,
    disableReverseLookup: true,
    logger: false,
    closeTimeout: 200,
    onConnect(_session, callback) {
      connections.opened += 1;
      connections.open += 1;
      callback();
    },
    onClose() {
      connections.open -= 1;
    },
    onAuth(auth, _session, callback) {
      const expected = options.auth;
      if (expected && auth.username === expected.user && auth.password === expected.pass) {
        callback(null, { user: auth.username });
      } else {
        callback(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
      }
    },
    onRcptTo(_address, _session, callback) {
      if (mode === 'reject-recipient') {
        callback(Object.assign(new Error('No such user here'), { responseCode: 550 }));
      } else {
        callback();
      }
    },
    onData(stream: SMTPServerDataStream, session, callback) {
      simpleParser(stream).then(
        (parsed) => {
          if (mode === 'stall') return; // never answers: the client has to give up on its own
          if (mode === 'reject-data') {
            callback(
              Object.assign(new Error(`Message refused: ${parsed.subject ?? ''}`), {
                responseCode: 554,
              }),
            );
            return;
          }
          mails.push({
            envelopeFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            envelopeTo: session.envelope.rcptTo.map((r) => r.address),
            user: typeof session.user === 'string' ? session.user : undefined,
            parsed,
          });
          waiters.splice(0).forEach((wake) => wake());
          callback();
        },
        (error: Error) => callback(error),
      );
    },
  });

  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.server.address() as AddressInfo;
  const credentials = options.auth
    ? `${encodeURIComponent(options.auth.user)}:${encodeURIComponent(options.auth.pass)}@`
    : '';
  const url = options.secure
    ? `smtps://${credentials}127.0.0.1:${port}?tls.rejectUnauthorized=false`
    : `smtp://${credentials}127.0.0.1:${port}?ignoreTLS=true`;

  return {
    port,
    url,
    mails,
    connections,
    async nextMail(timeoutMs = 5_000): Promise<SinkMail> {
      const deadline = Date.now() + timeoutMs;
      while (taken >= mails.length) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no mail arrived at the SMTP sink within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      taken += 1;
      return mails[taken - 1] as SinkMail;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
