import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for Twilio's REST API on 127.0.0.1 that checks what Twilio documents for the Messages
 * and Calls APIs and answers with Twilio's own JSON: resources on success, its error bodies
 * (`{ code, message, more_info, status }`) otherwise.
 */

/** An error answer in Twilio's terms. */
export interface TwilioErrorSpec {
  status: number;
  code: number;
  message: string;
}

/** Error answers Twilio gives, by what they mean. */
export const TWILIO_ERRORS = {
  unsubscribed: { status: 400, code: 21610, message: 'Attempt to send to unsubscribed recipient' },
  invalidTo: { status: 400, code: 21211, message: "Invalid 'To' Phone Number" },
  internal: { status: 500, code: 20500, message: 'An internal server error has occurred' },
  authenticate: { status: 401, code: 20003, message: 'Authenticate' },
} satisfies Record<string, TwilioErrorSpec>;

export type TwilioResource = 'Messages' | 'Calls';

/** One request the fake received, as it arrived, and what it answered. */
export interface FakeTwilioRequest {
  method: string;
  path: string;
  /** The API the path names, or null for any other path. */
  resource: TwilioResource | null;
  /** Basic credentials matched the account SID and auth token. */
  authorized: boolean;
  contentType: string | undefined;
  /** The form fields in order, repeats kept. */
  fields: [string, string][];
  /** The form fields by name (the last value of a repeated one). */
  form: Record<string, string>;
  /** What Twilio's API would refuse in the request (empty for a well-formed one). */
  problems: string[];
  /** The HTTP status answered; undefined while unanswered. */
  answered?: number;
  /** The client closed the connection before an answer (an abandoned request). */
  abandoned: boolean;
}

interface Scripted {
  to: string;
  resource?: TwilioResource;
  answer: TwilioErrorSpec | 'hang';
}

const E164 = /^\+[1-9]\d{1,14}$/;
const BODY_LIMIT = 1600;

export class FakeTwilio {
  readonly requests: FakeTwilioRequest[] = [];
  private readonly scripted: Scripted[] = [];
  private readonly hanging = new Set<ServerResponse>();

  private constructor(
    private readonly server: Server,
    readonly accountSid: string,
    private readonly authToken: string,
  ) {}

  /** Starts a fake on a free loopback port for one account. */
  static async start(credentials: { accountSid: string; authToken: string }): Promise<FakeTwilio> {
    const server = createServer();
    const fake = new FakeTwilio(server, credentials.accountSid, credentials.authToken);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => fake.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  /** The base URL to give `TwilioOtpProvider` as `apiUrl`. */
  get url(): string {
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  /** Answers requests to `to` (on one API, or both) with a Twilio error body. */
  failFor(to: string, error: TwilioErrorSpec, resource?: TwilioResource): void {
    this.scripted.push({ to, resource, answer: error });
  }

  /** Never answers requests to `to` (on one API, or both). */
  hangFor(to: string, resource?: TwilioResource): void {
    this.scripted.push({ to, resource, answer: 'hang' });
  }

  /** The requests whose `To` is `to`, oldest first. */
  to(to: string): FakeTwilioRequest[] {
    return this.requests.filter((r) => r.form.To === to);
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve, reject) =>
      this.server.close((error) => (error ? reject(error) : resolve())),
    );
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => this.answer(req, res, Buffer.concat(chunks).toString('utf8')));
  }

  private answer(req: IncomingMessage, res: ServerResponse, text: string): void {
    const path = new URL(req.url ?? '/', 'http://fake').pathname;
    const match = /^\/2010-04-01\/Accounts\/([^/]+)\/(Messages|Calls)\.json$/.exec(path);
    const contentType = req.headers['content-type'];
    const fields = [...new URLSearchParams(text)];
    const record: FakeTwilioRequest = {
      method: req.method ?? '',
      path,
      resource: (match?.[2] as TwilioResource | undefined) ?? null,
      authorized: this.authorized(req.headers.authorization),
      contentType,
      fields,
      form: Object.fromEntries(fields),
      problems: [],
      abandoned: false,
    };
    this.requests.push(record);
    res.on('close', () => {
      if (!res.writableFinished) record.abandoned = true;
      this.hanging.delete(res);
    });
    const send = (status: number, body: object, headers: Record<string, string> = {}): void => {
      record.answered = status;
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
      res.end(JSON.stringify(body));
    };
    const error = (spec: TwilioErrorSpec, headers?: Record<string, string>): void =>
      send(spec.status, errorBody(spec), headers);

    // Twilio authenticates before it looks at the path.
    if (!record.authorized) {
      return error(TWILIO_ERRORS.authenticate, { 'www-authenticate': 'Basic realm="Twilio API"' });
    }
    if (!match || match[1] !== this.accountSid) {
      return error({
        status: 404,
        code: 20404,
        message: `The requested resource ${path} was not found`,
      });
    }
    if (req.method !== 'POST') {
      return error({ status: 405, code: 20004, message: 'Method not allowed' });
    }
    if (!/^application\/x-www-form-urlencoded(;|$)/i.test(contentType ?? '')) {
      record.problems.push(`Content-Type is ${contentType ?? 'missing'}`);
    }
    const refusal =
      record.resource === 'Messages' ? checkMessage(record.form) : checkCall(record.form);
    if (refusal) {
      record.problems.push(refusal.message);
      return error(refusal);
    }
    if (record.problems.length > 0) {
      return error({ status: 400, code: 20001, message: record.problems.join('; ') });
    }

    const scripted = this.scripted.find(
      (s) => s.to === record.form.To && (s.resource ?? record.resource) === record.resource,
    );
    if (scripted?.answer === 'hang') {
      this.hanging.add(res);
      return;
    }
    if (scripted) return error(scripted.answer);
    send(
      201,
      record.resource === 'Messages'
        ? messageResource(this.accountSid, record.form)
        : callResource(this.accountSid, record.form),
    );
  }

  private authorized(header: string | undefined): boolean {
    const [scheme, encoded] = (header ?? '').split(' ');
    if (scheme !== 'Basic' || !encoded) return false;
    const decoded = Buffer.from(encoded, 'base64').toString('utf8');
    return decoded === `${this.accountSid}:${this.authToken}`;
  }
}

function errorBody(spec: TwilioErrorSpec): object {
  return {
    code: spec.code,
    message: spec.message,
    more_info: `https://www.twilio.com/docs/errors/${spec.code}`,
    status: spec.status,
  };
}

/** What the Messages API refuses, as it answers it. */
function checkMessage(form: Record<string, string>): TwilioErrorSpec | undefined {
  if (!form.To) return { status: 400, code: 21604, message: "A 'To' phone number is required." };
  if (!E164.test(form.To)) return TWILIO_ERRORS.invalidTo;
  if (!form.From && !form.MessagingServiceSid) {
    return { status: 400, code: 21603, message: "A 'From' phone number is required." };
  }
  if (form.From !== undefined && !E164.test(form.From)) {
    return { status: 400, code: 21212, message: "Invalid 'From' Phone Number" };
  }
  if (
    form.MessagingServiceSid !== undefined &&
    !/^MG[0-9a-f]{32}$/i.test(form.MessagingServiceSid)
  ) {
    return { status: 400, code: 21701, message: 'The Messaging Service Sid is invalid' };
  }
  if (!form.Body) return { status: 400, code: 21602, message: 'Message body is required.' };
  if (form.Body.length > BODY_LIMIT) {
    return {
      status: 400,
      code: 21617,
      message: 'The concatenated message body exceeds the 1600 character limit.',
    };
  }
  return undefined;
}

/** What the Calls API refuses, as it answers it. */
function checkCall(form: Record<string, string>): TwilioErrorSpec | undefined {
  if (!form.To) return { status: 400, code: 21201, message: "No 'To' number is specified" };
  if (!E164.test(form.To)) return TWILIO_ERRORS.invalidTo;
  if (!form.From) return { status: 400, code: 21213, message: "No 'From' number is specified" };
  if (!E164.test(form.From)) {
    return { status: 400, code: 21212, message: "Invalid 'From' Phone Number" };
  }
  if (!form.Twiml && !form.Url && !form.ApplicationSid) {
    return { status: 400, code: 21205, message: 'Url parameter is required.' };
  }
  if (form.Twiml !== undefined) {
    if (form.Twiml.length > 4000) {
      return { status: 400, code: 21236, message: 'Twiml exceeds the 4000 character limit' };
    }
    try {
      parseXml(form.Twiml);
    } catch {
      return { status: 400, code: 12100, message: 'Document parse failure' };
    }
  }
  return undefined;
}

const sid = (prefix: string): string => `${prefix}${randomBytes(16).toString('hex')}`;
const rfc2822 = (date: Date): string => date.toUTCString().replace('GMT', '+0000');

/** A Message resource as the Messages API answers a create (201). */
function messageResource(accountSid: string, form: Record<string, string>): object {
  const messageSid = sid('SM');
  const now = rfc2822(new Date());
  const uri = `/2010-04-01/Accounts/${accountSid}/Messages/${messageSid}`;
  return {
    account_sid: accountSid,
    api_version: '2010-04-01',
    body: form.Body,
    date_created: now,
    date_sent: null,
    date_updated: now,
    direction: 'outbound-api',
    error_code: null,
    error_message: null,
    from: form.From ?? null,
    messaging_service_sid: form.MessagingServiceSid ?? null,
    num_media: '0',
    num_segments: '1',
    price: null,
    price_unit: 'USD',
    sid: messageSid,
    // A Messaging Service picks the sender later: such a message is 'accepted' first.
    status: form.From ? 'queued' : 'accepted',
    subresource_uris: { media: `${uri}/Media.json` },
    to: form.To,
    uri: `${uri}.json`,
  };
}

/** A Call resource as the Calls API answers a create (201). */
function callResource(accountSid: string, form: Record<string, string>): object {
  const callSid = sid('CA');
  const now = rfc2822(new Date());
  const uri = `/2010-04-01/Accounts/${accountSid}/Calls/${callSid}`;
  return {
    account_sid: accountSid,
    annotation: null,
    answered_by: null,
    api_version: '2010-04-01',
    caller_name: null,
    date_created: now,
    date_updated: now,
    direction: 'outbound-api',
    duration: null,
    end_time: null,
    forwarded_from: null,
    from: form.From,
    from_formatted: form.From,
    group_sid: null,
    parent_call_sid: null,
    phone_number_sid: sid('PN'),
    price: null,
    price_unit: 'USD',
    queue_time: '0',
    sid: callSid,
    start_time: null,
    status: 'queued',
    subresource_uris: {
      notifications: `${uri}/Notifications.json`,
      recordings: `${uri}/Recordings.json`,
    },
    to: form.To,
    to_formatted: form.To,
    trunk_sid: null,
    uri: `${uri}.json`,
  };
}

/** An XML element: its name, attributes (entities decoded) and children. */
export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: (XmlElement | string)[];
}

/**
 * A strict little XML parser (elements, attributes, text, the five entities and character
 * references, an optional declaration): throws on anything a conforming parser would refuse
 * within that subset (a raw `<` or `&` in text, a mismatched or unclosed tag, trailing content).
 */
export function parseXml(xml: string): XmlElement {
  let at = 0;
  const fail = (why: string): never => {
    throw new Error(`XML: ${why} at ${at}`);
  };
  const decode = (raw: string): string =>
    raw.replace(/&([^;]*);?/g, (whole, entity: string) => {
      if (!whole.endsWith(';')) fail('a raw &');
      const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
      if (entity in named) return named[entity] as string;
      const ref = /^#(x[0-9a-fA-F]+|[0-9]+)$/.exec(entity);
      if (!ref?.[1]) return fail(`an unknown entity &${entity};`);
      const value = ref[1].startsWith('x') ? parseInt(ref[1].slice(1), 16) : Number(ref[1]);
      return String.fromCodePoint(value);
    });
  const NAME = /[A-Za-z_][\w.-]*/y;
  const name = (): string => {
    NAME.lastIndex = at;
    const found = NAME.exec(xml);
    if (!found) return fail('a name expected');
    at = NAME.lastIndex;
    return found[0];
  };
  const spaces = (): void => {
    while (/\s/.test(xml[at] ?? '')) at += 1;
  };
  const element = (): XmlElement => {
    if (xml[at] !== '<') fail('< expected');
    at += 1;
    const node: XmlElement = { name: name(), attributes: {}, children: [] };
    for (;;) {
      spaces();
      if (xml.startsWith('/>', at)) {
        at += 2;
        return node;
      }
      if (xml[at] === '>') break;
      const key = name();
      spaces();
      if (xml[at] !== '=') fail('= expected');
      at += 1;
      spaces();
      const quote = xml[at];
      if (quote !== '"' && quote !== "'") return fail('a quoted value expected');
      const end = xml.indexOf(quote, at + 1);
      if (end < 0) fail('an unclosed attribute');
      const raw = xml.slice(at + 1, end);
      if (raw.includes('<')) fail('a raw < in an attribute');
      if (key in node.attributes) fail(`a repeated attribute ${key}`);
      node.attributes[key] = decode(raw);
      at = end + 1;
    }
    at += 1;
    for (;;) {
      const next = xml.indexOf('<', at);
      if (next < 0) fail(`</${node.name}> missing`);
      const text = xml.slice(at, next);
      if (text !== '') node.children.push(decode(text));
      at = next;
      if (xml.startsWith('</', at)) {
        at += 2;
        if (name() !== node.name) fail(`</${node.name}> expected`);
        spaces();
        if (xml[at] !== '>') fail('> expected');
        at += 1;
        return node;
      }
      node.children.push(element());
    }
  };
  const declaration = /^<\?xml\s+version="1\.0"(\s+encoding="UTF-8")?\s*\?>/i.exec(xml);
  if (declaration) at = declaration[0].length;
  spaces();
  const root = element();
  spaces();
  if (at !== xml.length) fail('content after the root element');
  return root;
}
