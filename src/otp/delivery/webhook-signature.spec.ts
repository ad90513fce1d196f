import { describe, expect, it } from '@jest/globals';
import { createHmac } from 'node:crypto';
import {
  checkOtpWebhookSignature,
  signOtpWebhookPayload,
  verifyOtpWebhookSignature,
} from './webhook-signature.js';

const secret = 'whsec-test-secret-that-is-32-bytes-or-more';
const otherSecret = 'whsec-another-secret-also-32-bytes-or-more';
const body = '{"requestId":"r1","destination":"a@example.com","code":"012345"}';
const t = 1_700_000_000;
const now = t * 1000;
const header = signOtpWebhookPayload(body, secret, t);
const v1 = header.split(',v1=')[1] as string;

const reason = (h: string | undefined, b: string | Buffer = body, at = now): string =>
  (checkOtpWebhookSignature(b, h, secret, 300, at) as { reason?: string }).reason ?? 'valid';

describe('signOtpWebhookPayload', () => {
  it('signs "<t>.<body>" with HMAC-SHA256, hex, in the Stripe layout', () => {
    const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
    expect(header).toBe(`t=${t},v1=${expected}`);
  });

  it('gives the same signature for a string and its UTF-8 bytes', () => {
    const text = '{"message":"Ünïcode code 012345"}';
    expect(signOtpWebhookPayload(text, secret, t)).toBe(
      signOtpWebhookPayload(Buffer.from(text, 'utf8'), secret, t),
    );
  });

  it.each(['', 'short', 'x'.repeat(31), 'é'.repeat(15)])(
    'refuses a secret under 32 bytes (%p)',
    (short) => {
      expect(() => signOtpWebhookPayload(body, short, t)).toThrow('at least 32 bytes');
    },
  );

  it('counts the secret in UTF-8 bytes', () => {
    expect(() => signOtpWebhookPayload(body, 'é'.repeat(16), t)).not.toThrow();
  });

  it('refuses a timestamp that is not whole seconds', () => {
    expect(() => signOtpWebhookPayload(body, secret, 1.5)).toThrow(RangeError);
    expect(() => signOtpWebhookPayload(body, secret, -1)).toThrow(RangeError);
  });
});

describe('verifyOtpWebhookSignature', () => {
  it('accepts the signature of the body it was made for', () => {
    expect(verifyOtpWebhookSignature(body, header, secret, 300, now)).toBe(true);
    expect(checkOtpWebhookSignature(body, header, secret, 300, now)).toEqual({ valid: true });
  });

  it('accepts a Buffer body and a string body alike', () => {
    expect(verifyOtpWebhookSignature(Buffer.from(body, 'utf8'), header, secret, 300, now)).toBe(
      true,
    );
    const bytes = Buffer.from('{"message":"café 012345"}', 'utf8');
    const signed = signOtpWebhookPayload(bytes, secret, t);
    expect(verifyOtpWebhookSignature(bytes.toString('utf8'), signed, secret, 300, now)).toBe(true);
    // Other bytes for the same text (Latin-1, not UTF-8) are another body.
    expect(
      verifyOtpWebhookSignature(
        Buffer.from(bytes.toString('utf8'), 'latin1'),
        signed,
        secret,
        300,
        now,
      ),
    ).toBe(false);
  });

  it('uses Date.now() and a 300 s tolerance by default', () => {
    expect(verifyOtpWebhookSignature(body, signOtpWebhookPayload(body, secret), secret)).toBe(true);
    expect(verifyOtpWebhookSignature(body, header, secret)).toBe(false);
  });

  it('refuses a tampered body', () => {
    expect(reason(header, body.replace('012345', '999999'))).toBe('signature-mismatch');
    expect(reason(header, `${body} `)).toBe('signature-mismatch');
    expect(reason(header, '')).toBe('signature-mismatch');
  });

  it('refuses a tampered timestamp, even one inside the tolerance', () => {
    expect(reason(`t=${t + 1},v1=${v1}`)).toBe('signature-mismatch');
    // The timestamp is signed as sent: a zero-padded one is another message.
    expect(reason(`t=0${t},v1=${v1}`)).toBe('signature-mismatch');
  });

  it('refuses a replay once the timestamp is older than the tolerance', () => {
    expect(reason(header, body, now + 300_000)).toBe('valid');
    expect(reason(header, body, now + 301_000)).toBe('timestamp-out-of-tolerance');
    expect(reason(header, body, now + 86_400_000)).toBe('timestamp-out-of-tolerance');
    expect(verifyOtpWebhookSignature(body, header, secret, 3600, now + 3_600_000)).toBe(true);
    expect(verifyOtpWebhookSignature(body, header, secret, 0, now + 1000)).toBe(false);
  });

  it('refuses a timestamp too far in the future', () => {
    expect(reason(header, body, now - 300_000)).toBe('valid');
    expect(reason(header, body, now - 301_000)).toBe('timestamp-out-of-tolerance');
    const future = signOtpWebhookPayload(body, secret, t + 3600);
    expect(reason(future)).toBe('timestamp-out-of-tolerance');
  });

  it('refuses a signature made with another secret', () => {
    const forged = signOtpWebhookPayload(body, otherSecret, t);
    expect(reason(forged)).toBe('signature-mismatch');
    expect(verifyOtpWebhookSignature(body, header, otherSecret, 300, now)).toBe(false);
  });

  it('refuses a missing header', () => {
    expect(reason(undefined)).toBe('missing-header');
  });

  it.each([
    ['empty', ''],
    ['blank', '   '],
    ['missing t', `v1=${v1}`],
    ['empty t', `t=,v1=${v1}`],
    ['non-numeric t', `t=abc,v1=${v1}`],
    ['negative t', `t=-${t},v1=${v1}`],
    ['two t', `t=${t},t=${t},v1=${v1}`],
    ['missing v1', `t=${t}`],
    ['only another scheme', `t=${t},v0=${v1}`],
    ['non-hex v1', `t=${t},v1=${'g'.repeat(64)}`],
    ['short v1', `t=${t},v1=${v1.slice(0, 62)}`],
    ['long v1', `t=${t},v1=${v1}00`],
    ['odd-length v1', `t=${t},v1=${v1.slice(0, 63)}`],
    ['empty v1', `t=${t},v1=`],
    ['a part without "="', `t=${t},v1=${v1},junk`],
    ['a trailing comma', `${header},`],
    ['a valid v1 next to a malformed one', `${header},v1=xyz`],
    ['another separator', `t=${t};v1=${v1}`],
  ])('refuses a malformed header (%s)', (_name, malformed) => {
    expect(reason(malformed)).toBe('malformed-header');
  });

  it('refuses a repeated header that Node hands over as an array', () => {
    const repeated = [header, header] as unknown as string;
    expect(reason(repeated)).toBe('malformed-header');
  });

  it('tolerates spaces around parts and ignores other schemes', () => {
    expect(reason(` t=${t} , v1=${v1} `)).toBe('valid');
    expect(reason(`t=${t},v0=abc,v1=${v1}`)).toBe('valid');
    expect(reason(`t=${t},v1=${v1.toUpperCase()}`)).toBe('valid');
  });

  it('accepts any one of several v1 values, for secret rotation', () => {
    const old = signOtpWebhookPayload(body, otherSecret, t).split(',v1=')[1] as string;
    expect(reason(`t=${t},v1=${old},v1=${v1}`)).toBe('valid');
    expect(reason(`t=${t},v1=${v1},v1=${old}`)).toBe('valid');
    expect(reason(`t=${t},v1=${old},v1=${'0'.repeat(64)}`)).toBe('signature-mismatch');
  });

  it('throws, without echoing it, when its own secret is under 32 bytes', () => {
    // An unset variable must not become a key anyone can sign with.
    const forged = `t=${t},v1=${createHmac('sha256', '').update(`${t}.${body}`).digest('hex')}`;
    expect(() => verifyOtpWebhookSignature(body, forged, '', 300, now)).toThrow('32 bytes');
    let message = '';
    try {
      verifyOtpWebhookSignature(body, header, 'short-secret-value', 300, now);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('32 bytes');
    expect(message).not.toContain('short-secret-value');
  });

  it('throws on a negative or non-numeric tolerance', () => {
    expect(() => verifyOtpWebhookSignature(body, header, secret, -1, now)).toThrow(RangeError);
    expect(() => verifyOtpWebhookSignature(body, header, secret, Number.NaN, now)).toThrow(
      RangeError,
    );
  });
});
