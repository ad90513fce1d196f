/**
 * Postgres error classes that mean "the database cannot serve us now", not "bad input": connection
 * (08), resources (53), shutdown (57P), the module's own bounds: statement_timeout (57014) and
 * lock_timeout (55P03), and a transaction the server rolled back for its own reasons, a deadlock
 * (40P01) or a serialization failure (40001): the statement wrote nothing, and the same request
 * may pass a moment later (a deadlock needs someone else's DDL or locks, such as a DBA's).
 */
const UNAVAILABLE_SQLSTATE = /^(08|53|57P|57014$|55P03$|40P01$|40001$)/;
const UNAVAILABLE_ERRNO = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
]);
const UNAVAILABLE_MESSAGE =
  /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Connection is not established|terminating connection|is not currently accepting connections/i;

/** True when an error (from pg or TypeORM) says the database is unreachable or shutting down. */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 5; depth++) {
    const e = current as {
      code?: unknown;
      message?: unknown;
      driverError?: unknown;
      cause?: unknown;
    };
    if (
      typeof e.code === 'string' &&
      (UNAVAILABLE_SQLSTATE.test(e.code) || UNAVAILABLE_ERRNO.has(e.code))
    ) {
      return true;
    }
    if (typeof e.message === 'string' && UNAVAILABLE_MESSAGE.test(e.message)) return true;
    current = e.driverError ?? e.cause;
  }
  return false;
}
