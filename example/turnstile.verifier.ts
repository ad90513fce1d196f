import type { ChallengeContext, ChallengeVerifier } from '../src/index.js';

/** Cloudflare's siteverify endpoint. */
export const TURNSTILE_SITEVERIFY_URL = 'https://challenges.cloudflare.com/turnstile/v0/siteverify';

export interface TurnstileVerifierOptions {
  /** The widget's secret key. */
  secret: string;
  /** Where siteverify is; a proxy, or a test's stand-in. Default Cloudflare's. */
  url?: string;
  /** Longest wait for siteverify's answer; past it the token counts as refused. Default 5000. */
  timeoutMs?: number;
}

/**
 * Checks a Cloudflare Turnstile token with siteverify (a form POST of `secret`, `response` and
 * `remoteip`; the answer's `success` says whether it passed). Anything but a 2xx with
 * `success: true` is a refusal, so an outage of siteverify fails closed.
 */
export class TurnstileChallengeVerifier implements ChallengeVerifier {
  private readonly url: string;
  private readonly timeoutMs: number;

  constructor(private readonly options: TurnstileVerifierOptions) {
    this.url = options.url ?? TURNSTILE_SITEVERIFY_URL;
    this.timeoutMs = options.timeoutMs ?? 5_000;
  }

  async verify(token: string, context: ChallengeContext): Promise<boolean> {
    const form = new URLSearchParams({ secret: this.options.secret, response: token });
    if (context.ip) form.set('remoteip', context.ip);
    const response = await fetch(this.url, {
      method: 'POST',
      body: form,
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    if (!response.ok) return false;
    const answer = (await response.json()) as { success?: unknown };
    return answer.success === true;
  }
}
