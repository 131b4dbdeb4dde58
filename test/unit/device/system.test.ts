/** The real Random: u32 from a CSPRNG pool (used for indexes and timer jitter). */
import { describe, expect, it } from 'vitest';
import { systemRandom } from '../../../src/device/system.js';

describe('systemRandom', () => {
  it('u32 gives unsigned 32-bit integers that look uniform across pool refills', () => {
    const n = 5000; // several refills of the 1024-word pool
    const seen = new Set<number>();
    let high = 0;
    const buckets = new Array<number>(16).fill(0);
    for (let i = 0; i < n; i++) {
      const v = systemRandom.u32();
      expect(Number.isInteger(v) && v >= 0 && v <= 0xffffffff).toBe(true);
      seen.add(v);
      if (v >= 0x80000000) high++;
      buckets[v >>> 28]!++;
    }
    expect(seen.size).toBeGreaterThan(n - 5); // collisions among 5000 draws of 2^32 are rare
    expect(high).toBeGreaterThan(n * 0.45);
    expect(high).toBeLessThan(n * 0.55);
    for (const b of buckets) expect(b).toBeGreaterThan(n / 16 / 2);
  });

  it('fill fills the whole buffer', () => {
    const out = systemRandom.fill(new Uint8Array(64));
    expect(out.length).toBe(64);
    expect(out.some((b) => b !== 0)).toBe(true);
  });
});
