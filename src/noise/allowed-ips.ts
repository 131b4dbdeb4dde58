/**
 * Allowed IPs: the longest-prefix-match table that routes outgoing packets to a peer (by inner
 * destination) and checks incoming packets (the inner source must map back to the same peer).
 * Spec: ../shared/spec/wireguard.md §6 (semantics of wireguard-go's allowedips.go).
 *
 * - One trie per family. Each is a binary trie with path compression: a node stands for one masked
 *   prefix and has at most two children, chosen by the first bit after its prefix. Intermediate
 *   nodes without an owner exist only where two branches split.
 * - Prefixes are masked on insert (host bits cleared; listings show the masked form).
 * - Inserting a prefix that another peer owns MOVES it to the new peer; re-inserting a prefix the
 *   peer already owns moves it to the end of that peer's list. `remove` removes only an exact prefix
 *   owned by that peer. Per-peer listings are in insertion order.
 * - `lookup` is on the per-packet path: it reads the address into at most four int32 words and walks
 *   the trie comparing masked words; it allocates nothing.
 *
 * Also here: strict IP and CIDR text parsing and canonical formatting (IPv6 per RFC 5952, IPv4-mapped
 * addresses stay IPv6 and print as `::ffff:a.b.c.d`, as Go's netip does).
 */

export interface Prefix {
  /** 4 bytes (IPv4) or 16 bytes (IPv6). */
  address: Uint8Array;
  /** Prefix length: 0–32 for IPv4, 0–128 for IPv6. */
  bits: number;
}

// ---- Text ↔ bytes ----

function quote(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}

function ipError(field: string, text: string, problem: string): Error {
  return new Error(`${field}: invalid IP address ${quote(text)}: ${problem}`);
}

const IPV4_PART = /^[0-9]{1,3}$/;
const IPV6_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseIpv4Into(text: string, out: Uint8Array, off: number, field: string, whole: string): void {
  const parts = text.split('.');
  if (parts.length !== 4) throw ipError(field, whole, 'IPv4 needs four dot-separated decimal parts');
  for (let i = 0; i < 4; i++) {
    const part = parts[i]!;
    if (!IPV4_PART.test(part)) throw ipError(field, whole, `IPv4 part ${quote(part)} is not a decimal number`);
    if (part.length > 1 && part[0] === '0') throw ipError(field, whole, `IPv4 part ${quote(part)} has a leading zero`);
    const v = Number(part);
    if (v > 255) throw ipError(field, whole, `IPv4 part ${part} exceeds 255`);
    out[off + i] = v;
  }
}

function parseIpv6(text: string, field: string): Uint8Array {
  if (text.includes('%')) throw ipError(field, text, 'zone identifiers are not allowed');
  const halves = text.split('::');
  if (halves.length > 2) throw ipError(field, text, "'::' may appear only once");
  const compressed = halves.length === 2;
  const head = halves[0] === '' ? [] : halves[0]!.split(':');
  const tail = compressed ? (halves[1] === '' ? [] : halves[1]!.split(':')) : [];
  const groups = [...head, ...tail];
  // an embedded IPv4 address may only be the final group of the text
  const lastIsFinal = compressed ? tail.length > 0 : head.length > 0;
  const words: number[] = [];
  const v4 = new Uint8Array(4);
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i]!;
    if (g.includes('.')) {
      if (!(lastIsFinal && i === groups.length - 1)) throw ipError(field, text, 'an embedded IPv4 address must come last');
      parseIpv4Into(g, v4, 0, field, text);
      words.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    } else {
      if (!IPV6_GROUP.test(g)) throw ipError(field, text, g === '' ? 'empty group' : `group ${quote(g)} is not 1–4 hex digits`);
      words.push(parseInt(g, 16));
    }
  }
  const headWords = wordCount(head);
  if (compressed) {
    if (words.length > 7) throw ipError(field, text, "'::' must stand for at least one zero group");
  } else if (words.length !== 8) {
    throw ipError(field, text, `IPv6 needs 8 groups, got ${words.length}`);
  }
  const out = new Uint8Array(16);
  const zeros = 8 - words.length;
  for (let i = 0; i < words.length; i++) {
    const slot = i < headWords ? i : i + zeros;
    out[2 * slot] = words[i]! >>> 8;
    out[2 * slot + 1] = words[i]! & 0xff;
  }
  return out;
}

/** 16-bit words written by `groups` (an embedded IPv4 address writes two). */
function wordCount(groups: string[]): number {
  let n = 0;
  for (const g of groups) n += g.includes('.') ? 2 : 1;
  return n;
}

/** Parses an IPv4 (strict dotted decimal) or IPv6 address into 4 or 16 bytes. */
export function parseIp(text: string, field = 'address'): Uint8Array {
  if (typeof text !== 'string' || text === '') throw new Error(`${field}: IP address is empty`);
  if (text.includes(':')) return parseIpv6(text, field);
  const out = new Uint8Array(4);
  parseIpv4Into(text, out, 0, field, text);
  return out;
}

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** Canonical text: dotted IPv4; RFC 5952 IPv6 (lowercase, longest zero run ≥ 2 compressed, first wins). */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) throw new Error(`formatIp: address must be 4 or 16 bytes, got ${bytes.length}`);
  if (isV4Mapped(bytes)) return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((bytes[2 * i]! << 8) | bytes[2 * i + 1]!);
  // longest run of zero groups, at least two long
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) => words.slice(from, to).map((w) => w.toString(16)).join(':');
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}

/** A copy of `p` with the host bits cleared. Throws if the address length or prefix length is invalid. */
export function maskPrefix(p: Prefix): Prefix {
  const max = maxBitsOf(p.address, 'prefix');
  if (!Number.isInteger(p.bits) || p.bits < 0 || p.bits > max) {
    throw new Error(`prefix: length ${p.bits} is out of range 0–${max}`);
  }
  const address = new Uint8Array(p.address);
  for (let i = 0; i < address.length; i++) {
    const keep = p.bits - 8 * i;
    if (keep >= 8) continue;
    address[i] = keep <= 0 ? 0 : address[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  return { address, bits: p.bits };
}

const PREFIX_LENGTH = /^(0|[1-9][0-9]{0,2})$/;

/**
 * Parses `a.b.c.d/n`, `x:y::z/n`, or a bare address (→ /32 or /128). Host bits are cleared.
 * Errors name `field` and the value.
 */
export function parsePrefix(text: string, field = 'allowed IP'): Prefix {
  if (typeof text !== 'string' || text === '') throw new Error(`${field}: IP prefix is empty`);
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  let address: Uint8Array;
  try {
    address = parseIp(addressText, field);
  } catch (err) {
    if (slash < 0) throw err;
    throw new Error(`${field}: invalid IP prefix ${quote(text)}: ${(err as Error).message.replace(/^.*?: invalid IP address "[^"]*": /, '')}`);
  }
  const max = address.length * 8;
  if (slash < 0) return { address, bits: max };
  const lengthText = text.slice(slash + 1);
  if (!PREFIX_LENGTH.test(lengthText)) {
    throw new Error(`${field}: invalid IP prefix ${quote(text)}: prefix length ${quote(lengthText)} is not a decimal number without leading zeros`);
  }
  const bits = Number(lengthText);
  if (bits > max) throw new Error(`${field}: invalid IP prefix ${quote(text)}: prefix length ${bits} exceeds ${max}`);
  return maskPrefix({ address, bits });
}

/** `address/bits` in canonical form. */
export function formatPrefix(p: Prefix): string {
  return `${formatIp(p.address)}/${p.bits}`;
}

function maxBitsOf(address: Uint8Array, what: string): 32 | 128 {
  if (address.length === 4) return 32;
  if (address.length === 16) return 128;
  throw new Error(`${what}: address must be 4 or 16 bytes, got ${address.length}`);
}

// ---- The trie ----

class TrieNode<P> {
  /** Masked prefix as big-endian int32 words (IPv4 uses w0 only) and the matching masks. */
  w0 = 0;
  w1 = 0;
  w2 = 0;
  w3 = 0;
  m0 = 0;
  m1 = 0;
  m2 = 0;
  m3 = 0;
  hasPeer = false;
  peer: P | undefined = undefined;
  child0: TrieNode<P> | null = null;
  child1: TrieNode<P> | null = null;

  constructor(
    words: readonly number[],
    readonly bits: number,
    public parent: TrieNode<P> | null,
  ) {
    this.m0 = wordMask(bits, 0);
    this.m1 = wordMask(bits, 1);
    this.m2 = wordMask(bits, 2);
    this.m3 = wordMask(bits, 3);
    this.w0 = words[0]! & this.m0;
    this.w1 = words[1]! & this.m1;
    this.w2 = words[2]! & this.m2;
    this.w3 = words[3]! & this.m3;
  }

  words(): number[] {
    return [this.w0, this.w1, this.w2, this.w3];
  }

  child(bit: number): TrieNode<P> | null {
    return bit === 0 ? this.child0 : this.child1;
  }

  setChild(bit: number, node: TrieNode<P> | null): void {
    if (bit === 0) this.child0 = node;
    else this.child1 = node;
  }
}

/** The int32 mask of word k (bits 32k … 32k+31) for a prefix of length `bits`. */
function wordMask(bits: number, k: number): number {
  const n = bits - 32 * k;
  if (n >= 32) return -1;
  if (n <= 0) return 0;
  return (0xffffffff << (32 - n)) | 0;
}

/** Bit i (0 = most significant bit of the first byte) of a word array. */
function bitAt(words: readonly number[], i: number): number {
  return (words[i >>> 5]! >>> (31 - (i & 31))) & 1;
}

function commonPrefixLength(a: readonly number[], b: readonly number[], limit: number): number {
  for (let k = 0; 32 * k < limit; k++) {
    const x = a[k]! ^ b[k]!;
    if (x !== 0) return Math.min(limit, 32 * k + Math.clz32(x));
  }
  return limit;
}

function wordsOf(address: Uint8Array): number[] {
  const words = [0, 0, 0, 0];
  for (let k = 0; k < address.length / 4; k++) {
    words[k] = (address[4 * k]! << 24) | (address[4 * k + 1]! << 16) | (address[4 * k + 2]! << 8) | address[4 * k + 3]!;
  }
  return words;
}

class Trie<P> {
  root: TrieNode<P> | null = null;

  /** The node for exactly (words, bits), created (with no owner) if missing. */
  findOrCreate(words: number[], bits: number): TrieNode<P> {
    if (this.root === null) {
      this.root = new TrieNode<P>(words, bits, null);
      return this.root;
    }
    let node = this.root;
    for (;;) {
      const nodeWords = node.words();
      const cpl = commonPrefixLength(nodeWords, words, Math.min(node.bits, bits));
      if (cpl === node.bits && cpl === bits) return node;
      if (cpl === node.bits) {
        // node's prefix contains the new one: descend by the next bit
        const dir = bitAt(words, node.bits);
        const next = node.child(dir);
        if (next === null) {
          const leaf = new TrieNode<P>(words, bits, node);
          node.setChild(dir, leaf);
          return leaf;
        }
        node = next;
        continue;
      }
      if (cpl === bits) {
        // the new prefix contains node's: insert it above node
        const above = new TrieNode<P>(words, bits, node.parent);
        this.replace(node, above);
        above.setChild(bitAt(nodeWords, bits), node);
        node.parent = above;
        return above;
      }
      // they diverge at bit cpl: a new branch point holds both
      const fork = new TrieNode<P>(words, cpl, node.parent);
      this.replace(node, fork);
      const leaf = new TrieNode<P>(words, bits, fork);
      fork.setChild(bitAt(words, cpl), leaf);
      fork.setChild(bitAt(nodeWords, cpl), node);
      node.parent = fork;
      return leaf;
    }
  }

  /** Number of nodes, owned or not (tests use it to check that removal prunes the trie). */
  nodeCount(): number {
    let n = 0;
    const stack: TrieNode<P>[] = this.root === null ? [] : [this.root];
    for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
      n++;
      if (node.child0 !== null) stack.push(node.child0);
      if (node.child1 !== null) stack.push(node.child1);
    }
    return n;
  }

  /** Clears the owner of `node` and removes nodes that no longer route anything. */
  release(node: TrieNode<P>): void {
    node.hasPeer = false;
    node.peer = undefined;
    let current: TrieNode<P> | null = node;
    while (current !== null && !current.hasPeer) {
      const c0 = current.child0;
      const c1 = current.child1;
      if (c0 !== null && c1 !== null) return; // still a branch point
      const only = c0 ?? c1;
      const parent: TrieNode<P> | null = current.parent;
      this.replace(current, only);
      if (only !== null) {
        only.parent = parent;
        return; // splicing a one-child node changes nothing above it
      }
      current = parent; // a leaf went away: its parent may now be redundant
    }
  }

  private replace(node: TrieNode<P>, by: TrieNode<P> | null): void {
    const parent = node.parent;
    if (parent === null) this.root = by;
    else if (parent.child0 === node) parent.child0 = by;
    else parent.child1 = by;
  }
}

interface Entry<P> {
  prefix: Prefix;
  node: TrieNode<P>;
}

function entryKey(p: Prefix): string {
  return formatPrefix(p);
}

/** Longest-prefix-match routing table from IP prefixes to peers. */
export class AllowedIps<P> {
  private readonly v4 = new Trie<P>();
  private readonly v6 = new Trie<P>();
  private readonly byPeer = new Map<P, Map<string, Entry<P>>>();
  private count = 0;

  /** Routes `prefix` (masked) to `peer`, taking it from any other peer that owned it. */
  insert(prefix: Prefix, peer: P): void {
    const masked = maskPrefix(prefix);
    const trie = masked.address.length === 4 ? this.v4 : this.v6;
    const node = trie.findOrCreate(wordsOf(masked.address), masked.bits);
    const key = entryKey(masked);
    if (node.hasPeer) {
      this.detach(node.peer as P, key);
    }
    node.hasPeer = true;
    node.peer = peer;
    let entries = this.byPeer.get(peer);
    if (entries === undefined) {
      entries = new Map();
      this.byPeer.set(peer, entries);
    }
    entries.set(key, { prefix: masked, node });
    this.count++;
  }

  /** Removes `prefix` (masked) if `peer` owns exactly it. Returns whether something was removed. */
  remove(prefix: Prefix, peer: P): boolean {
    const masked = maskPrefix(prefix);
    const entries = this.byPeer.get(peer);
    if (entries === undefined) return false;
    const key = entryKey(masked);
    const entry = entries.get(key);
    if (entry === undefined) return false;
    this.detach(peer, key);
    (masked.address.length === 4 ? this.v4 : this.v6).release(entry.node);
    return true;
  }

  /** Removes every prefix of `peer`. */
  removeByPeer(peer: P): void {
    const entries = this.byPeer.get(peer);
    if (entries === undefined) return;
    this.byPeer.delete(peer);
    for (const entry of entries.values()) {
      (entry.prefix.address.length === 4 ? this.v4 : this.v6).release(entry.node);
      this.count--;
    }
  }

  /** The peer of the longest prefix containing `address` (4 or 16 bytes), or undefined. */
  lookup(address: Uint8Array): P | undefined {
    if (address.length === 4) {
      const a0 = (address[0]! << 24) | (address[1]! << 16) | (address[2]! << 8) | address[3]!;
      let node = this.v4.root;
      let best: P | undefined;
      while (node !== null) {
        if ((a0 & node.m0) !== node.w0) break;
        if (node.hasPeer) best = node.peer;
        const b = node.bits;
        if (b === 32) break;
        node = ((a0 >>> (31 - b)) & 1) === 0 ? node.child0 : node.child1;
      }
      return best;
    }
    if (address.length === 16) {
      const a0 = (address[0]! << 24) | (address[1]! << 16) | (address[2]! << 8) | address[3]!;
      const a1 = (address[4]! << 24) | (address[5]! << 16) | (address[6]! << 8) | address[7]!;
      const a2 = (address[8]! << 24) | (address[9]! << 16) | (address[10]! << 8) | address[11]!;
      const a3 = (address[12]! << 24) | (address[13]! << 16) | (address[14]! << 8) | address[15]!;
      let node = this.v6.root;
      let best: P | undefined;
      while (node !== null) {
        if ((a0 & node.m0) !== node.w0 || (a1 & node.m1) !== node.w1 || (a2 & node.m2) !== node.w2 || (a3 & node.m3) !== node.w3) break;
        if (node.hasPeer) best = node.peer;
        const b = node.bits;
        if (b === 128) break;
        const w = b < 64 ? (b < 32 ? a0 : a1) : b < 96 ? a2 : a3;
        node = ((w >>> (31 - (b & 31))) & 1) === 0 ? node.child0 : node.child1;
      }
      return best;
    }
    throw new Error(`allowed IPs lookup: address must be 4 or 16 bytes, got ${address.length}`);
  }

  /** The prefixes `peer` owns, in insertion order (copies). */
  entriesForPeer(peer: P): Prefix[] {
    const entries = this.byPeer.get(peer);
    if (entries === undefined) return [];
    return Array.from(entries.values(), (e) => ({ address: new Uint8Array(e.prefix.address), bits: e.prefix.bits }));
  }

  /** Number of prefixes in the table. */
  get size(): number {
    return this.count;
  }

  /** Drops `key` from `peer`'s list (the trie node is handled by the caller). */
  private detach(peer: P, key: string): void {
    const entries = this.byPeer.get(peer);
    if (entries === undefined || !entries.delete(key)) return;
    this.count--;
    if (entries.size === 0) this.byPeer.delete(peer);
  }
}

/** Trie introspection for tests only. */
export const allowedIpsTesting = {
  nodeCount(table: AllowedIps<unknown>): number {
    const t = table as unknown as { v4: Trie<unknown>; v6: Trie<unknown> };
    return t.v4.nodeCount() + t.v6.nodeCount();
  },
};
