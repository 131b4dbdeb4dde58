import { describe, expect, it } from 'vitest';
import { bytesToHex } from '../../../src/noise/bytes.js';
import { tai64n, tai64nAfter } from '../../../src/noise/tai64n.js';

describe('tai64n', () => {
  it('spec §13.3 vector: Unix 1700000000 s, 0 ns', () => {
    expect(bytesToHex(tai64n(1_700_000_000_000))).toBe('400000006553f10a00000000');
  });

  it('the epoch is 0x400000000000000a', () => {
    expect(bytesToHex(tai64n(0))).toBe('400000000000000a00000000');
  });

  it('whitens nanoseconds to multiples of 2^24 (≈ 16.78 ms)', () => {
    const ns = (ms: number) => new DataView(tai64n(ms).buffer).getUint32(8, false);
    expect(ns(1_700_000_000_016)).toBe(0); // 16 ms < 2^24 ns
    expect(ns(1_700_000_000_017)).toBe(1 << 24); // 17 ms ≥ 16.777216 ms
    // fractional milliseconds count (a double near 1.7e12 ms resolves about 0.24 µs)
    expect(ns(1_700_000_000_016.778)).toBe(1 << 24);
    expect(ns(1_700_000_000_016.776)).toBe(0);
    expect(ns(16.777216)).toBe(1 << 24);
    expect(ns(16.777215)).toBe(0);
    expect(ns(1_700_000_000_352)).toBe(20 * (1 << 24)); // 352 000 000 < 21·2^24
    expect(ns(1_700_000_000_353)).toBe(21 * (1 << 24)); // the LAB sample value 352321536
    expect(ns(1_700_000_000_999.99)).toBe(59 * (1 << 24));
    for (let ms = 0; ms < 1000; ms += 7) expect(ns(1_700_000_000_000 + ms) & 0xffffff).toBe(0);
  });

  it('seconds roll over at 1000 ms', () => {
    expect(bytesToHex(tai64n(1_700_000_001_000))).toBe('400000006553f10b00000000');
  });

  it('refuses negative or non-finite clocks', () => {
    expect(() => tai64n(-1)).toThrow(RangeError);
    expect(() => tai64n(Number.NaN)).toThrow(RangeError);
  });
});

describe('tai64nAfter', () => {
  it('is a strict bytewise greater-than', () => {
    const a = tai64n(1_700_000_000_000);
    const b = tai64n(1_700_000_000_020); // next whitened step
    const c = tai64n(1_700_000_001_000);
    expect(tai64nAfter(b, a)).toBe(true);
    expect(tai64nAfter(a, b)).toBe(false);
    expect(tai64nAfter(a, a)).toBe(false);
    expect(tai64nAfter(c, b)).toBe(true);
    // within one whitening step the timestamps are equal, so not after
    expect(tai64nAfter(tai64n(1_700_000_000_010), a)).toBe(false);
    // later seconds win over larger nanoseconds
    expect(tai64nAfter(tai64n(1_700_000_001_000), tai64n(1_700_000_000_999))).toBe(true);
  });

  it('refuses wrong lengths', () => {
    expect(() => tai64nAfter(new Uint8Array(11), new Uint8Array(12))).toThrow(RangeError);
  });
});

describe('tai64n near whole seconds', () => {
  it('never goes back in time as the clock advances by small fractions', () => {
    // steps of 2^-12 ms, the resolution of a double near 1.7e12, across a second boundary
    let previous = tai64n(1_700_000_000_995);
    const backwards: number[] = [];
    for (let ms = 1_700_000_000_995; ms < 1_700_000_001_005; ms += 0.000244140625) {
      const now = tai64n(ms);
      if (tai64nAfter(previous, now)) backwards.push(ms);
      previous = now;
    }
    expect(backwards).toEqual([]);
    expect(bytesToHex(previous).slice(0, 16)).toBe('400000006553f10b');
  });
});
