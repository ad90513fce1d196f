/**
 * Matches the paths of the OTP routes mounted under `routePrefix` (`send`, `verify`,
 * `requests/:requestId`, `requests/:requestId/cancel`), after any global prefix or version segment: how the Express error
 * handler and the Fastify route options recognise them. `flags` `'i'` for Express, which matches
 * routes case-insensitively.
 */
export function otpRoutePattern(routePrefix: string, flags = ''): RegExp {
  const escaped = routePrefix.replace(/^\/+|\/+$/g, '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`/${escaped}/(?:send|verify|requests/[^/]+(?:/cancel)?)/?$`, flags);
}
