/** The data-path addon's in-place AEAD against node:crypto and noble, on random inputs, and its refusals. */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { nativeCrypto } from '../../../src/noise/crypto-native.js';
import { nodeCrypto } from '../../../src/noise/crypto-node.js';
import { nobleCrypto } from '../../../src/noise/crypto-noble.js';
import { aeadOpenInPlace, aeadSealInPlace } from '../../../src/noise/crypto.js';
import { tryLoadDatapath, datapathUnavailableReason } from '../../../src/native-datapath.js';
import { bytesToHex } from '../../../src/noise/bytes.js';

describe('native data-path AEAD', () => {
  it('loads (npm run build:native builds it)', () => {
    expect(tryLoadDatapath(), datapathUnavailableReason()).toBeDefined();
  });

  it('agrees with node:crypto and noble for every size and counter, in place and copying', () => {
    for (const size of [0, 1, 15, 16, 17, 64, 511, 1420, 9000, 65503]) {
      for (const counter of [0, 1, 255, 2 ** 32 + 7, Number.MAX_SAFE_INTEGER - 1]) {
        const key = randomBytes(32);
        const plaintext = randomBytes(size);
        const expected = nodeCrypto.aead(key).seal(counter, plaintext);
        expect(bytesToHex(nobleCrypto.aead(key).seal(counter, plaintext))).toBe(bytesToHex(expected));
        const native = nativeCrypto.aead(key);
        expect(bytesToHex(native.seal(counter, plaintext))).toBe(bytesToHex(expected));
        // in place, at an offset, as the device does it
        const buf = new Uint8Array(16 + size + 16);
        buf.set(plaintext, 16);
        aeadSealInPlace(native, counter, buf, 16, size);
        expect(bytesToHex(buf.subarray(16))).toBe(bytesToHex(expected));
        expect(aeadOpenInPlace(nativeCrypto.aead(key), counter, buf, 16, size)).toBe(true);
        expect(bytesToHex(buf.subarray(16, 16 + size))).toBe(bytesToHex(plaintext));
        expect(bytesToHex(nodeCrypto.aead(key).open(counter, expected)!)).toBe(bytesToHex(plaintext));
      }
    }
  });

  it('refuses a flipped bit anywhere, a wrong counter and a wrong key', () => {
    const key = randomBytes(32);
    const sealed = nodeCrypto.aead(key).seal(5, randomBytes(100));
    const native = nativeCrypto.aead(key);
    for (const i of [0, 50, 99, 100, 115]) {
      const bad = sealed.slice();
      bad[i]! ^= 1;
      expect(native.open(5, bad)).toBeNull();
    }
    expect(native.open(6, sealed)).toBeNull();
    expect(nativeCrypto.aead(randomBytes(32)).open(5, sealed)).toBeNull();
    expect(native.open(5, sealed)).not.toBeNull();
  });

  it('rejects ranges outside the buffer instead of touching memory', () => {
    const addon = tryLoadDatapath()!;
    const h = addon.aeadCreate(randomBytes(32));
    expect(() => addon.aeadSeal(h, 0, new Uint8Array(20), 8, 8)).toThrow(/range/);
    expect(() => addon.aeadOpen(h, 0, new Uint8Array(16), 0, 1)).toThrow(/range/);
    expect(() => addon.aeadCreate(new Uint8Array(31))).toThrow(/32-byte/);
  });
});

describe('native X25519', () => {
  const hex = bytesToHex;
  const rand = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

  it('is what the native provider uses (the addon has x25519)', () => {
    expect(typeof tryLoadDatapath()!.x25519).toBe('function');
    expect(nativeCrypto.dh).not.toBe(nodeCrypto.dh);
  });

  it('agrees with noble on random keys, unclamped scalars and arbitrary or non-canonical u', () => {
    for (let i = 0; i < 64; i++) {
      const a = rand(32);
      const b = rand(32);
      const pubA = nativeCrypto.publicKey(a);
      expect(hex(pubA)).toBe(hex(nobleCrypto.publicKey(a)));
      const pubB = nobleCrypto.publicKey(b);
      expect(hex(nativeCrypto.dh(a, pubB))).toBe(hex(nobleCrypto.dh(b, pubA)));
      const u = rand(32);
      expect(hex(nativeCrypto.dh(a, u))).toBe(hex(nobleCrypto.dh(a, u)));
    }
    for (const low of [0xed, 0xee, 0xef, 0xff]) {
      const a = rand(32);
      const u = new Uint8Array(32).fill(0xff);
      u[0] = low;
      u[31] = 0x7f;
      expect(hex(nativeCrypto.dh(a, u)), `u low byte ${low}`).toBe(hex(nobleCrypto.dh(a, u)));
    }
  });

  it('gives the all-zero secret for low-order points, as the reference does (the handshake rejects it)', () => {
    const a = rand(32);
    const zero = new Uint8Array(32);
    const one = new Uint8Array(32);
    one[0] = 1;
    for (const point of [zero, one]) {
      expect(hex(nativeCrypto.dh(a, point))).toBe('00'.repeat(32));
      expect(hex(nodeCrypto.dh(a, point))).toBe('00'.repeat(32));
    }
  });

  it('refuses wrong lengths with a clear error, never reading past the input', () => {
    expect(() => nativeCrypto.dh(new Uint8Array(31), new Uint8Array(32))).toThrow(/dh private key: must be 32 bytes, got 31/);
    expect(() => nativeCrypto.dh(new Uint8Array(32), new Uint8Array(33))).toThrow(/dh public key: must be 32 bytes, got 33/);
    expect(() => nativeCrypto.publicKey(new Uint8Array(0))).toThrow(/private key: must be 32 bytes/);
    const addon = tryLoadDatapath()!;
    expect(() => addon.x25519!(new Uint8Array(32), new Uint8Array(32), new Uint8Array(16))).toThrow(/32 bytes/);
    expect(() => addon.x25519!('x' as unknown as Uint8Array, null, new Uint8Array(32))).toThrow(/bad arguments/);
  });
});
