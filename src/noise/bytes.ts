/**
 * Byte helpers for the sans-IO core: hex, concatenation, constant-time comparison and the
 * little-endian integers of the wire format.
 *
 * Counters are 64-bit on the wire but JavaScript numbers here (exact up to 2^53; see
 * REJECT_AFTER_MESSAGES in constants.ts). `readCounter` refuses values that would not be exact.
 */

const HEX_DIGITS = '0123456789abcdef';
const BYTE_TO_HEX: string[] = [];
for (let i = 0; i < 256; i++) BYTE_TO_HEX.push(HEX_DIGITS[i >>> 4]! + HEX_DIGITS[i & 15]!);

const TWO_POW_32 = 0x1_0000_0000;
/** Counters whose high 32-bit half reaches this are ≥ 2^53 and not exact JavaScript numbers. */
const COUNTER_HIGH_LIMIT = 1 << 21;

function hexNibble(code: number): number {
  if (code >= 48 && code <= 57) return code - 48; // 0-9
  if (code >= 97 && code <= 102) return code - 87; // a-f
  if (code >= 65 && code <= 70) return code - 55; // A-F
  return -1;
}

/**
 * Decodes hex (upper or lower case, even length, nothing else). The error names the position of
 * the first bad character but never echoes the text, which may be key material.
 */
export function hexToBytes(s: string): Uint8Array {
  if (s.length % 2 !== 0) throw new Error(`hex: odd length ${s.length}`);
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = hexNibble(s.charCodeAt(2 * i));
    const lo = hexNibble(s.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) throw new Error(`hex: invalid character at position ${hi < 0 ? 2 * i : 2 * i + 1}`);
    out[i] = (hi << 4) | lo;
  }
  return out;
}

/** Lowercase hex of `b`. */
export function bytesToHex(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += BYTE_TO_HEX[b[i]!]!;
  return s;
}

/** A new array holding `parts` back to back. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * True when `a` and `b` hold the same bytes. The loop always runs over the longer length and
 * never exits early, so the time depends only on the (public) lengths, not on the contents.
 * Arrays of different lengths are unequal.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  const n = a.length > b.length ? a.length : b.length;
  let diff = a.length ^ b.length;
  for (let i = 0; i < n; i++) {
    const x = i < a.length ? a[i]! : 0;
    const y = i < b.length ? b[i]! : 0;
    diff |= x ^ y;
  }
  return diff === 0;
}

/** True when every byte is zero (constant time over the length; empty counts as zero). */
export function isZero(b: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < b.length; i++) acc |= b[i]!;
  return acc === 0;
}

function checkRange(b: Uint8Array, off: number, size: number, what: string): void {
  if (!Number.isInteger(off) || off < 0 || off + size > b.length) {
    throw new RangeError(`${what}: offset ${off} out of range for ${size} bytes in a ${b.length}-byte array`);
  }
}

/** Unsigned 32-bit little-endian integer at `off`. */
export function readU32LE(b: Uint8Array, off: number): number {
  checkRange(b, off, 4, 'readU32LE');
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}

/** Writes the unsigned 32-bit integer `v` little-endian at `off`. */
export function writeU32LE(b: Uint8Array, off: number, v: number): void {
  checkRange(b, off, 4, 'writeU32LE');
  if (!Number.isInteger(v) || v < 0 || v >= TWO_POW_32) throw new RangeError(`writeU32LE: ${v} is not a u32`);
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
  b[off + 2] = (v >>> 16) & 0xff;
  b[off + 3] = (v >>> 24) & 0xff;
}

/**
 * The u64 little-endian counter at `off`, or null when its high half is ≥ 2^21 (the value would be
 * ≥ 2^53 and not an exact JavaScript number; such a counter is far beyond anything a 180-second
 * keypair can reach, so the caller drops the packet).
 */
export function readCounter(b: Uint8Array, off: number): number | null {
  checkRange(b, off, 8, 'readCounter');
  const lo = (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
  const hi = (b[off + 4]! | (b[off + 5]! << 8) | (b[off + 6]! << 16) | (b[off + 7]! << 24)) >>> 0;
  if (hi >= COUNTER_HIGH_LIMIT) return null;
  return hi * TWO_POW_32 + lo;
}

/** Writes the safe non-negative integer `n` as a u64 little-endian at `off`. */
export function writeCounter(b: Uint8Array, off: number, n: number): void {
  checkRange(b, off, 8, 'writeCounter');
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`writeCounter: ${n} is not a safe non-negative integer`);
  const lo = n >>> 0; // low 32 bits (ToUint32 is exact modulo 2^32 for safe integers)
  const hi = Math.floor(n / TWO_POW_32);
  b[off] = lo & 0xff;
  b[off + 1] = (lo >>> 8) & 0xff;
  b[off + 2] = (lo >>> 16) & 0xff;
  b[off + 3] = (lo >>> 24) & 0xff;
  b[off + 4] = hi & 0xff;
  b[off + 5] = (hi >>> 8) & 0xff;
  b[off + 6] = (hi >>> 16) & 0xff;
  b[off + 7] = (hi >>> 24) & 0xff;
}
