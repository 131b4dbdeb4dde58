/**
 * Byte mutations for fuzzing: a plan is generated independently of the bytes it will be applied to
 * (positions are taken modulo the length), so one arbitrary serves any corpus entry.
 */
import fc from 'fast-check';

export type Mutation =
  | { kind: 'flip'; positions: number[]; bits: number[] }
  | { kind: 'truncate'; keep: number }
  | { kind: 'extend'; tail: Uint8Array }
  | { kind: 'overwrite'; at: number; bytes: Uint8Array }
  | { kind: 'set-byte'; at: number; value: number }
  | { kind: 'none' };

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('flip' as const), positions: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), bits: fc.array(fc.integer({ min: 0, max: 7 }), { minLength: 4, maxLength: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), keep: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('extend' as const), tail: fc.uint8Array({ minLength: 1, maxLength: 64 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('overwrite' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 32 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('set-byte' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }) },
);

/**
 * Applies `m` to a copy of `base`. The result always differs from `base` except for `none` and
 * for overwrites/set-byte that happen to write the same bytes (callers that need a real change check
 * `changed`).
 */
export function applyMutation(base: Uint8Array, m: Mutation): Uint8Array {
  switch (m.kind) {
    case 'none':
      return base.slice();
    case 'flip': {
      const out = base.slice();
      if (out.length === 0) return Uint8Array.of(1 << (m.bits[0] ?? 0));
      m.positions.forEach((p, i) => {
        const at = p % out.length;
        out[at] = out[at]! ^ (1 << (m.bits[i % m.bits.length] ?? 0));
      });
      return out;
    }
    case 'truncate':
      return base.length === 0 ? base.slice() : base.slice(0, m.keep % base.length);
    case 'extend': {
      const out = new Uint8Array(base.length + m.tail.length);
      out.set(base, 0);
      out.set(m.tail, base.length);
      return out;
    }
    case 'overwrite': {
      const out = base.slice();
      if (out.length === 0) return m.bytes.slice();
      const at = m.at % out.length;
      out.set(m.bytes.subarray(0, out.length - at), at);
      return out;
    }
    case 'set-byte': {
      const out = base.slice();
      if (out.length === 0) return Uint8Array.of(m.value);
      out[m.at % out.length] = m.value;
      return out;
    }
  }
}

/** True when `a` and `b` hold different bytes. */
export function changed(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return true;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return true;
  return false;
}

/** Splits `bytes` into chunks at the given cut points (taken modulo the length, sorted, deduplicated). */
export function chunk(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  if (bytes.length === 0) return [bytes];
  const points = [...new Set(cuts.map((c) => c % bytes.length))].filter((c) => c > 0).sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let start = 0;
  for (const p of points) {
    out.push(bytes.subarray(start, p));
    start = p;
  }
  out.push(bytes.subarray(start));
  return out;
}
