import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Response } from 'supertest';
import type { OtpMessage } from '../src/otp/delivery/otp-provider.interface.js';
import { WebhookOtpProvider } from '../src/otp/delivery/webhook.provider.js';
import {
  checkOtpWebhookSignature,
  OTP_WEBHOOK_SIGNATURE_HEADER,
  signOtpWebhookPayload,
  verifyOtpWebhookSignature,
} from '../src/otp/delivery/webhook-signature.js';
import { rowsFor, startTestApp, uniqueEmail, type TestApp } from './support/test-app.js';

/**
 * The webhook provider's signature, end to end: a receiver that checks every request with
 * `verifyOtpWebhookSignature` over the raw bytes it read, as a host's receiver must.
 */

const SECRET = 'whsec-e2e-receiver-secret-at-least-32-bytes';
const OTHER_SECRET = 'whsec-e2e-some-other-secret-at-least-32-bytes';

interface Received {
  raw: Buffer;
  header: string | undefined;
  /** What `verifyOtpWebhookSignature` said, which decided the answer. */
  verified: boolean;
  /** Why `checkOtpWebhookSignature` refused it, or `'valid'`. */
  reason: string;
}

interface SignedReceiver {
  url: string;
  received: Received[];
  last(): Received;
  close(): Promise<void>;
}

/** Answers 204 to a request whose signature verifies, 401 to any other. */
async function startSignedReceiver(secret: string): Promise<SignedReceiver> {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const header = req.headers[OTP_WEBHOOK_SIGNATURE_HEADER];
      const signature = typeof header === 'string' ? header : undefined;
      const verified = verifyOtpWebhookSignature(raw, signature, secret);
      const check = checkOtpWebhookSignature(raw, signature, secret);
      received.push({
        raw,
        header: signature,
        verified,
        reason: check.valid ? 'valid' : check.reason,
      });
      res.writeHead(verified ? 204 : 401).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/otp`,
    received,
    last: () => {
      const found = received[received.length - 1];
      if (!found) throw new Error('the receiver got nothing');
      return found;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** POSTs raw bytes to the receiver as the provider would, with the given signature header. */
async function postRaw(url: string, body: Buffer, signature: string | undefined): Promise<number> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (signature !== undefined) headers[OTP_WEBHOOK_SIGNATURE_HEADER] = signature;
  const res = await fetch(url, { method: 'POST', headers, body });
  await res.arrayBuffer();
  return res.status;
}

function expectError(res: Response, status: number, code: string): void {
  expect({ status: res.status, code: res.body.code }).toEqual({ status, code });
}

// Express only: what leaves for the webhook is the same whatever platform serves the routes.
describe('WebhookOtpProvider signing (POST /otp/send, POST /otp/verify)', () => {
  let receiver: SignedReceiver;
  let signed: TestApp;
  let wronglySigned: TestApp;

  beforeAll(async () => {
    receiver = await startSignedReceiver(SECRET);
    // A non-ASCII app name puts multi-byte characters in the body: the signature covers bytes.
    signed = await startTestApp({
      appName: 'Café Ünïcode',
      providers: [new WebhookOtpProvider(receiver.url, { secret: SECRET })],
    });
    wronglySigned = await startTestApp({
      providers: [new WebhookOtpProvider(receiver.url, { secret: OTHER_SECRET })],
    });
  });
  afterAll(async () => {
    // The boolean helper and the detailed one agreed on every request.
    for (const got of receiver?.received ?? []) expect(got.verified).toBe(got.reason === 'valid');
    await signed?.close();
    await wronglySigned?.close();
    await receiver?.close();
  });

  it('POST /otp/send signs the body; the receiver verifies it and its code verifies', async () => {
    const email = uniqueEmail();
    const before = Math.floor(Date.now() / 1000);
    const sent = await signed.http.post('/otp/send').send({ destination: email });
    expect(sent.status).toBe(202);

    const got = receiver.last();
    expect(got.reason).toBe('valid');
    expect(got.header).toMatch(/^t=[0-9]+,v1=[0-9a-f]{64}$/);
    const t = Number(/^t=([0-9]+),/.exec(got.header ?? '')?.[1]);
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
    // Exactly the signature of the bytes that arrived.
    expect(got.header).toBe(signOtpWebhookPayload(got.raw, SECRET, t));

    const posted = JSON.parse(got.raw.toString('utf8')) as Record<string, string>;
    expect(posted).toMatchObject({ requestId: sent.body.requestId, destination: email });
    expect(posted.message).toContain('Café Ünïcode');
    expect(posted.code).toMatch(/^[0-9]{6}$/);

    const verified = await signed.http
      .post('/otp/verify')
      .send({ destination: email, code: posted.code });
    expect(verified.status).toBe(200);
    expect(verified.body.verified).toBe(true);
  });

  it('POST /otp/send is a 503 OTP_DELIVERY_FAILED when the receiver refuses another secret', async () => {
    const email = uniqueEmail();
    const sent = await wronglySigned.http.post('/otp/send').send({ destination: email });
    expectError(sent, 503, 'OTP_DELIVERY_FAILED');

    const got = receiver.last();
    expect(got.reason).toBe('signature-mismatch');
    const posted = JSON.parse(got.raw.toString('utf8')) as Record<string, string>;
    expect(posted.destination).toBe(email);
    expect(await rowsFor(email)).toEqual([
      expect.objectContaining({ delivery_status: 'failed', code_hash: null }),
    ]);
    // The code reached the receiver, yet nothing active is left to verify.
    const verify = await wronglySigned.http
      .post('/otp/verify')
      .send({ destination: email, code: posted.code });
    expectError(verify, 410, 'OTP_EXPIRED');
  });

  it('a signature does not verify a modified body, however it is paired', async () => {
    const email = uniqueEmail();
    expect((await signed.http.post('/otp/send').send({ destination: email })).status).toBe(202);
    const original = receiver.last();
    expect(original.reason).toBe('valid');
    const header = original.header ?? '';
    const t = Number(/^t=([0-9]+),/.exec(header)?.[1]);

    // Redirect the code to another address, keeping the provider's header.
    const modified = Buffer.from(
      original.raw.toString('utf8').replace(email, 'attacker@example.com'),
      'utf8',
    );
    expect(modified.equals(original.raw)).toBe(false);
    expect(await postRaw(receiver.url, modified, header)).toBe(401);
    expect(receiver.last().reason).toBe('signature-mismatch');

    // A signature the test computes over the modified body does not verify the body that was sent.
    const overModified = signOtpWebhookPayload(modified, SECRET, t);
    expect(await postRaw(receiver.url, original.raw, overModified)).toBe(401);
    expect(receiver.last().reason).toBe('signature-mismatch');
    expect(verifyOtpWebhookSignature(original.raw, overModified, SECRET)).toBe(false);

    // Nor does a signature under a guessed secret, over the modified body itself.
    expect(
      await postRaw(receiver.url, modified, signOtpWebhookPayload(modified, OTHER_SECRET)),
    ).toBe(401);

    // The untouched delivery, replayed after the tolerance, does not verify either.
    expect(verifyOtpWebhookSignature(original.raw, header, SECRET, 300, Date.now() + 301_000)).toBe(
      false,
    );
    // The receiver is no wall that refuses everything: the right secret over the right bytes passes.
    expect(await postRaw(receiver.url, modified, signOtpWebhookPayload(modified, SECRET))).toBe(
      204,
    );
  });

  it('an unsigned provider (the `(url)` form) posts no signature header', async () => {
    const message: OtpMessage = {
      requestId: randomUUID(),
      channel: 'email',
      destination: uniqueEmail(),
      purpose: 'login',
      code: '012345',
      text: '012345',
      subject: '012345',
      html: '<p>012345</p>',
      speech: [],
      appName: 'Your',
      expiresAt: new Date(),
    };
    const unsigned = new WebhookOtpProvider(receiver.url);
    await expect(unsigned.deliver(message, new AbortController().signal)).rejects.toThrow(
      'webhook answered 401',
    );
    expect(receiver.last()).toMatchObject({ header: undefined, reason: 'missing-header' });
  });
});

describe('WebhookOtpProvider options', () => {
  it.each(['', 'short', 'x'.repeat(31)])(
    'refuses a secret under 32 bytes (%p), naming the option and not the value',
    (secret) => {
      let message = '';
      try {
        new WebhookOtpProvider('http://127.0.0.1:1/otp', { secret });
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toContain('`secret`');
      expect(message).toContain('OTP_WEBHOOK_SECRET');
      expect(message).toContain('32 bytes');
      if (secret) expect(message).not.toContain(secret);
    },
  );

  it('accepts a 32-byte secret, and no secret at all', () => {
    expect(
      () => new WebhookOtpProvider('http://127.0.0.1:1/otp', { secret: 'x'.repeat(32) }),
    ).not.toThrow();
    expect(() => new WebhookOtpProvider('http://127.0.0.1:1/otp', {})).not.toThrow();
    expect(() => new WebhookOtpProvider('http://127.0.0.1:1/otp')).not.toThrow();
  });
});
