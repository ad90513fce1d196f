import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readExampleConfig } from '../example/example.config.js';
import { TurnstileChallengeVerifier } from '../example/turnstile.verifier.js';
import { startTestApp, uniqueEmail, type TestApp } from './support/test-app.js';

/** A stand-in for Cloudflare's siteverify: passes the token "pass", records every form it got. */
class FakeSiteverify {
  readonly forms: URLSearchParams[] = [];
  status = 200;
  private server!: Server;

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        const form = new URLSearchParams(body);
        this.forms.push(form);
        res.writeHead(this.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ success: form.get('response') === 'pass' }));
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/siteverify`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe('the example app’s Turnstile challenge verifier', () => {
  const siteverify = new FakeSiteverify();
  let url: string;
  beforeAll(async () => {
    url = await siteverify.start();
  });
  afterAll(() => siteverify.close());

  it('posts secret, response and remoteip, and passes only success: true', async () => {
    const verifier = new TurnstileChallengeVerifier({ secret: 'sekret', url });
    await expect(verifier.verify('pass', { action: 'send', ip: '203.0.113.7' })).resolves.toBe(
      true,
    );
    await expect(verifier.verify('nope', { action: 'verify' })).resolves.toBe(false);
    const [first, second] = siteverify.forms.slice(-2);
    expect(Object.fromEntries(first ?? [])).toEqual({
      secret: 'sekret',
      response: 'pass',
      remoteip: '203.0.113.7',
    });
    expect(second?.has('remoteip')).toBe(false);
  });

  it('refuses when siteverify answers an error, even with success: true in the body', async () => {
    siteverify.status = 500;
    try {
      const verifier = new TurnstileChallengeVerifier({ secret: 's', url });
      await expect(verifier.verify('pass', { action: 'send' })).resolves.toBe(false);
    } finally {
      siteverify.status = 200;
    }
  });

  describe('through the routes, configured from the environment', () => {
    let t: TestApp;
    beforeAll(async () => {
      const { challenge } = readExampleConfig({
        OTP_TURNSTILE_SECRET: 'sekret',
        OTP_TURNSTILE_VERIFY_URL: url,
        OTP_CHALLENGE_AFTER_FAILED_VERIFIES: '2',
      }).otp;
      t = await startTestApp({ challenge, maxAttempts: 5 });
    });
    afterAll(() => t.close());

    it('asks for a token after two failed verifies, refuses a bad one, passes a good one', async () => {
      const email = uniqueEmail();
      await t.http.post('/otp/send').send({ destination: email }).expect(202);
      const code = t.provider.lastCode(email);
      const wrong = code === '000000' ? '111111' : '000000';

      const first = await t.http.post('/otp/verify').send({ destination: email, code: wrong });
      expect(first.status).toBe(401);
      expect(first.body.challengeRequired).toBeUndefined();
      const second = await t.http.post('/otp/verify').send({ destination: email, code: wrong });
      expect(second.status).toBe(401);
      expect(second.body.challengeRequired).toBe(true);

      const missing = await t.http.post('/otp/verify').send({ destination: email, code });
      expect(missing.status).toBe(428);
      expect(missing.body).toMatchObject({ code: 'OTP_CHALLENGE_REQUIRED' });
      const refused = await t.http
        .post('/otp/verify')
        .send({ destination: email, code, challenge: 'nope' });
      expect(refused.status).toBe(428);

      const passed = await t.http
        .post('/otp/verify')
        .send({ destination: email, code, challenge: 'pass' });
      expect(passed.status).toBe(200);
      expect(siteverify.forms.at(-1)?.get('secret')).toBe('sekret');
    });
  });
});
