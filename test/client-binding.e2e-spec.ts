import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http, { type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { OtpModuleOptionsInput } from '../src/otp/otp.options.js';
import { uniqueUsPhone } from './support/contract.js';
import { recordRace } from './support/races.js';
import { sendOtp, verifyOtp } from './support/rules.js';
import {
  PLATFORMS,
  rowsFor,
  startTestApp,
  uniqueEmail,
  type Platform,
  type TestApp,
} from './support/test-app.js';

/**
 * Client binding (issue 10, off by default, on in the `transaction` preset): a verification token
 * is bound to the verifying client (IP and/or User-Agent), and `@RequireOtp` refuses it from
 * another client with 401 `OTP_TOKEN_INVALID`, without using it up. The guarded route is the
 * example app's `POST /example/protected` (`@RequireOtp('login')`), so each case configures
 * `purposes.login`. Another IP is real: requests leave from 127.0.0.2 (all of 127/8 is loopback).
 */

const HOME = '127.0.0.1';
const ELSEWHERE = '127.0.0.2';
const AGENT = 'agent-A/1.0';
const OTHER_AGENT = 'agent-B/1.0';

interface BindingCase {
  name: string;
  purposes: OtpModuleOptionsInput['purposes'];
  phone: boolean;
  /** Whether the token passes from another User-Agent / another IP. */
  otherAgentPasses: boolean;
  otherIpPasses: boolean;
}

const CASES: BindingCase[] = [
  {
    name: 'ip+user-agent',
    purposes: { login: { bindToClient: 'ip+user-agent' } },
    phone: false,
    otherAgentPasses: false,
    otherIpPasses: false,
  },
  {
    name: 'user-agent',
    purposes: { login: { bindToClient: 'user-agent' } },
    phone: false,
    otherAgentPasses: false,
    otherIpPasses: true,
  },
  {
    name: 'ip',
    purposes: { login: { bindToClient: 'ip' } },
    phone: false,
    otherAgentPasses: true,
    otherIpPasses: false,
  },
  {
    name: 'the transaction preset',
    purposes: { login: 'transaction' },
    phone: true,
    otherAgentPasses: false,
    otherIpPasses: false,
  },
  {
    name: 'no binding (default)',
    purposes: {},
    phone: false,
    otherAgentPasses: true,
    otherIpPasses: true,
  },
];

interface Presented {
  status: number;
  body: Record<string, unknown> | undefined;
}

/** Listens on 127.0.0.1, so supertest and `present` reach the app from a known address. */
async function listenHome(t: TestApp): Promise<void> {
  const server = t.app.getHttpServer() as Server;
  if (!server.listening) await new Promise<void>((resolve) => server.listen(0, HOME, resolve));
}

/** POST /example/protected with `token`, from `from` (a loopback address) and `userAgent`. */
function present(t: TestApp, token: string, from: string, userAgent?: string): Promise<Presented> {
  const { port } = (t.app.getHttpServer() as Server).address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: HOME,
        port,
        path: '/example/protected',
        method: 'POST',
        localAddress: from,
        // A fresh connection per request: a kept-alive one would carry another address.
        agent: false,
        headers: {
          'x-otp-token': token,
          'content-length': '0',
          ...(userAgent ? { 'user-agent': userAgent } : {}),
        },
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (data += chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: data ? (JSON.parse(data) as Record<string, unknown>) : undefined,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const refused = { status: 401, body: expect.objectContaining({ code: 'OTP_TOKEN_INVALID' }) };

describe.each(
  CASES.flatMap((c) =>
    PLATFORMS.map((platform): [string, Platform, BindingCase] => [c.name, platform, c]),
  ),
)('POST /example/protected, login bound to %s, on %s', (_name, platform, bindingCase) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ purposes: bindingCase.purposes }, { platform });
    await listenHome(t);
  });
  afterAll(async () => {
    await t.close();
  });

  /** Sends and verifies a login code with User-Agent `AGENT` from 127.0.0.1; the token. */
  async function verifiedToken(): Promise<{ destination: string; token: string }> {
    const destination = bindingCase.phone ? uniqueUsPhone().e164 : uniqueEmail();
    await sendOtp(t, { destination }).expect(202);
    const res = await verifyOtp(
      t,
      { destination, code: t.provider.lastCode(destination) },
      { 'user-agent': AGENT },
    ).expect(200);
    return { destination, token: res.body.verificationToken as string };
  }

  /** The token is refused from one client and then still passes, once, from the verifying one. */
  async function expectRefusedThenUsable(
    destination: string,
    token: string,
    attempt: Promise<Presented>,
  ): Promise<void> {
    expect(await attempt).toEqual(refused);
    expect((await rowsFor(destination))[0]?.token_used_at).toBeNull();
    expect(await present(t, token, HOME, AGENT)).toEqual({
      status: 200,
      body: { ok: true, destination },
    });
    expect(await present(t, token, HOME, AGENT)).toEqual(refused);
  }

  it(`${bindingCase.otherAgentPasses ? 'lets' : 'refuses'} the token from another User-Agent`, async () => {
    const { destination, token } = await verifiedToken();
    const attempt = present(t, token, HOME, OTHER_AGENT);
    if (bindingCase.otherAgentPasses) {
      expect(await attempt).toEqual({ status: 200, body: { ok: true, destination } });
    } else {
      await expectRefusedThenUsable(destination, token, attempt);
    }
  });

  it(`${bindingCase.otherIpPasses ? 'lets' : 'refuses'} the token from another IP`, async () => {
    const { destination, token } = await verifiedToken();
    const attempt = present(t, token, ELSEWHERE, AGENT);
    if (bindingCase.otherIpPasses) {
      expect(await attempt).toEqual({ status: 200, body: { ok: true, destination } });
    } else {
      await expectRefusedThenUsable(destination, token, attempt);
    }
  });

  it('stores only a hash of the client, and only when bound', async () => {
    const { destination } = await verifiedToken();
    const [row] = await rowsFor(destination);
    const bound = bindingCase.purposes && Object.keys(bindingCase.purposes).length > 0;
    if (bound) {
      expect(row?.token_client_hash).toMatch(/^[0-9a-f]{64}$/);
      expect(String(row?.token_client_hash)).not.toContain('agent');
    } else {
      expect(row?.token_client_hash).toBeNull();
    }
  });

  if (!bindingCase.otherAgentPasses && !bindingCase.otherIpPasses) {
    it('parallel presentations from several clients: exactly one passes, from the verifying client', async () => {
      const { destination, token } = await verifiedToken();
      // The other clients leave first, so a binding that let them through would show.
      const clients = [
        ...Array.from({ length: 9 }, (_, i) => ({
          from: i % 2 === 0 ? ELSEWHERE : HOME,
          agent: i % 2 === 0 ? AGENT : OTHER_AGENT,
          verifying: false,
        })),
        ...Array.from({ length: 3 }, () => ({ from: HOME, agent: AGENT, verifying: true })),
      ];
      const answers = await Promise.all(clients.map((c) => present(t, token, c.from, c.agent)));
      const passed = answers.flatMap((a, i) => (a.status === 200 ? [clients[i]] : []));
      recordRace('parallel presentations of a bound token', {
        binding: bindingCase.name,
        platform,
        passed: passed.length,
      });
      expect(passed).toEqual([{ from: HOME, agent: AGENT, verifying: true }]);
      for (const a of answers.filter((x) => x.status !== 200)) expect(a).toEqual(refused);
      expect((await rowsFor(destination))[0]?.token_used_at).toBeInstanceOf(Date);
    });
  }
});
