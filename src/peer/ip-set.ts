/**
 * A set of IP addresses as sorted, merged ranges per family, with the operations the peer-spec
 * builder needs: union, difference, overlap test, and the minimal CIDR cover (Talos builds peers'
 * allowed IPs with netipx.IPSetBuilder the same way).
 */
import { formatIp, parsePrefix, type Prefix } from '../noise/allowed-ips.js';

type Range = [bigint, bigint]; // inclusive

function toBig(bytes: Uint8Array): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

function fromBig(v: bigint, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function prefixRange(p: Prefix): Range {
  const bits = p.address.length * 8;
  const start = toBig(p.address) & ~((1n << BigInt(bits - p.bits)) - 1n);
  return [start, start + (1n << BigInt(bits - p.bits)) - 1n];
}

function normalise(ranges: Range[]): Range[] {
  const sorted = [...ranges].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: Range[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r[0] <= last[1] + 1n) {
      if (r[1] > last[1]) last[1] = r[1];
    } else out.push([r[0], r[1]]);
  }
  return out;
}

/** Union of two normalised lists in one linear merge. */
function mergeNormalised(a: Range[], b: Range[]): Range[] {
  const out: Range[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const next = j >= b.length || (i < a.length && a[i]![0] <= b[j]![0]) ? a[i++]! : b[j++]!;
    const last = out[out.length - 1];
    if (last && next[0] <= last[1] + 1n) {
      if (next[1] > last[1]) last[1] = next[1];
    } else out.push([next[0], next[1]]);
  }
  return out;
}

function subtract(a: Range[], b: Range[]): Range[] {
  const out: Range[] = [];
  for (const [s0, e0] of a) {
    let pieces: Range[] = [[s0, e0]];
    for (const [s1, e1] of b) {
      const next: Range[] = [];
      for (const [s, e] of pieces) {
        if (e1 < s || s1 > e) {
          next.push([s, e]);
          continue;
        }
        if (s1 > s) next.push([s, s1 - 1n]);
        if (e1 < e) next.push([e1 + 1n, e]);
      }
      pieces = next;
    }
    out.push(...pieces);
  }
  return out;
}

/** Both lists are sorted and merged: walk them together (linear, not quadratic). */
function intersect(a: Range[], b: Range[], firstOnly = false): Range[] {
  const out: Range[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const [s0, e0] = a[i]!;
    const [s1, e1] = b[j]!;
    if (s0 <= e1 && s1 <= e0) {
      out.push([s0 > s1 ? s0 : s1, e0 < e1 ? e0 : e1]);
      if (firstOnly) return out;
    }
    if (e0 < e1) i++;
    else j++;
  }
  return out;
}

function intersects(a: Range[], b: Range[]): boolean {
  return intersect(a, b, true).length > 0;
}

/** Minimal list of CIDR blocks exactly covering a range. */
function rangeToPrefixes([start, end]: Range, len: number): Prefix[] {
  const bits = len * 8;
  const out: Prefix[] = [];
  let cur = start;
  while (cur <= end) {
    // largest block aligned at cur that fits in [cur, end]
    let size = 0;
    while (size < bits) {
      const next = size + 1;
      const blockMask = (1n << BigInt(next)) - 1n;
      if ((cur & blockMask) !== 0n) break;
      if (cur + blockMask > end) break;
      size = next;
    }
    out.push({ address: fromBig(cur, len), bits: bits - size });
    cur += 1n << BigInt(size);
  }
  return out;
}

export class IpSet {
  private v4: Range[] = [];
  private v6: Range[] = [];

  static of(prefixes: (Prefix | string)[]): IpSet {
    const s = new IpSet();
    for (const p of prefixes) s.add(p);
    return s;
  }

  add(prefix: Prefix | string): this {
    const p = typeof prefix === 'string' ? parsePrefix(prefix) : prefix;
    if (p.address.length === 4) this.v4 = mergeNormalised(this.v4, [prefixRange(p)]);
    else this.v6 = mergeNormalised(this.v6, [prefixRange(p)]);
    return this;
  }

  addSet(other: IpSet): this {
    this.v4 = mergeNormalised(this.v4, other.v4);
    this.v6 = mergeNormalised(this.v6, other.v6);
    return this;
  }

  removeSet(other: IpSet): this {
    this.v4 = subtract(this.v4, other.v4);
    this.v6 = subtract(this.v6, other.v6);
    return this;
  }

  overlaps(other: IpSet): boolean {
    return intersects(this.v4, other.v4) || intersects(this.v6, other.v6);
  }

  intersection(other: IpSet): IpSet {
    const s = new IpSet();
    s.v4 = intersect(this.v4, other.v4);
    s.v6 = intersect(this.v6, other.v6);
    return s;
  }

  /** The merged ranges, IPv4 then IPv6, tagged by family (read-only; for sweeps over many sets). */
  ranges(): { family: 4 | 6; start: bigint; end: bigint }[] {
    return [...this.v4.map(([start, end]) => ({ family: 4 as const, start, end })), ...this.v6.map(([start, end]) => ({ family: 6 as const, start, end }))];
  }

  get isEmpty(): boolean {
    return this.v4.length === 0 && this.v6.length === 0;
  }

  /** The minimal CIDR cover, IPv4 first, each family in address order. */
  prefixes(): Prefix[] {
    return [...this.v4.flatMap((r) => rangeToPrefixes(r, 4)), ...this.v6.flatMap((r) => rangeToPrefixes(r, 16))];
  }

  cidrs(): string[] {
    return this.prefixes().map((p) => `${formatIp(p.address)}/${p.bits}`);
  }

  clone(): IpSet {
    const s = new IpSet();
    s.v4 = this.v4.map((r) => [r[0], r[1]] as Range);
    s.v6 = this.v6.map((r) => [r[0], r[1]] as Range);
    return s;
  }
}
