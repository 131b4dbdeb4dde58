import { KEY_SIZE } from './constants.js';
/**
 * The cryptographic primitives WireGuard needs, behind one interface so the protocol core can run
 * on `node:crypto` (fast) or on @noble/tweetnacl (the pure-JS reference), and so the two can be
 * cross-tested. The KDF chain (HKDF over HMAC-BLAKE2s) is built here on top of `hmac`.
 *
 * Spec: ../shared/spec/wireguard.md §1.
 */

/** A ChaCha20-Poly1305 key prepared once (for a transport keypair) and used for many packets. */
export interface Aead {
  /** Encrypts with nonce = 4 zero bytes ‖ counter (u64 LE). Returns ciphertext ‖ 16-byte tag. */
  seal(counter: number, plaintext: Uint8Array, ad?: Uint8Array): Uint8Array;
  /** Opens ciphertext ‖ tag; returns the plaintext or null when authentication fails. */
  open(counter: number, ciphertext: Uint8Array, ad?: Uint8Array): Uint8Array | null;
  /**
   * Optional fast path (empty AD): encrypts buf[off, off+len) in place and writes the tag at
   * buf[off+len, off+len+16). Providers without it get the copying fallback of aeadSealInPlace.
   */
  sealInPlace?(counter: number, buf: Uint8Array, off: number, len: number): boolean;
  /** Optional fast path (empty AD): opens buf[off, off+len) with the tag after it, in place; false on failure. */
  openInPlace?(counter: number, buf: Uint8Array, off: number, len: number): boolean;
}

/** Seals buf[off, off+len) in place (tag written after it), with the provider's fast path when it has one. */
export function aeadSealInPlace(aead: Aead, counter: number, buf: Uint8Array, off: number, len: number): void {
  if (aead.sealInPlace) {
    if (!aead.sealInPlace(counter, buf, off, len)) throw new Error('AEAD seal failed');
    return;
  }
  buf.set(aead.seal(counter, buf.subarray(off, off + len)), off);
}

/** Opens buf[off, off+len) + tag in place; on success the plaintext is buf[off, off+len). */
export function aeadOpenInPlace(aead: Aead, counter: number, buf: Uint8Array, off: number, len: number): boolean {
  if (aead.openInPlace) return aead.openInPlace(counter, buf, off, len);
  const plaintext = aead.open(counter, buf.subarray(off, off + len + 16));
  if (!plaintext) return false;
  buf.set(plaintext, off);
  return true;
}

/** Throws unless `k` is a 32-byte key; `what` names it in the message (never the key itself). */
export function checkKey(k: Uint8Array, what: string): void {
  if (k.length !== KEY_SIZE) throw new Error(`${what}: must be ${KEY_SIZE} bytes, got ${k.length}`);
}

export interface CryptoProvider {
  readonly name: string;
  /** Unkeyed BLAKE2s-256 of the concatenation of `parts`. */
  hash(...parts: Uint8Array[]): Uint8Array;
  /** Keyed BLAKE2s with a 16-byte digest (the digest length is in the parameter block; not a truncation). */
  mac(key: Uint8Array, data: Uint8Array): Uint8Array;
  /** RFC 2104 HMAC over unkeyed BLAKE2s-256 (block size 64), 32-byte output. */
  hmac(key: Uint8Array, data: Uint8Array): Uint8Array;
  /** X25519(privateKey, publicKey). Returns 32 bytes; the caller rejects an all-zero result. */
  dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array;
  /** X25519 public key of a (clamped) private key. */
  publicKey(privateKey: Uint8Array): Uint8Array;
  /** One-shot ChaCha20-Poly1305 seal, nonce = 4 zero bytes ‖ counter (u64 LE). */
  seal(key: Uint8Array, counter: number, plaintext: Uint8Array, ad: Uint8Array): Uint8Array;
  /** One-shot ChaCha20-Poly1305 open; null on authentication failure. */
  open(key: Uint8Array, counter: number, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array | null;
  /** XChaCha20-Poly1305 seal with a 24-byte nonce (cookie replies only). */
  xseal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array;
  /** XChaCha20-Poly1305 open; null on authentication failure. */
  xopen(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array | null;
  /** A prepared transport key for many packets. */
  aead(key: Uint8Array): Aead;
}

const ONE = Uint8Array.of(1);

function concat2(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** KDF1(key, input) = T1. */
export function kdf1(c: CryptoProvider, key: Uint8Array, input: Uint8Array): Uint8Array {
  const prk = c.hmac(key, input);
  return c.hmac(prk, ONE);
}

/** KDF2(key, input) = (T1, T2). */
export function kdf2(c: CryptoProvider, key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array] {
  const prk = c.hmac(key, input);
  const t1 = c.hmac(prk, ONE);
  const t2 = c.hmac(prk, concat2(t1, Uint8Array.of(2)));
  return [t1, t2];
}

/** KDF3(key, input) = (T1, T2, T3). */
export function kdf3(c: CryptoProvider, key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] {
  const prk = c.hmac(key, input);
  const t1 = c.hmac(prk, ONE);
  const t2 = c.hmac(prk, concat2(t1, Uint8Array.of(2)));
  const t3 = c.hmac(prk, concat2(t2, Uint8Array.of(3)));
  return [t1, t2, t3];
}
