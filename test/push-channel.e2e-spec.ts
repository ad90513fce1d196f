import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { resolveOtpOptions } from '../src/index.js';
import { InMemoryOtpProvider } from '../src/testing/index.js';
import {
  rowsFor,
  startTestApp,
  uniqueEmail,
  uniquePhone,
  type TestApp,
} from './support/test-app.js';

/**
 * The push channel: the host's own app carries the code (its provider registered like any other),
 * to the account behind an email or a phone, anywhere in the chain. An in-memory provider stands in
 * for FCM or APNs.
 */
describe('push channel', () => {
  const push = new InMemoryOtpProvider(['push']);
  const phoneAndMail = new InMemoryOtpProvider(['sms', 'voice', 'email']);
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({
      providers: [push, phoneAndMail],
      channels: ['sms', 'voice', 'email', 'push'],
      // The app first; SMS when the app cannot be reached.
      channelFallback: { push: ['sms', 'voice'], sms: ['voice'] },
      resendCooldownSeconds: [0],
    });
  });
  afterAll(async () => {
    await t.close();
  });

  it('carries a code to a phone through the host’s app, and the code verifies', async () => {
    const phone = uniquePhone();
    const res = await t.http.post('/otp/send').send({ destination: phone, channel: 'push' });
    expect(res.status).toBe(202);
    expect(res.body.channel).toBe('push');
    const message = push.lastMessage(phone);
    expect(message).toMatchObject({ channel: 'push', destination: phone });
    // A push shows the short text, as an SMS would.
    expect(message?.text).toContain(message?.code);
    expect(phoneAndMail.lastMessage(phone)).toBeUndefined();
    const [row] = await rowsFor(phone);
    expect(row).toMatchObject({ channel: 'push', delivered_by: 'in-memory' });
    await t.http
      .post('/otp/verify')
      .send({ destination: phone, code: push.lastCode(phone) })
      .expect(200);
  });

  it('reaches an email address’s account too', async () => {
    const email = uniqueEmail();
    const res = await t.http.post('/otp/send').send({ destination: email, channel: 'push' });
    expect(res.status).toBe(202);
    expect(push.lastMessage(email)?.channel).toBe('push');
  });

  it('falls back along the chain when the app cannot be reached: push → sms', async () => {
    const phone = uniquePhone();
    push.failing.add('push');
    try {
      const res = await t.http.post('/otp/send').send({ destination: phone, channel: 'push' });
      expect(res.status).toBe(202);
      expect(res.body.channel).toBe('sms');
      expect(phoneAndMail.lastMessage(phone)?.channel).toBe('sms');
    } finally {
      push.failing.delete('push');
    }
  });

  it('skips the legs that cannot reach the destination: push to an email never goes by SMS', async () => {
    const email = uniqueEmail();
    push.failing.add('push');
    try {
      const res = await t.http.post('/otp/send').send({ destination: email, channel: 'push' });
      expect(res.status).toBe(503);
      expect(res.body.code).toBe('OTP_DELIVERY_FAILED');
      expect(phoneAndMail.lastMessage(email)).toBeUndefined();
    } finally {
      push.failing.delete('push');
    }
  });

  it('is off unless the host lists it: channels default to sms, voice and email', async () => {
    expect(resolveOtpOptions({}).channels).toEqual(['sms', 'voice', 'email']);
    const plain = await startTestApp({});
    try {
      const res = await plain.http
        .post('/otp/send')
        .send({ destination: uniqueEmail(), channel: 'push' });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('OTP_CHANNEL_NOT_ALLOWED');
    } finally {
      await plain.close();
    }
  });

  it('needs a provider that carries it, checked at start', () => {
    expect(() =>
      resolveOtpOptions({ channels: ['sms', 'push'], providers: [phoneAndMail] }),
    ).toThrow(/channels includes 'push' but no provider supports it/);
  });
});
