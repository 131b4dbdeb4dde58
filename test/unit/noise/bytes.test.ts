import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  bytesToHex,
  concatBytes,
  constantTimeEqual,
  hexToBytes,
  isZero,
  readCounter,
  readU32LE,
  writeCounter,
  writeU32LE,
} from '../../../src/noise/bytes.js';

describe('hex', () => {
  it('round-trips and accepts either case; output is lowercase', () => {
    expect(bytesToHex(Uint8Array.of(0, 1, 0xab, 0xff))).toBe('0001abff');
    expect(Array.from(hexToBytes('0001ABff'))).toEqual([0, 1, 0xab, 0xff]);
    expect(hexToBytes('').length).toBe(0);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 100 }), (b) => bytesToHex(hexToBytes(bytesToHex(b))) === Buffer.from(b).toString('hex')));
  });

  it('rejects odd length and non-hex characters without echoing the text', () => {
    expect(() => hexToBytes('abc')).toThrow('hex: odd length 3');
    expect(() => hexToBytes('00zz')).toThrow('hex: invalid character at position 2');
    expect(() => hexToBytes('0g')).toThrow('hex: invalid character at position 1');
    try {
      hexToBytes('secretsecretX1');
    } catch (err) {
      expect((err as Error).message).not.toContain('secret');
    }
  });
});

describe('concatBytes', () => {
  it('joins parts in order into a new array', () => {
    const a = Uint8Array.of(1, 2);
    const out = concatBytes(a, new Uint8Array(0), Uint8Array.of(3));
    expect(Array.from(out)).toEqual([1, 2, 3]);
    out[0] = 9;
    expect(a[0]).toBe(1);
    expect(concatBytes().length).toBe(0);
  });
});

describe('constantTimeEqual / isZero', () => {
  it('compares contents and lengths', () => {
    expect(constantTimeEqual(Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2, 3))).toBe(true);
    expect(constantTimeEqual(Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2, 4))).toBe(false);
    expect(constantTimeEqual(Uint8Array.of(0, 2, 3), Uint8Array.of(1, 2, 3))).toBe(false);
    expect(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2, 0))).toBe(false);
    expect(constantTimeEqual(Uint8Array.of(1, 2, 0), Uint8Array.of(1, 2))).toBe(false);
    expect(constantTimeEqual(new Uint8Array(0), new Uint8Array(0))).toBe(true);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ maxLength: 40 }), (a, b) => constantTimeEqual(a, b) === Buffer.from(a).equals(Buffer.from(b))));
  });

  it('isZero', () => {
    expect(isZero(new Uint8Array(32))).toBe(true);
    expect(isZero(new Uint8Array(0))).toBe(true);
    const b = new Uint8Array(32);
    b[31] = 1;
    expect(isZero(b)).toBe(false);
    b[31] = 0;
    b[0] = 0x80;
    expect(isZero(b)).toBe(false);
  });
});

describe('little-endian integers', () => {
  it('u32 round trip at offsets, with range checks', () => {
    const b = new Uint8Array(8);
    writeU32LE(b, 2, 0xdeadbeef);
    expect(bytesToHex(b)).toBe('0000efbeadde0000');
    expect(readU32LE(b, 2)).toBe(0xdeadbeef);
    expect(() => readU32LE(b, 5)).toThrow(RangeError);
    expect(() => writeU32LE(b, -1, 1)).toThrow(RangeError);
    expect(() => writeU32LE(b, 0, 2 ** 32)).toThrow(RangeError);
    expect(() => writeU32LE(b, 0, -1)).toThrow(RangeError);
  });

  it('counters: u64 LE up to 2^53 − 1; larger values read as null', () => {
    const b = new Uint8Array(10);
    for (const n of [0, 1, 0xffffffff, 2 ** 32, 2 ** 32 + 5, 2 ** 52 + 3, Number.MAX_SAFE_INTEGER]) {
      writeCounter(b, 1, n);
      expect(readCounter(b, 1)).toBe(n);
      expect(new DataView(b.buffer).getBigUint64(1, true)).toBe(BigInt(n));
    }
    writeCounter(b, 0, Number.MAX_SAFE_INTEGER);
    expect(bytesToHex(b.subarray(0, 8))).toBe('ffffffffffff1f00');
    // high half 2^21 (= 2^53) and above: not exact, so null
    new DataView(b.buffer).setBigUint64(0, 2n ** 53n, true);
    expect(readCounter(b, 0)).toBeNull();
    new DataView(b.buffer).setBigUint64(0, 2n ** 64n - 1n, true);
    expect(readCounter(b, 0)).toBeNull();
    expect(() => writeCounter(b, 0, 2 ** 53)).toThrow(RangeError);
    expect(() => writeCounter(b, 0, -1)).toThrow(RangeError);
    expect(() => writeCounter(b, 0, 0.5)).toThrow(RangeError);
    expect(() => writeCounter(b, 3, 0)).toThrow(RangeError);
    expect(() => readCounter(b, 3)).toThrow(RangeError);
  });

  it('property: writeCounter/readCounter agree with DataView for every safe integer', () => {
    fc.assert(
      fc.property(fc.nat({ max: Number.MAX_SAFE_INTEGER }), (n) => {
        const b = new Uint8Array(8);
        writeCounter(b, 0, n);
        return readCounter(b, 0) === n && new DataView(b.buffer).getBigUint64(0, true) === BigInt(n);
      }),
    );
  });
});
