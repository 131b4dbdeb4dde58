/**
 * Per-client-IP token bucket (kubespan.md §1.8: 15 requests/s, burst 60), applied to unary calls
 * and stream opens. An over-rate call is delayed until its token is due; if that delay would run
 * past the call's deadline (or past `maxDelayMs`), the call is refused instead and no token is
 * taken. Time comes from an injected `now()` in milliseconds.
 */

export interface RateLimitOptions {
  perSecond: number;
  burst: number;
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export type RateDecision = { ok: true; delayMs: number } | { ok: false; delayMs: number };

export class RateLimiter {
  readonly perSecond: number;
  readonly burst: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(opts: RateLimitOptions) {
    if (!(opts.perSecond > 0) || !(opts.burst >= 1)) throw new Error('rate limit: perSecond must be > 0 and burst >= 1');
    this.perSecond = opts.perSecond;
    this.burst = opts.burst;
    this.#now = opts.now ?? Date.now;
  }

  #refill(key: string, now: number): Bucket {
    let b = this.#buckets.get(key);
    if (!b) {
      b = { tokens: this.burst, at: now };
      this.#buckets.set(key, b);
      return b;
    }
    const elapsed = Math.max(0, now - b.at);
    b.tokens = Math.min(this.burst, b.tokens + (elapsed * this.perSecond) / 1000);
    b.at = now;
    return b;
  }

  /**
   * Reserves one token for `key`. `maxDelayMs` is how long the caller may wait (time to its
   * deadline). Returns the delay to wait before serving, or ok=false to refuse.
   */
  take(key: string, maxDelayMs: number): RateDecision {
    const now = this.#now();
    const b = this.#refill(key, now);
    const after = b.tokens - 1;
    const delayMs = after >= 0 ? 0 : Math.ceil((-after * 1000) / this.perSecond);
    if (delayMs > maxDelayMs) return { ok: false, delayMs };
    b.tokens = after;
    return { ok: true, delayMs };
  }

  /** Forgets buckets that are full again (idle clients); returns how many were dropped. */
  prune(): number {
    const now = this.#now();
    let n = 0;
    for (const [key] of this.#buckets) {
      if (this.#refill(key, now).tokens >= this.burst) {
        this.#buckets.delete(key);
        n++;
      }
    }
    return n;
  }

  get size(): number {
    return this.#buckets.size;
  }
}
