import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { clientAddress, runFetchLoad } from '../bench/fetch-load.js';

// The bench's fetch client, against a plain node:http server that notes where each request came
// from: the app's per-IP throttle must see one client a connection, as with real traffic.
describe("the bench's fetch client", () => {
  const seen: string[] = [];
  let server: Server;
  let port: number;

  beforeAll(async () => {
    server = createServer((request, response) => {
      seen.push(request.socket.remoteAddress ?? '');
      request.resume();
      request.on('end', () => response.writeHead(202).end('{}'));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('connects each worker from its own loopback address', async () => {
    let sent = 0;
    const result = await runFetchLoad({
      port,
      path: '/otp/send',
      connections: 4,
      amount: 40,
      nextBody: () => ({ n: sent++ }),
      expect: 202,
    });
    expect(result.ok).toBe(40);
    expect(result.errors).toBe(0);
    expect(seen).toHaveLength(40);
    expect([...new Set(seen)].sort()).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5']);
  });

  it('numbers addresses from 127.0.0.2 and refuses what 127.0.0.0/8 cannot give', () => {
    expect(clientAddress(0)).toBe('127.0.0.2');
    expect(clientAddress(253)).toBe('127.0.0.255');
    expect(() => clientAddress(254)).toThrow(RangeError);
    expect(() => clientAddress(-1)).toThrow(RangeError);
  });
});
