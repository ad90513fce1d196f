import { Counter, Histogram, type Metric, register, type Registry } from 'prom-client';
import type {
  OtpDeliveryObservation,
  OtpObserver,
  OtpSendObservation,
  OtpVerifyObservation,
} from '../events/otp-observer.js';

/** Options of `OtpMetricsModule.forRoot`. */
export interface OtpMetricsOptions {
  /** Where the metrics are registered. Default prom-client's global `register`. */
  registry?: Registry;
  /** Prefix of every metric name. Default `'otp_'`. */
  prefix?: string;
  /** Buckets of the duration histograms, in seconds. Default prom-client's (5 ms to 10 s). */
  buckets?: number[];
}

/**
 * The module's Prometheus metrics, fed by the same hooks as its events:
 *
 * - `otp_sends_total{channel, outcome}`: outcome `sent`, `replayed`, `limited`, `locked`,
 *   `delivery_failed`, `rejected`, `unavailable` or `error`; channel `none` when the input was
 *   refused before one was known.
 * - `otp_verifies_total{outcome}`: `verified`, `invalid`, `exhausted`, `attempts_exceeded`,
 *   `expired`, `rejected`, `unavailable` or `error`.
 * - `otp_lockouts_total`: lockouts begun (a wrong guess used a code's last attempt); sends they
 *   refuse count as `otp_sends_total{outcome="locked"}`.
 * - `otp_delivery_failures_total{provider, channel}`: one per failed provider attempt.
 * - histograms `otp_send_duration_seconds{outcome}`, `otp_verify_duration_seconds{outcome}` and
 *   `otp_delivery_duration_seconds{provider, channel, outcome}` (`sent` or `failed`).
 *
 * Metrics already in the registry under these names (a second app in the same process) are
 * reused, not registered twice.
 */
export class OtpMetrics implements OtpObserver {
  readonly registry: Registry;
  readonly sends: Counter<'channel' | 'outcome'>;
  readonly verifies: Counter<'outcome'>;
  readonly lockouts: Counter;
  readonly deliveryFailures: Counter<'provider' | 'channel'>;
  readonly sendDuration: Histogram<'outcome'>;
  readonly verifyDuration: Histogram<'outcome'>;
  readonly deliveryDuration: Histogram<'provider' | 'channel' | 'outcome'>;

  constructor(options: OtpMetricsOptions = {}) {
    const registry = (this.registry = options.registry ?? register);
    const prefix = options.prefix ?? 'otp_';
    const buckets = options.buckets ? { buckets: options.buckets } : {};
    const counter = <L extends string>(name: string, help: string, labelNames: L[]): Counter<L> =>
      reuse(registry, `${prefix}${name}`, Counter, () => {
        return new Counter<L>({
          name: `${prefix}${name}`,
          help,
          labelNames,
          registers: [registry],
        });
      });
    const histogram = <L extends string>(
      name: string,
      help: string,
      labelNames: L[],
    ): Histogram<L> =>
      reuse(registry, `${prefix}${name}`, Histogram, () => {
        return new Histogram<L>({
          name: `${prefix}${name}`,
          help,
          labelNames,
          registers: [registry],
          ...buckets,
        });
      });

    this.sends = counter('sends_total', 'OTP sends, by channel and outcome.', [
      'channel',
      'outcome',
    ]);
    this.verifies = counter('verifies_total', 'OTP verifications, by outcome.', ['outcome']);
    this.lockouts = counter(
      'lockouts_total',
      'Lockouts begun: a wrong guess used the last attempt of a code.',
      [],
    );
    this.deliveryFailures = counter(
      'delivery_failures_total',
      'Failed delivery attempts, by provider and channel.',
      ['provider', 'channel'],
    );
    this.sendDuration = histogram('send_duration_seconds', 'Time to answer a send.', ['outcome']);
    this.verifyDuration = histogram('verify_duration_seconds', 'Time to answer a verify.', [
      'outcome',
    ]);
    this.deliveryDuration = histogram(
      'delivery_duration_seconds',
      'Time of one provider attempt at carrying a code.',
      ['provider', 'channel', 'outcome'],
    );
  }

  sendFinished({ outcome, subject, durationMs }: OtpSendObservation): void {
    this.sends.inc({ channel: subject?.channel ?? 'none', outcome });
    this.sendDuration.observe({ outcome }, durationMs / 1000);
  }

  verifyFinished({ outcome, durationMs }: OtpVerifyObservation): void {
    this.verifies.inc({ outcome });
    this.verifyDuration.observe({ outcome }, durationMs / 1000);
    if (outcome === 'exhausted') this.lockouts.inc();
  }

  deliveryAttempted({ provider, channel, ok, durationMs }: OtpDeliveryObservation): void {
    this.deliveryDuration.observe(
      { provider, channel, outcome: ok ? 'sent' : 'failed' },
      durationMs / 1000,
    );
    if (!ok) this.deliveryFailures.inc({ provider, channel });
  }
}

function reuse<M extends Metric>(
  registry: Registry,
  name: string,
  type: abstract new (...args: never[]) => M,
  create: () => M,
): M {
  const existing = registry.getSingleMetric(name);
  if (existing === undefined) return create();
  if (existing instanceof type) return existing;
  throw new Error(
    `OtpMetrics: the registry already has a metric named ${name} of another type; ` +
      'pass another `prefix` or `registry` to OtpMetricsModule.forRoot.',
  );
}
