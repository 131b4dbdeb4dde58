/** The data-path addon's in-place AEAD against node:crypto and noble, on random inputs, and its refusals. */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { nativeCrypto } from '../../../src/noise/crypto-native.js';
import { nodeCrypto } from '../../../src/noise/crypto-node.js';
import { nobleCrypto } from '../../../src/noise/crypto-noble.js';
import { aeadOpenInPlace, aeadSealInPlace } from '../../../src/noise/crypto.js';
import { tryLoadDatapath, datapathUnavailableReason } from '../../../src/native-datapath.js';
import { bytesToHex } from '../../../src/noise/bytes.js';
import { expectX25519Agrees } from '../../support/x25519-agreement.js';

describe('native data-path AEAD', () => {
  it('loads (npm run build:native builds it)', () => {
    expect(tryLoadDatapath(), datapathUnavailableReason()).toBeDefined();
  });

  it('uses libsodium for small packets and X25519 (setup installs libsodium23)', () => {
    const b = tryLoadDatapath()!.backends!();
    expect(b.why).toBeNull();
    expect(b.libsodium).toMatch(/^1\.\d+\.\d+$/);
    expect(b.sodiumAeadMax).toBe(512);
  });

  it('agrees with node:crypto and noble for every size and counter, in place and copying', () => {
    // below 512 bytes libsodium seals and opens, from 512 on OpenSSL: both sides of the line
    for (const size of [0, 1, 15, 16, 17, 64, 511, 512, 513, 1420, 9000, 65503]) {
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

describe('the data-path addon without libsodium (KUBESPAND_LIBSODIUM=0, in a child process)', () => {
  it('says why, and seals, opens and does X25519 through OpenSSL with the same bytes as noble', () => {
    const key = new Uint8Array(randomBytes(32));
    const priv = new Uint8Array(randomBytes(32));
    const peer = nobleCrypto.publicKey(new Uint8Array(randomBytes(32)));
    const sizes = [0, 84, 511, 512, 1420];
    const plain = sizes.map((n) => new Uint8Array(randomBytes(n)));
    const script = `
      const a = require(${JSON.stringify(fileURLToPath(new URL('../../../build/Release/kubespand_datapath.node', import.meta.url)))});
      const hex = (u) => Buffer.from(u).toString('hex');
      const [key, priv, peer, ...plain] = JSON.parse(process.argv[1]).map((h) => new Uint8Array(Buffer.from(h, 'hex')));
      const h = a.aeadCreate(key);
      const sealed = plain.map((p, i) => { const b = new Uint8Array(p.length + 16); b.set(p); if (!a.aeadSeal(h, 1000 + i, b, 0, p.length)) throw new Error('seal'); return b; });
      const opened = sealed.map((b, i) => { const c = b.slice(); return a.aeadOpen(h, 1000 + i, c, 0, c.length - 16) ? hex(c.subarray(0, c.length - 16)) : null; });
      const bad = sealed.map((b, i) => { const c = b.slice(); c[c.length - 1] ^= 1; return a.aeadOpen(h, 1000 + i, c, 0, c.length - 16); });
      const dh = new Uint8Array(32), pub = new Uint8Array(32), low = new Uint8Array(32);
      a.x25519(priv, peer, dh); a.x25519(priv, null, pub); a.x25519(priv, new Uint8Array(32), low);
      process.stdout.write(JSON.stringify({ backends: a.backends(), sealed: sealed.map(hex), opened, bad, dh: hex(dh), pub: hex(pub), low: hex(low) }));`;
    const out = JSON.parse(
      execFileSync(process.execPath, ['-e', script, JSON.stringify([key, priv, peer, ...plain].map((u) => bytesToHex(u)))], {
        env: { ...process.env, KUBESPAND_LIBSODIUM: '0' },
        encoding: 'utf8',
      }),
    ) as { backends: { libsodium: string | null; why: string }; sealed: string[]; opened: (string | null)[]; bad: boolean[]; dh: string; pub: string; low: string };
    expect(out.backends.libsodium).toBeNull();
    expect(out.backends.why).toBe('disabled by KUBESPAND_LIBSODIUM=0');
    plain.forEach((p, i) => {
      expect(out.sealed[i], `size ${p.length}`).toBe(bytesToHex(nobleCrypto.aead(key).seal(1000 + i, p)));
      expect(out.opened[i]).toBe(bytesToHex(p));
      expect(out.bad[i]).toBe(false);
    });
    expect(out.dh).toBe(bytesToHex(nobleCrypto.dh(priv, peer)));
    expect(out.pub).toBe(bytesToHex(nobleCrypto.publicKey(priv)));
    expect(out.low).toBe('00'.repeat(32));
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
    expectX25519Agrees(nativeCrypto, nobleCrypto, 64);
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
