/**
 * X25519 of a provider against the reference on random keys: public keys, both sides' shared secret,
 * unclamped scalars, arbitrary u (top bit set or not), and the non-canonical u values 2^255-19..2^255-1
 * (with the top bit cleared) that RFC 7748 says to reduce. One check for every provider.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import { bytesToHex as hex } from '../../src/noise/bytes.js';
import type { CryptoProvider } from '../../src/noise/crypto.js';

const rand = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

export function expectX25519Agrees(p: CryptoProvider, reference: CryptoProvider, rounds: number): void {
  for (let i = 0; i < rounds; i++) {
    const a = rand(32);
    const b = rand(32);
    const pubA = p.publicKey(a);
    expect(hex(pubA)).toBe(hex(reference.publicKey(a)));
    const pubB = reference.publicKey(b);
    const shared = p.dh(a, pubB);
    expect(hex(shared)).toBe(hex(reference.dh(a, pubB)));
    expect(hex(shared)).toBe(hex(reference.dh(b, pubA)));
    const u = rand(32);
    expect(hex(p.dh(a, u))).toBe(hex(reference.dh(a, u)));
  }
  for (const low of [0xed, 0xee, 0xef, 0xff]) {
    const a = rand(32);
    const u = new Uint8Array(32).fill(0xff);
    u[0] = low;
    u[31] = 0x7f;
    expect(hex(p.dh(a, u)), `u low byte ${low}`).toBe(hex(reference.dh(a, u)));
  }
}
