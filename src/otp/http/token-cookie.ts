import { OTP_TOKEN_COOKIE } from '../otp.constants.js';

/** An Express or a Fastify response, as far as setting a header goes. */
interface HeaderTarget {
  setHeader?(name: string, value: string): unknown;
  header?(name: string, value: string): unknown;
}

/**
 * The `Set-Cookie` value that hands a verification token to the browser: `HttpOnly` (no script
 * reads it), `Secure` and `Path=/` with no `Domain` (required by the `__Host-` prefix, so no
 * subdomain can set or shadow it), `SameSite=Strict` (no cross-site request carries it), and the
 * token's own lifetime.
 */
export function tokenCookie(token: string, maxAgeSeconds: number): string {
  return [
    `${OTP_TOKEN_COOKIE}=${token}`,
    `Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}`,
    'Path=/',
    'Secure',
    'HttpOnly',
    'SameSite=Strict',
  ].join('; ');
}

export function setTokenCookie(response: HeaderTarget, token: string, maxAgeSeconds: number): void {
  const value = tokenCookie(token, maxAgeSeconds);
  if (response.setHeader) response.setHeader('Set-Cookie', value);
  else response.header?.('Set-Cookie', value);
}

/** The token cookie's value in a `Cookie` header, if any (a token is base64url: no decoding). */
export function readTokenCookie(header: unknown): string | undefined {
  if (typeof header !== 'string') return undefined;
  for (const pair of header.split(';')) {
    const at = pair.indexOf('=');
    if (at > 0 && pair.slice(0, at).trim() === OTP_TOKEN_COOKIE) return pair.slice(at + 1).trim();
  }
  return undefined;
}
