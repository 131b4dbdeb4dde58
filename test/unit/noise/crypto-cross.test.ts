/**
 * node:crypto provider versus the pure-JS reference on random inputs (in the manner of noble's
 * crosstest): every method, several sizes, tampering, and the nonce layout checked against the raw
 * libraries with an explicitly built nonce.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { bytesToHex } from '../../../src/noise/bytes.js';
import { nodeCrypto as node, nodeCryptoTesting } from '../../../src/noise/crypto-node.js';
import { nobleCrypto as noble } from '../../../src/noise/crypto-noble.js';
import { expectX25519Agrees } from '../../support/x25519-agreement.js';

const SIZES = [0, 1, 15, 16, 17, 63, 64, 65, 1420, 65503];
const rand = (n: number) => new Uint8Array(randomBytes(n));
const hex = bytesToHex;

describe('nodeCrypto vs nobleCrypto', () => {
  it('hash, mac, hmac agree at every size', () => {
    for (const n of SIZES) {
      const data = rand(n);
      expect(hex(node.hash(data)), `hash ${n}`).toBe(hex(noble.hash(data)));
      expect(hex(node.hash(data, data.subarray(0, n >> 1))), `hash parts ${n}`).toBe(hex(noble.hash(data, data.subarray(0, n >> 1))));
      for (const keyLength of [16, 32]) {
        const key = rand(keyLength);
        expect(hex(node.mac(key, data)), `mac ${n}`).toBe(hex(noble.mac(key, data)));
      }
      for (const keyLength of [0, 1, 32, 64, 65, 100]) {
        const key = rand(keyLength);
        expect(hex(node.hmac(key, data)), `hmac key ${keyLength} data ${n}`).toBe(hex(noble.hmac(key, data)));
      }
    }
  });

  it('X25519 publicKey and dh agree on random keys, including raw (unclamped) scalars and arbitrary or non-canonical u', () => {
    expectX25519Agrees(node, noble, 50);
  });

  it('X25519 gives the same results through the JWK and the DER private-key import', () => {
    expect(nodeCryptoTesting.jwkPrivateImportWorks()).toBe(true); // Node 20–24 import OKP JWKs from d
    const cases = Array.from({ length: 10 }, () => [rand(32), rand(32)] as const);
    const viaJwk = cases.map(([a, b]) => hex(node.dh(a, noble.publicKey(b))) + hex(node.publicKey(a)));
    try {
      nodeCryptoTesting.setJwkPrivateImport(false);
      const viaDer = cases.map(([a, b]) => hex(node.dh(a, noble.publicKey(b))) + hex(node.publicKey(a)));
      expect(viaDer).toEqual(viaJwk);
      expect(hex(node.dh(cases[0]![0], new Uint8Array(32)))).toBe('00'.repeat(32));
    } finally {
      nodeCryptoTesting.setJwkPrivateImport(undefined);
    }
    expect(viaJwk).toEqual(cases.map(([a, b]) => hex(noble.dh(a, noble.publicKey(b))) + hex(noble.publicKey(a))));
  });

  it('X25519 agrees on non-canonical u-coordinates (u ≥ p)', () => {
    const a = rand(32);
    for (const low of [0xee, 0xef, 0xf0, 0xff]) {
      const u = new Uint8Array(32).fill(0xff);
      u[0] = low;
      u[31] = 0x7f;
      expect(hex(node.dh(a, u)), `u low byte ${low}`).toBe(hex(noble.dh(a, u)));
    }
  });

  it('seal/open (one-shot and prepared) agree at every size; tampering gives null from both', () => {
    for (const n of SIZES) {
      const key = rand(32);
      const ad = n % 2 === 0 ? rand(32) : new Uint8Array(0);
      const pt = rand(n);
      const counter = 1 + (n * 7919) % 100000;
      const sealedNode = node.seal(key, counter, pt, ad);
      const sealedNoble = noble.seal(key, counter, pt, ad);
      expect(sealedNode.length).toBe(n + 16);
      expect(hex(sealedNode), `seal ${n}`).toBe(hex(sealedNoble));
      expect(hex(node.aead(key).seal(counter, pt, ad))).toBe(hex(sealedNode));
      expect(hex(noble.aead(key).seal(counter, pt, ad))).toBe(hex(sealedNode));
      for (const c of [node, noble]) {
        expect(hex(c.open(key, counter, sealedNode, ad)!), `${c.name} open ${n}`).toBe(hex(pt));
        expect(hex(c.aead(key).open(counter, sealedNode, ad)!)).toBe(hex(pt));
        // tamper with the tag, the body (when present) and the AD; wrong counter
        const badTag = sealedNode.slice();
        badTag[badTag.length - 1]! ^= 1;
        expect(c.open(key, counter, badTag, ad), `${c.name} bad tag ${n}`).toBeNull();
        expect(c.aead(key).open(counter, badTag, ad)).toBeNull();
        if (n > 0) {
          const badBody = sealedNode.slice();
          badBody[0]! ^= 0x80;
          expect(c.open(key, counter, badBody, ad)).toBeNull();
        }
        const otherAd = Uint8Array.of(...ad, 1);
        expect(c.open(key, counter, sealedNode, otherAd)).toBeNull();
        expect(c.open(key, counter + 1, sealedNode, ad)).toBeNull();
        expect(c.open(key, counter, sealedNode.subarray(0, 15), ad)).toBeNull(); // shorter than a tag
      }
    }
  });

  it('xseal/xopen agree at every size; tampering gives null from both', () => {
    for (const n of SIZES) {
      const key = rand(32);
      const nonce = rand(24);
      const ad = rand(16);
      const pt = rand(n);
      const sealed = node.xseal(key, nonce, pt, ad);
      expect(hex(sealed), `xseal ${n}`).toBe(hex(noble.xseal(key, nonce, pt, ad)));
      for (const c of [node, noble]) {
        expect(hex(c.xopen(key, nonce, sealed, ad)!)).toBe(hex(pt));
        const bad = sealed.slice();
        bad[bad.length - 1]! ^= 1;
        expect(c.xopen(key, nonce, bad, ad)).toBeNull();
        expect(c.xopen(key, nonce, sealed.subarray(0, 10), ad)).toBeNull();
      }
    }
  });

  it('nonce = 4 zero bytes ‖ counter (u64 LE), checked against the raw libraries', () => {
    const key = rand(32);
    const pt = rand(100);
    for (const counter of [0, 1, 255, 256, 0xffffffff, 0x100000000, 2 ** 40 + 12345, Number.MAX_SAFE_INTEGER]) {
      const nonce = new Uint8Array(12);
      new DataView(nonce.buffer).setBigUint64(4, BigInt(counter), true);
      const raw = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
      const expected = hex(raw.update(pt)) + hex(raw.final()) + hex(raw.getAuthTag());
      expect(hex(chacha20poly1305(key, nonce).encrypt(pt))).toBe(expected);
      expect(hex(node.seal(key, counter, pt, new Uint8Array(0))), `counter ${counter}`).toBe(expected);
      expect(hex(noble.seal(key, counter, pt, new Uint8Array(0)))).toBe(expected);
      expect(hex(node.aead(key).seal(counter, pt))).toBe(expected);
      expect(hex(noble.aead(key).seal(counter, pt))).toBe(expected);
    }
  });

  it('a prepared aead reuses its nonce buffer without mixing up counters', () => {
    const key = rand(32);
    const a = node.aead(key);
    const b = noble.aead(key);
    const pt = rand(64);
    const sealed = [0, 1, 2, 3].map((n) => a.seal(n, pt));
    for (let n = 3; n >= 0; n--) {
      expect(hex(b.open(n, sealed[n]!)!)).toBe(hex(pt));
      expect(hex(a.open(n, sealed[n]!)!)).toBe(hex(pt));
    }
    // counters that are not safe non-negative integers are refused, not wrapped
    for (const c of [a, b]) {
      expect(() => c.seal(-1, pt)).toThrow(RangeError);
      expect(() => c.seal(2 ** 53, pt)).toThrow(RangeError);
      expect(() => c.seal(1.5, pt)).toThrow(RangeError);
    }
  });

  it('outputs are plain Uint8Arrays that own their bytes', () => {
    const key = rand(32);
    for (const out of [node.hash(rand(3)), node.hmac(key, rand(3)), node.dh(rand(32), node.publicKey(rand(32))), node.publicKey(key), node.seal(key, 0, rand(5), new Uint8Array(0)), node.open(key, 0, node.seal(key, 0, rand(5), new Uint8Array(0)), new Uint8Array(0))!]) {
      expect(Object.getPrototypeOf(out)).toBe(Uint8Array.prototype);
      expect(out.byteLength).toBe(out.buffer.byteLength);
    }
  });

  it('property: seal in one provider opens in the other, for arbitrary inputs', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.nat({ max: Number.MAX_SAFE_INTEGER }),
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ maxLength: 64 }),
        (key, counter, pt, ad) => {
          const s1 = node.seal(key, counter, pt, ad);
          const s2 = noble.seal(key, counter, pt, ad);
          return hex(s1) === hex(s2) && hex(noble.open(key, counter, s1, ad)!) === hex(pt) && hex(node.open(key, counter, s2, ad)!) === hex(pt);
        },
      ),
      { numRuns: 300 },
    );
  });
});
