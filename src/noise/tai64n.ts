/**
 * TAI64N timestamps for handshake initiations, from the injected wall clock.
 *
 * Spec: ../shared/spec/wireguard.md §1. Bytes 0–7: big-endian 0x400000000000000a + Unix seconds;
 * bytes 8–11: big-endian nanoseconds with the low 24 bits cleared ("whitened", ≈ 16.8 ms steps,
 * so the timestamp does not leak the sender's fine-grained clock). Responders compare timestamps
 * as bytes; a replayed or older initiation is not after the last one seen.
 */
import { TAI64N_SIZE } from './constants.js';

const TAI64_BASE = 0x400000000000000an;
const WHITENER_MASK = 0xffffff;
const NS_PER_MS = 1_000_000;

/** The 12-byte TAI64N label of the Unix-epoch instant `wallMs` (milliseconds; fractions allowed). */
export function tai64n(wallMs: number): Uint8Array {
  if (!Number.isFinite(wallMs) || wallMs < 0) throw new RangeError(`tai64n: wall clock ${wallMs} ms is not a non-negative finite number`);
  // wallMs / 1000 can round up to the next whole second just below it, so fix the remainder up
  let seconds = Math.floor(wallMs / 1000);
  let remainderMs = wallMs - seconds * 1000; // exact
  if (remainderMs < 0) {
    seconds -= 1;
    remainderMs += 1000;
  } else if (remainderMs >= 1000) {
    seconds += 1;
    remainderMs -= 1000;
  }
  // round to the nearest nanosecond so binary fractions like 16.777216 do not lose a nanosecond
  // (and with it a whitening step) to 0.9999999
  let nanoseconds = Math.round(remainderMs * NS_PER_MS);
  if (nanoseconds > 999_999_999) nanoseconds = 999_999_999;
  nanoseconds -= nanoseconds & WHITENER_MASK; // whiten: clear the low 24 bits
  const out = new Uint8Array(TAI64N_SIZE);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, TAI64_BASE + BigInt(seconds), false);
  view.setUint32(8, nanoseconds, false);
  return out;
}

/** True when timestamp `a` is strictly after `b` (bytewise comparison, as wireguard-go and the kernel). */
export function tai64nAfter(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== TAI64N_SIZE || b.length !== TAI64N_SIZE) {
    throw new RangeError(`tai64nAfter: timestamps must be ${TAI64N_SIZE} bytes, got ${a.length} and ${b.length}`);
  }
  for (let i = 0; i < TAI64N_SIZE; i++) {
    if (a[i] !== b[i]) return a[i]! > b[i]!;
  }
  return false;
}
