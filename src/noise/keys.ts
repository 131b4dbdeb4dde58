/**
 * Curve25519 keys and preshared keys: branded types, parsing (base64 as `wg` prints it, hex as the
 * UAPI carries it), clamping and the `peer(abcd…wxyz)` tag used in logs.
 *
 * Spec: ../shared/spec/wireguard.md §1 (clamping), §11 (UAPI keys are lowercase hex).
 *
 * Secrets stay out of logs by construction: private and preshared keys made here answer
 * `JSON.stringify` and `util.inspect` with a redaction marker instead of their bytes. Error
 * messages about keys name the field and the problem, never the text.
 */
import { KEY_SIZE } from './constants.js';
import type { Random } from './clock.js';

export type PrivateKey = Uint8Array & { readonly __brand: 'PrivateKey' };
export type PublicKey = Uint8Array & { readonly __brand: 'PublicKey' };
export type PresharedKey = Uint8Array & { readonly __brand: 'PresharedKey' };

const INSPECT = Symbol.for('nodejs.util.inspect.custom');

/** Makes `k` print as `[label redacted]` in JSON and in util.inspect / console.log. */
function redact<T extends Uint8Array>(k: T, label: string): T {
  const marker = `[${label} redacted]`;
  Object.defineProperty(k, 'toJSON', { value: () => marker, enumerable: false });
  Object.defineProperty(k, INSPECT, { value: () => marker, enumerable: false });
  return k;
}

function checkLength(k: Uint8Array, field: string): void {
  if (k.length !== KEY_SIZE) throw new Error(`${field}: must be ${KEY_SIZE} bytes, got ${k.length}`);
}

/** A clamped copy of `k`: byte0 &= 248; byte31 = (byte31 & 127) | 64. */
export function clampPrivateKey(k: Uint8Array): PrivateKey {
  checkLength(k, 'private key');
  const out = new Uint8Array(k);
  out[0] = out[0]! & 248;
  out[31] = (out[31]! & 127) | 64;
  return redact(out, 'PrivateKey') as PrivateKey;
}

/** A fresh clamped private key from `random`. */
export function generatePrivateKey(random: Random): PrivateKey {
  const raw = random.fill(new Uint8Array(KEY_SIZE));
  const key = clampPrivateKey(raw);
  raw.fill(0);
  return key;
}

/** Brands 32 bytes as a public key (no copy). */
export function asPublicKey(k: Uint8Array, field = 'public key'): PublicKey {
  checkLength(k, field);
  return k as PublicKey;
}

/** Brands a redacted copy of 32 bytes as a preshared key. */
export function asPresharedKey(k: Uint8Array, field = 'preshared key'): PresharedKey {
  checkLength(k, field);
  return redact(new Uint8Array(k), 'PresharedKey') as PresharedKey;
}

/** The all-zero preshared key a peer uses when none is configured (spec §3). */
export function zeroPresharedKey(): PresharedKey {
  return asPresharedKey(new Uint8Array(KEY_SIZE));
}

/**
 * 44 characters of standard base64 ending in one '=', whose last data character leaves the two
 * spare bits zero: exactly the strings `wg` accepts and the only encodings of 32 bytes.
 */
const KEY_BASE64 = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
const KEY_HEX = /^[0-9a-fA-F]{64}$/;

/**
 * Decodes a key written as `wg genkey` prints it. Throws an Error naming `field` and the problem;
 * the text itself is never echoed (it may be a private key).
 */
export function keyFromBase64(s: string, field: string): Uint8Array {
  if (typeof s !== 'string') throw new Error(`${field}: must be a base64 string`);
  if (s.length !== 44) throw new Error(`${field}: must be 44 characters of base64, got ${s.length} characters`);
  if (!KEY_BASE64.test(s)) throw new Error(`${field}: is not a canonical base64 encoding of 32 bytes`);
  const out = new Uint8Array(Buffer.from(s, 'base64'));
  if (out.length !== KEY_SIZE) throw new Error(`${field}: does not decode to ${KEY_SIZE} bytes`);
  return out;
}

/** Decodes 64 hex characters (either case), as the UAPI carries keys. Never echoes the text. */
export function keyFromHex(s: string, field: string): Uint8Array {
  if (typeof s !== 'string') throw new Error(`${field}: must be a hex string`);
  if (s.length !== 64) throw new Error(`${field}: must be 64 hex characters, got ${s.length} characters`);
  if (!KEY_HEX.test(s)) throw new Error(`${field}: contains a character that is not hex`);
  return new Uint8Array(Buffer.from(s, 'hex'));
}

/** Standard base64 with padding (44 characters for a key). */
export function keyToBase64(k: Uint8Array): string {
  return Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('base64');
}

/** Lowercase hex (64 characters for a key). */
export function keyToHex(k: Uint8Array): string {
  return Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('hex');
}

/** `peer(abcd…wxyz)`: the first and last four base64 characters, as wireguard-go's Peer.String. */
export function peerTag(publicKey: Uint8Array): string {
  const b64 = keyToBase64(publicKey);
  return `peer(${b64.slice(0, 4)}…${b64.slice(39, 43)})`;
}
