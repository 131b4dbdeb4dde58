/**
 * Seams through which the sans-IO core sees time and randomness. Real implementations live in
 * src/device/system.ts; deterministic test doubles live in test/support.
 */

/** Time source. `now()` is monotonic milliseconds (timers); `wallNow()` is Unix epoch milliseconds (TAI64N, last-handshake). */
export interface Clock {
  now(): number;
  wallNow(): number;
}

/** Randomness source: ephemeral keys, receiver indexes, cookie secrets and nonces, timer jitter. */
export interface Random {
  /** Fills `out` with random bytes and returns it. */
  fill(out: Uint8Array): Uint8Array;
  /** A uniformly random unsigned 32-bit integer. */
  u32(): number;
}
