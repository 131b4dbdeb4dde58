/**
 * Known-answer vectors (spec §13.1, §13.2, §13.3) run against both crypto providers. The vectors live
 * in test/vectors/*.json; see the "source" field of each file.
 */
import { readFileSync } from 'node:fs';
import { createCipheriv } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { blake2s } from '@noble/hashes/blake2.js';
import { chacha20poly1305, hchacha } from '@noble/ciphers/chacha.js';
import { bytesToHex, concatBytes, hexToBytes } from '../../../src/noise/bytes.js';
import { kdf1, kdf2, kdf3, type CryptoProvider } from '../../../src/noise/crypto.js';
import { nodeCrypto } from '../../../src/noise/crypto-node.js';
import { nobleCrypto } from '../../../src/noise/crypto-noble.js';
import { LABEL_COOKIE, LABEL_MAC1 } from '../../../src/noise/constants.js';

const primitives = JSON.parse(readFileSync(new URL('../../vectors/primitives.json', import.meta.url), 'utf8'));
const kat = JSON.parse(readFileSync(new URL('../../vectors/wireguard-kat.json', import.meta.url), 'utf8'));

const h = hexToBytes;
const ascii = (s: string) => new TextEncoder().encode(s);
const EMPTY = new Uint8Array(0);

describe('library-level vectors (no provider method covers these)', () => {
  it('keyed BLAKE2s-256 (official blake2s KAT) via @noble/hashes', () => {
    for (const v of primitives.keyedBlake2s256) {
      expect(bytesToHex(blake2s(h(v.msg), { key: h(v.key) }))).toBe(v.digest);
    }
  });

  it('keyed BLAKE2s-128 is not a truncation of the 256-bit digest', () => {
    const v = primitives.mac[0];
    const full = bytesToHex(blake2s(h(v.msg), { key: h(v.key) }));
    expect(full.slice(0, 32)).not.toBe(v.mac);
  });

  it('HChaCha20 (draft-irtf-cfrg-xchacha-03 §2.2.1) via @noble/ciphers hchacha', () => {
    const v = primitives.hchacha20;
    const words = (b: Uint8Array) => new Uint32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
    const sigma = words(ascii('expand 32-byte k'));
    const out = new Uint32Array(8);
    hchacha(sigma, words(h(v.key)), words(h(v.input)), out);
    expect(bytesToHex(new Uint8Array(out.buffer))).toBe(v.subkey);
  });

  it('ChaCha20-Poly1305 RFC 8439 §2.8.2 with its non-zero nonce prefix, node and noble', () => {
    // the providers fix the first nonce word to zero, so the RFC vector runs on the libraries
    const v = primitives.chacha20poly1305;
    const c = createCipheriv('chacha20-poly1305', h(v.key), h(v.nonce), { authTagLength: 16 });
    c.setAAD(h(v.aad), { plaintextLength: v.plaintext.length / 2 });
    const body = c.update(h(v.plaintext));
    c.final();
    expect(bytesToHex(body).startsWith(v.ciphertextPrefix)).toBe(true);
    expect(bytesToHex(c.getAuthTag())).toBe(v.tag);
    const noble = chacha20poly1305(h(v.key), h(v.nonce), h(v.aad)).encrypt(h(v.plaintext));
    expect(bytesToHex(noble)).toBe(bytesToHex(body) + v.tag);
  });
});

describe.each([nodeCrypto, nobleCrypto] as CryptoProvider[])('$name provider: primitive vectors', (c) => {
  it('hash = BLAKE2s-256', () => {
    for (const v of primitives.blake2s256) expect(bytesToHex(c.hash(h(v.msg)))).toBe(v.digest);
    // parts are concatenated
    expect(bytesToHex(c.hash(ascii('a'), EMPTY, ascii('bc')))).toBe(primitives.blake2s256[1].digest);
    expect(bytesToHex(c.hash())).toBe(primitives.blake2s256[0].digest);
  });

  it('mac = keyed BLAKE2s with a 16-byte digest', () => {
    for (const v of primitives.mac) {
      const out = c.mac(h(v.key), h(v.msg));
      expect(out.length).toBe(16);
      expect(bytesToHex(out)).toBe(v.mac);
    }
  });

  it('hmac = HMAC-BLAKE2s', () => {
    for (const v of primitives.hmac) expect(bytesToHex(c.hmac(h(v.key), h(v.msg)))).toBe(v.mac);
  });

  it('KDF1/KDF2/KDF3 (wireguard-go kdf_test.go vectors)', () => {
    for (const v of primitives.kdf) {
      const key = h(v.key);
      const input = h(v.input);
      expect(bytesToHex(kdf1(c, key, input))).toBe(v.t1);
      expect(kdf2(c, key, input).map(bytesToHex)).toEqual([v.t1, v.t2]);
      expect(kdf3(c, key, input).map(bytesToHex)).toEqual([v.t1, v.t2, v.t3]);
    }
  });

  it('X25519 RFC 7748 §5.2 (unclamped scalars, u with the top bit set)', () => {
    for (const v of primitives.x25519) expect(bytesToHex(c.dh(h(v.scalar), h(v.u)))).toBe(v.out);
  });

  it('X25519 RFC 7748 §6.1 Diffie-Hellman', () => {
    const v = primitives.x25519DiffieHellman;
    expect(bytesToHex(c.publicKey(h(v.alicePrivate)))).toBe(v.alicePublic);
    expect(bytesToHex(c.publicKey(h(v.bobPrivate)))).toBe(v.bobPublic);
    expect(bytesToHex(c.dh(h(v.alicePrivate), h(v.bobPublic)))).toBe(v.shared);
    expect(bytesToHex(c.dh(h(v.bobPrivate), h(v.alicePublic)))).toBe(v.shared);
  });

  it('low-order public keys give the all-zero shared secret', () => {
    const priv = h(primitives.x25519DiffieHellman.alicePrivate);
    for (const point of primitives.lowOrderPoints as string[]) {
      expect(bytesToHex(c.dh(priv, h(point))), point).toBe('00'.repeat(32));
    }
  });

  it('XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03 §A.3.1): seal and open', () => {
    const v = primitives.xchacha20poly1305;
    const sealed = c.xseal(h(v.key), h(v.nonce), h(v.plaintext), h(v.aad));
    const hex = bytesToHex(sealed);
    expect(sealed.length).toBe(v.plaintext.length / 2 + 16);
    expect(hex.startsWith(v.ciphertextPrefix)).toBe(true);
    expect(hex.endsWith(v.tag)).toBe(true);
    expect(bytesToHex(c.xopen(h(v.key), h(v.nonce), sealed, h(v.aad))!)).toBe(v.plaintext);
    expect(c.xopen(h(v.key), h(v.nonce), sealed, EMPTY)).toBeNull();
  });

  it('wrong key sizes are refused', () => {
    expect(() => c.dh(new Uint8Array(31), new Uint8Array(32))).toThrow(/dh private key: must be 32 bytes, got 31/);
    expect(() => c.dh(new Uint8Array(32), new Uint8Array(33))).toThrow(/dh public key: must be 32 bytes, got 33/);
    expect(() => c.publicKey(new Uint8Array(16))).toThrow(/private key: must be 32 bytes/);
    expect(() => c.aead(new Uint8Array(16))).toThrow(/aead key: must be 32 bytes/);
  });
});

describe.each([nodeCrypto, nobleCrypto] as CryptoProvider[])('$name provider: WireGuard vectors (spec §13.2, §13.3)', (c) => {
  it('Ci = HASH(CONSTRUCTION), Hi = HASH(Ci ‖ IDENTIFIER)', () => {
    const ci = c.hash(h(kat.construction));
    expect(bytesToHex(ci)).toBe(kat.initialChainKey);
    expect(bytesToHex(c.hash(ci, h(kat.identifier)))).toBe(kat.initialHash);
  });

  it('public keys of the KAT private keys', () => {
    for (const k of kat.keys) expect(bytesToHex(c.publicKey(h(k.private))), k.name).toBe(k.public);
  });

  it('mac1 key, cookie key, mac1 of the initiation and of the response', () => {
    const rPub = h(kat.keys[1].public);
    const iPub = h(kat.keys[0].public);
    const mac1Key = c.hash(ascii(LABEL_MAC1), rPub);
    expect(bytesToHex(mac1Key)).toBe(kat.mac1KeyResponder);
    expect(bytesToHex(c.hash(ascii(LABEL_COOKIE), rPub))).toBe(kat.cookieKeyResponder);
    const init = h(kat.initiation);
    expect(bytesToHex(c.mac(mac1Key, init.subarray(0, 116)))).toBe(bytesToHex(init.subarray(116, 132)));
    const resp = h(kat.response);
    expect(bytesToHex(c.mac(c.hash(ascii(LABEL_MAC1), iPub), resp.subarray(0, 60)))).toBe(bytesToHex(resp.subarray(60, 76)));
  });

  it('cookie, cookie reply (XChaCha20-Poly1305, AD = mac1) and mac2', () => {
    const v = kat.cookie;
    const cookie = c.mac(h(v.secret), h(v.source));
    expect(bytesToHex(cookie)).toBe(v.cookie);
    const init = h(kat.initiation);
    const mac1 = init.subarray(116, 132);
    const sealed = c.xseal(h(kat.cookieKeyResponder), h(v.replyNonce), cookie, mac1);
    expect(bytesToHex(sealed)).toBe(v.replySealed);
    expect(bytesToHex(c.xopen(h(kat.cookieKeyResponder), h(v.replyNonce), sealed, mac1)!)).toBe(v.cookie);
    expect(bytesToHex(c.mac(cookie, init.subarray(0, 132)))).toBe(v.mac2);
  });

  it('transport: keepalive and data at counter 0 (one-shot and prepared key)', () => {
    const t = kat.transport;
    expect(bytesToHex(c.seal(h(t.t1), 0, EMPTY, EMPTY))).toBe(t.keepaliveTag);
    expect(bytesToHex(c.aead(h(t.t1)).seal(0, EMPTY))).toBe(t.keepaliveTag);
    expect(bytesToHex(c.seal(h(t.t2), 0, h(t.dataPlaintext), EMPTY))).toBe(t.dataSealed);
    expect(bytesToHex(c.aead(h(t.t2)).seal(0, h(t.dataPlaintext)))).toBe(t.dataSealed);
    expect(bytesToHex(c.open(h(t.t2), 0, h(t.dataSealed), EMPTY)!)).toBe(t.dataPlaintext);
    expect(bytesToHex(c.aead(h(t.t2)).open(0, h(t.dataSealed))!)).toBe(t.dataPlaintext);
    expect(c.aead(h(t.t2)).open(1, h(t.dataSealed))).toBeNull(); // wrong counter
    expect(c.open(h(t.t1), 0, h(t.dataSealed), EMPTY)).toBeNull(); // wrong key
    const psk = kat.transportWithPsk;
    expect(bytesToHex(c.seal(h(psk.t1), 0, EMPTY, EMPTY))).toBe(psk.keepaliveTag);
  });
});

describe('spec §13.3 inputs are self-consistent', () => {
  it('the initiation and response carry the KAT ephemerals', () => {
    expect(bytesToHex(h(kat.initiation).subarray(8, 40))).toBe(kat.keys[2].public);
    expect(bytesToHex(h(kat.response).subarray(12, 44))).toBe(kat.keys[3].public);
    expect(concatBytes(h(kat.initiation)).length).toBe(148);
    expect(h(kat.response).length).toBe(92);
  });
});
