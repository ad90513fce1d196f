/** What a challenge is checked for: the call it guards, and the client's address when known. */
export interface ChallengeContext {
  action: 'send' | 'verify';
  ip?: string;
}

/**
 * Checks a challenge token (a CAPTCHA's response, e.g. Cloudflare Turnstile or hCaptcha) with its
 * issuer. Registered by the host through the `challenge` option; the module calls it only once a
 * destination has drawn enough failed verifies. Resolve `false` for a refused token; a rejection
 * counts as refused too (the call is answered 428, never let through).
 */
export interface ChallengeVerifier {
  verify(token: string, context: ChallengeContext): Promise<boolean>;
}

/** Challenge escalation (off unless set). */
export interface ChallengeOptions {
  /** Failed verifies of a destination, within `windowSeconds`, after which calls need a challenge. */
  afterFailedVerifies: number;
  /** How far back failed verifies count, in seconds. Default `3600`. */
  windowSeconds?: number;
  verifier: ChallengeVerifier;
}
