/** Deterministic Clock and Random for sans-IO tests: time moves only when a test says so. */
import type { Clock, Random } from '../../src/noise/clock.js';

export class ManualClock implements Clock {
  constructor(
    private monotonicMs = 1_000_000,
    private wallMs = 1_700_000_000_000,
  ) {}
  now(): number {
    return this.monotonicMs;
  }
  wallNow(): number {
    return this.wallMs;
  }
  advance(ms: number): void {
    this.monotonicMs += ms;
    this.wallMs += ms;
  }
}

/** xorshift128+-style PRNG seeded with a number; NOT for real keys. */
export class SeededRandom implements Random {
  private s0: number;
  private s1: number;
  constructor(seed = 1) {
    this.s0 = (seed * 2654435761) >>> 0 || 1;
    this.s1 = (seed * 1597334677 + 12345) >>> 0 || 2;
  }
  u32(): number {
    let x = this.s0;
    const y = this.s1;
    this.s0 = y;
    x ^= x << 23;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= y ^ (y >>> 26);
    this.s1 = x >>> 0;
    return (this.s0 + this.s1) >>> 0;
  }
  fill(out: Uint8Array): Uint8Array {
    for (let i = 0; i < out.length; i += 4) {
      const v = this.u32();
      for (let j = 0; j < 4 && i + j < out.length; j++) out[i + j] = (v >>> (8 * j)) & 0xff;
    }
    return out;
  }
}
