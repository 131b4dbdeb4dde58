/**
 * Exponential back-off with the defaults of cenkalti/backoff/v4, which the Talos discovery client
 * uses (kubespan.md §1.7): initial interval 0.5 s, multiplier 1.5, randomisation ±50 %, interval
 * capped at 60 s, no elapsed-time limit. As in that library the cap applies to the interval before
 * jitter, so one wait is at most 1.5 × 60 s = 90 s.
 *
 *   wait n = interval n × (1 ± 0.5·r),   interval n+1 = min(interval n × 1.5, 60 s)
 */

export interface BackoffOptions {
  initialIntervalMs: number;
  multiplier: number;
  /** Jitter fraction: the wait is uniform in [interval·(1−f), interval·(1+f)]. */
  randomizationFactor: number;
  maxIntervalMs: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = Object.freeze({
  initialIntervalMs: 500,
  multiplier: 1.5,
  randomizationFactor: 0.5,
  maxIntervalMs: 60_000,
});

/** Stateful back-off; `random` returns a uniform value in [0, 1) (injected for tests). */
export class ExponentialBackoff {
  readonly options: Readonly<BackoffOptions>;
  #intervalMs: number;
  readonly #random: () => number;

  constructor(options: Partial<BackoffOptions> = {}, random: () => number = Math.random) {
    this.options = { ...DEFAULT_BACKOFF, ...options };
    this.#intervalMs = this.options.initialIntervalMs;
    this.#random = random;
  }

  /** The next wait in milliseconds; advances the interval. */
  next(): number {
    const { randomizationFactor: f, multiplier, maxIntervalMs } = this.options;
    const delta = f * this.#intervalMs;
    const low = this.#intervalMs - delta;
    const wait = low + this.#random() * (2 * delta);
    this.#intervalMs = Math.min(this.#intervalMs * multiplier, maxIntervalMs);
    return Math.max(0, Math.round(wait));
  }

  /** Back to the initial interval (after a successful refresh). */
  reset(): void {
    this.#intervalMs = this.options.initialIntervalMs;
  }

  /** Current (un-jittered) interval, for tests and metrics. */
  get intervalMs(): number {
    return this.#intervalMs;
  }
}
