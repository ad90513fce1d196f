import type { OtpClient } from '../otp.service.js';

/** What the routes read of the request besides the body: the client, for bindings and challenges. */
export interface ClientRequest {
  ip?: string;
  headers: Record<string, unknown>;
}

/** The client's address (as the host's trust-proxy setting resolves it) and User-Agent. */
export function clientOf(request: ClientRequest): OtpClient {
  const userAgent = request.headers['user-agent'];
  return {
    ...(typeof request.ip === 'string' ? { ip: request.ip } : {}),
    ...(typeof userAgent === 'string' ? { userAgent } : {}),
  };
}
