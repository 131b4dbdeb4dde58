import { isIPv6 } from 'node:net';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  AllowedIps,
  allowedIpsTesting,
  formatIp,
  formatPrefix,
  maskPrefix,
  parseIp,
  parsePrefix,
  type Prefix,
} from '../../../src/noise/allowed-ips.js';

const p = (text: string) => parsePrefix(text);
const ip = (text: string) => parseIp(text);
const list = (t: AllowedIps<string>, peer: string) => t.entriesForPeer(peer).map(formatPrefix);

describe('parseIp / formatIp', () => {
  it.each([
    ['0.0.0.0', '0.0.0.0'],
    ['10.1.2.3', '10.1.2.3'],
    ['255.255.255.255', '255.255.255.255'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['FD00::A:0:0:1', 'fd00::a:0:0:1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // first of two equal runs
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not compressed
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'], // the longer run wins
    ['::ffff:1.2.3.4', '::ffff:1.2.3.4'], // IPv4-mapped stays IPv6
    ['::FFFF:0102:0304', '::ffff:1.2.3.4'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
  ])('%s → %s', (text, canonical) => {
    const bytes = ip(text);
    expect(bytes.length).toBe(text.includes(':') ? 16 : 4);
    expect(formatIp(bytes)).toBe(canonical);
    expect(formatIp(ip(canonical))).toBe(canonical);
  });

  it.each([
    ['', /IP address is empty/],
    ['1.2.3', /four dot-separated/],
    ['1.2.3.4.5', /four dot-separated/],
    ['1.2.3.256', /exceeds 255/],
    ['1.2.3.04', /leading zero/],
    ['1.2.3.-4', /not a decimal number/],
    ['1.2.3.4 ', /not a decimal number/],
    ['0x1.2.3.4', /not a decimal number/],
    ['1:2:3:4:5:6:7', /needs 8 groups, got 7/],
    ['1:2:3:4:5:6:7:8:9', /needs 8 groups, got 9/],
    ['1::2::3', /only once/],
    ['1:2:3:4::5:6:7:8', /at least one zero group/],
    ['12345::', /not 1–4 hex digits/],
    ['g::', /not 1–4 hex digits/],
    [':1:2:3:4:5:6:7', /empty group/],
    ['1:2:3:4:5:6:7:', /empty group/],
    ['fe80::1%eth0', /zone/],
    ['1.2.3.4::', /must come last/],
    ['::1.2.3.4:5', /must come last/],
  ])('rejects %j', (text, problem) => {
    expect(() => parseIp(text, 'endpoint')).toThrow(problem);
    expect(() => parseIp(text, 'endpoint')).toThrow(/^endpoint: /);
  });

  it('every IPv6 formatting is accepted by node:net and re-parses to the same bytes', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 }), (words) => {
        const bytes = new Uint8Array(16);
        words.forEach((w, i) => {
          bytes[2 * i] = w >> 8;
          bytes[2 * i + 1] = w & 0xff;
        });
        const text = formatIp(bytes);
        return isIPv6(text) && Buffer.from(parseIp(text)).equals(Buffer.from(bytes)) && text === text.toLowerCase() && !/(^|:)0[0-9a-f]/.test(text);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('parsePrefix / formatPrefix', () => {
  it('parses CIDR and bare addresses, masking host bits', () => {
    expect(formatPrefix(p('10.1.2.3/8'))).toBe('10.0.0.0/8');
    expect(formatPrefix(p('10.1.2.3'))).toBe('10.1.2.3/32');
    expect(formatPrefix(p('10.1.2.3/0'))).toBe('0.0.0.0/0');
    expect(formatPrefix(p('10.1.255.3/23'))).toBe('10.1.254.0/23');
    expect(formatPrefix(p('fd00::1/64'))).toBe('fd00::/64');
    expect(formatPrefix(p('fd00:1:2:3:4:5:6:7'))).toBe('fd00:1:2:3:4:5:6:7/128');
    expect(formatPrefix(p('fd00:ffff::/17'))).toBe('fd00:8000::/17');
    expect(formatPrefix(p('::/0'))).toBe('::/0');
  });

  it.each([
    ['10.0.0.0/33', /prefix length 33 exceeds 32/],
    ['fd00::/129', /prefix length 129 exceeds 128/],
    ['10.0.0.0/', /is not a decimal number/],
    ['10.0.0.0/08', /without leading zeros/],
    ['10.0.0.0/+8', /is not a decimal number/],
    ['10.0.0.0/8/8', /is not a decimal number/],
    ['10.0.0/8', /four dot-separated/],
    ['bogus', /IPv4 needs four/],
  ])('rejects %j naming the field and the value', (text, problem) => {
    expect(() => parsePrefix(text, 'allowed_ip')).toThrow(problem);
    expect(() => parsePrefix(text, 'allowed_ip')).toThrow(/^allowed_ip: /);
    expect(() => parsePrefix(text, 'allowed_ip')).toThrow(JSON.stringify(text));
  });

  it('maskPrefix validates', () => {
    expect(() => maskPrefix({ address: new Uint8Array(5), bits: 0 })).toThrow(/4 or 16 bytes, got 5/);
    expect(() => maskPrefix({ address: new Uint8Array(4), bits: 33 })).toThrow(/out of range 0–32/);
    expect(() => maskPrefix({ address: new Uint8Array(4), bits: 1.5 })).toThrow(/out of range/);
  });
});

describe('AllowedIps semantics', () => {
  it('longest prefix wins, per family', () => {
    const t = new AllowedIps<string>();
    t.insert(p('0.0.0.0/0'), 'default');
    t.insert(p('10.0.0.0/8'), 'a');
    t.insert(p('10.1.0.0/16'), 'b');
    t.insert(p('10.1.2.3/32'), 'c');
    t.insert(p('::/0'), 'v6default');
    t.insert(p('fd00::/8'), 'v6a');
    expect(t.lookup(ip('10.1.2.3'))).toBe('c');
    expect(t.lookup(ip('10.1.2.4'))).toBe('b');
    expect(t.lookup(ip('10.2.0.1'))).toBe('a');
    expect(t.lookup(ip('11.0.0.1'))).toBe('default');
    expect(t.lookup(ip('fd12::1'))).toBe('v6a');
    expect(t.lookup(ip('2001:db8::1'))).toBe('v6default');
    expect(t.lookup(ip('::ffff:10.1.2.3'))).toBe('v6default'); // mapped addresses are IPv6 lookups
    expect(t.size).toBe(6);
  });

  it('an empty table and a table of one family find nothing in the other', () => {
    const t = new AllowedIps<string>();
    expect(t.lookup(ip('1.2.3.4'))).toBeUndefined();
    t.insert(p('1.2.3.0/24'), 'a');
    expect(t.lookup(ip('::1'))).toBeUndefined();
    expect(t.lookup(ip('1.2.4.0'))).toBeUndefined();
    expect(() => t.lookup(new Uint8Array(5))).toThrow(/4 or 16 bytes, got 5/);
  });

  it('insert masks; inserting a prefix owned by another peer moves it', () => {
    const t = new AllowedIps<string>();
    t.insert({ address: ip('192.168.1.77'), bits: 24 }, 'a');
    expect(list(t, 'a')).toEqual(['192.168.1.0/24']);
    t.insert(p('192.168.1.0/24'), 'b');
    expect(list(t, 'a')).toEqual([]);
    expect(list(t, 'b')).toEqual(['192.168.1.0/24']);
    expect(t.lookup(ip('192.168.1.5'))).toBe('b');
    expect(t.size).toBe(1);
  });

  it('per-peer lists keep insertion order; re-inserting moves to the end', () => {
    const t = new AllowedIps<string>();
    for (const s of ['10.0.0.0/8', 'fd00::/64', '10.1.0.0/16', '192.168.0.0/24']) t.insert(p(s), 'a');
    expect(list(t, 'a')).toEqual(['10.0.0.0/8', 'fd00::/64', '10.1.0.0/16', '192.168.0.0/24']);
    t.insert(p('10.0.0.0/8'), 'a');
    expect(list(t, 'a')).toEqual(['fd00::/64', '10.1.0.0/16', '192.168.0.0/24', '10.0.0.0/8']);
    expect(t.size).toBe(4);
    // listings are copies
    t.entriesForPeer('a')[0]!.address.fill(0xff);
    expect(list(t, 'a')[0]).toBe('fd00::/64');
  });

  it('remove takes only an exact prefix owned by that peer', () => {
    const t = new AllowedIps<string>();
    t.insert(p('10.0.0.0/8'), 'a');
    t.insert(p('10.1.0.0/16'), 'b');
    expect(t.remove(p('10.0.0.0/8'), 'b')).toBe(false); // owned by a
    expect(t.remove(p('10.0.0.0/9'), 'a')).toBe(false); // not an exact prefix
    expect(t.remove(p('10.1.0.0/16'), 'nobody')).toBe(false);
    expect(t.lookup(ip('10.2.0.0'))).toBe('a');
    expect(t.remove(p('10.9.9.9/8'), 'a')).toBe(true); // masked before matching
    expect(t.lookup(ip('10.2.0.0'))).toBeUndefined();
    expect(t.lookup(ip('10.1.0.0'))).toBe('b');
    expect(t.remove(p('10.0.0.0/8'), 'a')).toBe(false); // already gone
    expect(t.size).toBe(1);
  });

  it('removeByPeer removes every prefix of that peer and prunes the trie', () => {
    const t = new AllowedIps<string>();
    t.insert(p('10.0.0.0/8'), 'a');
    t.insert(p('10.128.0.0/9'), 'b');
    t.insert(p('10.1.0.0/16'), 'a');
    t.insert(p('fd00::/8'), 'a');
    t.insert(p('fd00:1::/32'), 'b');
    t.removeByPeer('a');
    expect(list(t, 'a')).toEqual([]);
    expect(t.size).toBe(2);
    expect(t.lookup(ip('10.1.0.1'))).toBeUndefined();
    expect(t.lookup(ip('10.200.0.1'))).toBe('b');
    expect(t.lookup(ip('fd00:1::5'))).toBe('b');
    expect(t.lookup(ip('fd00:2::5'))).toBeUndefined();
    t.removeByPeer('b');
    expect(t.size).toBe(0);
    expect(allowedIpsTesting.nodeCount(t as AllowedIps<unknown>)).toBe(0);
    t.removeByPeer('nobody');
  });

  it('peers can be any value; lookups return the same object', () => {
    const peerA = { name: 'a' };
    const t = new AllowedIps<{ name: string }>();
    t.insert(p('0.0.0.0/0'), peerA);
    expect(t.lookup(ip('8.8.8.8'))).toBe(peerA);
  });
});

// ---- Randomized comparison with a naive linear-scan oracle ----

/** Deterministic PRNG (mulberry32) so failures reproduce. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** True when the first `bits` bits of `address` equal those of `prefix` (no allocation). */
function within(address: Uint8Array, prefix: Uint8Array, bits: number): boolean {
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) if (address[i] !== prefix[i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (address[whole]! & mask) === (prefix[whole]! & mask);
}

class Oracle {
  readonly entries: { prefix: Prefix; key: string; peer: number }[] = [];
  private indexOf(key: string): number {
    return this.entries.findIndex((e) => e.key === key);
  }
  insert(prefix: Prefix, peer: number): void {
    const m = maskPrefix(prefix);
    const key = formatPrefix(m);
    const i = this.indexOf(key);
    if (i >= 0) this.entries.splice(i, 1);
    this.entries.push({ prefix: m, key, peer });
  }
  remove(prefix: Prefix, peer: number): boolean {
    const i = this.indexOf(formatPrefix(maskPrefix(prefix)));
    if (i < 0 || this.entries[i]!.peer !== peer) return false;
    this.entries.splice(i, 1);
    return true;
  }
  removeByPeer(peer: number): void {
    for (let i = this.entries.length - 1; i >= 0; i--) if (this.entries[i]!.peer === peer) this.entries.splice(i, 1);
  }
  lookup(address: Uint8Array): number | undefined {
    let best: { prefix: Prefix; peer: number } | undefined;
    for (const e of this.entries) {
      if (e.prefix.address.length !== address.length) continue;
      if (best !== undefined && e.prefix.bits <= best.prefix.bits) continue;
      if (within(address, e.prefix.address, e.prefix.bits)) best = e;
    }
    return best?.peer;
  }
  forPeer(peer: number): string[] {
    return this.entries.filter((e) => e.peer === peer).map((e) => e.key);
  }
}

/**
 * Addresses drawn from a few clustered bases so prefixes nest and share long common prefixes, plus
 * fully random ones.
 */
function randomAddress(rand: () => number, size: 4 | 16, bases: Uint8Array[]): Uint8Array {
  const a = new Uint8Array(size);
  if (rand() < 0.8) {
    a.set(bases[Math.floor(rand() * bases.length)]!);
    const flips = 1 + Math.floor(rand() * 3);
    for (let i = 0; i < flips; i++) {
      const bit = Math.floor(rand() * size * 8);
      a[bit >> 3]! ^= 0x80 >> (bit & 7);
    }
  } else {
    for (let i = 0; i < size; i++) a[i] = Math.floor(rand() * 256);
  }
  return a;
}

describe.each([4, 16] as const)('AllowedIps vs linear-scan oracle (%i-byte addresses)', (size) => {
  it.each([1, 2, 3])('seed %i: thousands of inserts, moves, removes and lookups agree', (seed) => {
    const rand = prng(seed * 7919 + size);
    const maxBits = size * 8;
    const bases = Array.from({ length: 4 }, () => Uint8Array.from({ length: size }, () => Math.floor(rand() * 256)));
    const table = new AllowedIps<number>();
    const oracle = new Oracle();
    const PEERS = 12;
    const randomPrefix = (): Prefix => {
      const r = rand();
      const bits = r < 0.1 ? 0 : r < 0.2 ? maxBits : Math.floor(rand() * (maxBits + 1));
      return { address: randomAddress(rand, size, bases), bits };
    };
    const inserted: Prefix[] = [];
    const mismatches: string[] = [];
    let matched = 0; // lookups that found a peer: the comparison must not be all misses
    for (let step = 0; step < 4000; step++) {
      const r = rand();
      if (r < 0.55) {
        const prefix = randomPrefix();
        const peer = Math.floor(rand() * PEERS);
        table.insert(prefix, peer);
        oracle.insert(prefix, peer);
        inserted.push(prefix);
      } else if (r < 0.62 && inserted.length > 0) {
        // re-insert an existing prefix, often for another peer (a move)
        const prefix = inserted[Math.floor(rand() * inserted.length)]!;
        const peer = Math.floor(rand() * PEERS);
        table.insert(prefix, peer);
        oracle.insert(prefix, peer);
      } else if (r < 0.8 && inserted.length > 0) {
        const prefix = inserted[Math.floor(rand() * inserted.length)]!;
        const peer = Math.floor(rand() * PEERS);
        expect(table.remove(prefix, peer), `step ${step} remove`).toBe(oracle.remove(prefix, peer));
      } else if (r < 0.81) {
        const peer = Math.floor(rand() * PEERS);
        table.removeByPeer(peer);
        oracle.removeByPeer(peer);
      } else {
        for (let k = 0; k < 20; k++) {
          const address = randomAddress(rand, size, bases);
          const got = table.lookup(address);
          const want = oracle.lookup(address);
          if (want !== undefined) matched++;
          if (got !== want) mismatches.push(`step ${step}: lookup ${formatIp(address)} gave ${got}, oracle ${want}`);
        }
      }
      if (table.size !== oracle.entries.length) mismatches.push(`step ${step}: size ${table.size}, oracle ${oracle.entries.length}`);
    }
    expect(mismatches.slice(0, 5)).toEqual([]);
    for (let peer = 0; peer < PEERS; peer++) expect(table.entriesForPeer(peer).map(formatPrefix)).toEqual(oracle.forPeer(peer));
    for (let k = 0; k < 2000; k++) {
      const address = randomAddress(rand, size, bases);
      const want = oracle.lookup(address);
      if (want !== undefined) matched++;
      if (table.lookup(address) !== want) mismatches.push(`final lookup ${formatIp(address)}`);
    }
    expect(mismatches.slice(0, 5)).toEqual([]);
    expect(matched).toBeGreaterThan(1000);
    // tear down everything: the trie must be empty again
    for (let peer = 0; peer < PEERS; peer++) table.removeByPeer(peer);
    expect(table.size).toBe(0);
    expect(allowedIpsTesting.nodeCount(table as AllowedIps<unknown>)).toBe(0);
  });

  it('property: lookup agrees with the oracle for arbitrary prefix sets', () => {
    const prefixArb = fc.record({
      address: fc.uint8Array({ minLength: size, maxLength: size }),
      bits: fc.integer({ min: 0, max: size * 8 }),
      peer: fc.integer({ min: 0, max: 5 }),
    });
    fc.assert(
      fc.property(fc.array(prefixArb, { maxLength: 60 }), fc.array(fc.uint8Array({ minLength: size, maxLength: size }), { maxLength: 30 }), (prefixes, probes) => {
        const table = new AllowedIps<number>();
        const oracle = new Oracle();
        for (const { address, bits, peer } of prefixes) {
          table.insert({ address, bits }, peer);
          oracle.insert({ address, bits }, peer);
        }
        // probe the prefixes' own addresses too, which hit the deepest matches
        for (const address of [...probes, ...prefixes.map((x) => x.address)]) {
          if (table.lookup(address) !== oracle.lookup(address)) return false;
        }
        return table.size === oracle.entries.length;
      }),
      { numRuns: 300 },
    );
  });
});
