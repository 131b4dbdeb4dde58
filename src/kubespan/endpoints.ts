/**
 * The local side of the affiliate: which node addresses are usable, which become WireGuard
 * endpoints, and which are advertised for peers to route to us. Pure functions over plain data.
 *
 * Spec: ../shared/spec/kubespan.md §3.5 (which local addresses become endpoints, and in which
 * order), §4.2 (endpoint filters with sequential `!` semantics), §6 (link-local addresses, such as
 * a cloud anchor IP, are never advertised).
 *
 * Pipeline (Talos LocalAffiliateController):
 *   links → usableNodeAddresses (no loopback, link-local, multicast, scope host/link, down links,
 *   own KubeSpan address and /64, SideroLink ULAs, pod CIDRs; v2 sort; dedup)
 *   → localEndpoints: + public IPs from Hello (if absent) → filters → :port → + extras (dedup, never filtered)
 *   → routedAddresses: usable addresses + the KubeSpan address, minus pod CIDRs.
 */
import { formatIp, parseIp, parsePrefix, type Prefix } from '../noise/allowed-ips.js';
import { isSideroLinkUla } from './identity.js';
import type { HostLink } from './links.js';

/** The KubeSpan listen port (Talos `KubeSpanDefaultPort`). */
export const KUBESPAN_DEFAULT_PORT = 51820;

export interface Endpoint {
  address: string;
  port: number;
}

// ---- Prefix helpers ----

/** True when `ip` (4 or 16 bytes) lies inside `prefix`; families never match across (as Go's netip). */
export function prefixContains(prefix: Prefix, ip: Uint8Array): boolean {
  if (prefix.address.length !== ip.length) return false;
  const full = prefix.bits >>> 3;
  for (let i = 0; i < full; i++) if (prefix.address[i] !== ip[i]) return false;
  const rest = prefix.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((prefix.address[full]! ^ ip[full]!) & mask) === 0;
}

function toPrefix(p: string | Prefix, field: string): Prefix {
  return typeof p === 'string' ? parsePrefix(p, field) : p;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

function isZero(b: Uint8Array): boolean {
  return b.every((x) => x === 0);
}

const LOOPBACK = [parsePrefix('127.0.0.0/8'), parsePrefix('::1/128')];
const LINK_LOCAL = [parsePrefix('169.254.0.0/16'), parsePrefix('fe80::/10')];
const MULTICAST = [parsePrefix('224.0.0.0/4'), parsePrefix('ff00::/8')];

// ---- Filters (§4.2) ----

interface ParsedFilter {
  negate: boolean;
  prefix: Prefix;
}

/** Parses one endpoint filter entry: a CIDR or bare IP, optionally prefixed with `!`. */
export function parseEndpointFilter(filter: string, field = 'filter'): ParsedFilter {
  if (typeof filter !== 'string') throw new Error(`${field}: must be a string (got ${JSON.stringify(filter)})`);
  const negate = filter.startsWith('!');
  const body = negate ? filter.slice(1) : filter;
  try {
    return { negate, prefix: parsePrefix(body, field) };
  } catch (err) {
    throw new Error(`${field}: ${JSON.stringify(filter)} is not a CIDR or IP address, optionally prefixed with "!" (${stripField((err as Error).message)})`);
  }
}

function stripField(message: string): string {
  return message.replace(/^[^:]*: /, '');
}

/**
 * Talos's FilterIPs: walks `filters` in order starting from an empty result; a positive entry
 * appends every candidate it contains that is not yet in the result (in candidate order), a `!`
 * entry removes the matching IPs accumulated so far. So a negation only removes what an earlier
 * positive added, and a list of only negations yields nothing. Returns the candidates as given,
 * deduplicated by address.
 */
export function filterIps(ips: string[], filters: string[]): string[] {
  const candidates = ips.map((text, i) => ({ text, bytes: parseIp(text, `ips[${i}]`) }));
  const parsed = filters.map((f, i) => parseEndpointFilter(f, `filters[${i}]`));
  let result: { text: string; bytes: Uint8Array }[] = [];
  const key = (b: Uint8Array) => formatIp(b);
  for (const f of parsed) {
    if (f.negate) {
      result = result.filter((c) => !prefixContains(f.prefix, c.bytes));
      continue;
    }
    const present = new Set(result.map((c) => key(c.bytes)));
    for (const c of candidates) {
      const k = key(c.bytes);
      if (!present.has(k) && prefixContains(f.prefix, c.bytes)) {
        present.add(k);
        result.push(c);
      }
    }
  }
  return result.map((c) => c.text);
}

// ---- Usable node addresses (§3.5 step 1–2) ----

export interface UsableAddressOptions {
  /** Our KubeSpan address (`ip`, `ip/128` or `ip/64`): it and its /64 are never advertised. */
  kubespanAddress?: string;
  /** The KubeSpan interface name: nothing on it is a node address. Default `kubespan`. */
  kubespanInterface?: string;
  /** Prefixes whose addresses are not node addresses (pod and service CIDRs). */
  excludePrefixes?: (string | Prefix)[];
}

/** A node address with what the sort needs. */
interface Candidate {
  bytes: Uint8Array;
  prefixLen: number;
}

/**
 * Talos's v2 node-address order: IPv4 before IPv6, then the more specific prefix first, then the
 * address (bytewise).
 */
function compareNodeAddresses(a: Candidate, b: Candidate): number {
  if (a.bytes.length !== b.bytes.length) return a.bytes.length - b.bytes.length;
  if (a.prefixLen !== b.prefixLen) return b.prefixLen - a.prefixLen;
  return compareBytes(a.bytes, b.bytes);
}

/**
 * The node's usable addresses, as canonical IP text in Talos's v2 order, deduplicated. Dropped:
 * addresses on down or loopback links and on the KubeSpan interface; scopes other than global and
 * site (so link-scoped addresses such as a cloud anchor IP); loopback, link-local (169.254/16,
 * fe80::/10), multicast and unspecified addresses; IPv6 addresses whose DAD failed; our own KubeSpan
 * address and its /64; SideroLink ULAs (fd…, byte 7 = 0x03); `excludePrefixes`.
 */
export function usableNodeAddresses(links: HostLink[], opts: UsableAddressOptions = {}): string[] {
  const kubespanInterface = opts.kubespanInterface ?? 'kubespan';
  let own: Prefix | undefined;
  let ownSubnet: Prefix | undefined;
  if (opts.kubespanAddress) {
    const p = parsePrefix(opts.kubespanAddress.replace(/\/\d+$/, ''), 'kubespanAddress');
    own = p;
    if (p.address.length === 16) ownSubnet = parsePrefix(`${formatIp(p.address)}/64`, 'kubespanAddress');
  }
  const excludes = (opts.excludePrefixes ?? []).map((p, i) => toPrefix(p, `excludePrefixes[${i}]`));
  const found: Candidate[] = [];
  for (const link of links) {
    if (!link.up || link.linkType === 'loopback' || link.name === kubespanInterface) continue;
    for (const a of link.addresses) {
      if (a.scope !== 'global' && a.scope !== 'site') continue;
      if (a.dadFailed) continue;
      let bytes: Uint8Array;
      try {
        bytes = parseIp(a.address, `address on ${link.name}`);
      } catch {
        continue; // ip printed something we cannot read (a zone…): not advertisable anyway
      }
      if (isZero(bytes)) continue;
      if ([...LOOPBACK, ...LINK_LOCAL, ...MULTICAST].some((p) => prefixContains(p, bytes))) continue;
      if (own && prefixContains(own, bytes)) continue;
      if (ownSubnet && prefixContains(ownSubnet, bytes)) continue;
      if (isSideroLinkUla(bytes)) continue;
      if (excludes.some((p) => prefixContains(p, bytes))) continue;
      found.push({ bytes, prefixLen: a.prefixLen });
    }
  }
  found.sort(compareNodeAddresses);
  const seen = new Set<string>();
  const out: string[] = [];
  for (const c of found) {
    const text = formatIp(c.bytes);
    if (seen.has(text)) continue;
    seen.add(text);
    out.push(text);
  }
  return out;
}

// ---- Local endpoints (§3.5 steps 3–6) ----

export interface LocalEndpointInput {
  /** Usable node addresses, in order (usableNodeAddresses). */
  addresses: string[];
  /** Public IPs reported by discovery Hello; appended when not already present. */
  publicIps?: string[];
  /** `machine.network.kubespan.filters.endpoints`; undefined or empty means no filtering. */
  filters?: string[];
  /** `machine.network.kubespan.extraAnnouncedEndpoints`; appended deduplicated, never filtered. */
  extraAnnouncedEndpoints?: Endpoint[];
  port?: number;
}

function endpointKey(e: Endpoint): string {
  return `${formatIp(parseIp(e.address, 'endpoint'))}|${e.port}`;
}

/** The endpoints we publish for peers to reach us, in the order peers should try them. */
export function localEndpoints(input: LocalEndpointInput): Endpoint[] {
  const port = input.port ?? KUBESPAN_DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`port: must be 1–65535 (got ${port})`);
  const ips = input.addresses.map((a, i) => formatIp(parseIp(a, `addresses[${i}]`)));
  const present = new Set(ips);
  for (const [i, ip] of (input.publicIps ?? []).entries()) {
    const text = formatIp(parseIp(ip, `publicIps[${i}]`));
    if (!present.has(text)) {
      present.add(text);
      ips.push(text);
    }
  }
  const filtered = input.filters && input.filters.length > 0 ? filterIps(ips, input.filters) : ips;
  const out: Endpoint[] = filtered.map((address) => ({ address, port }));
  const seen = new Set(out.map(endpointKey));
  for (const extra of input.extraAnnouncedEndpoints ?? []) {
    const e = { address: formatIp(parseIp(extra.address, 'extraAnnouncedEndpoints')), port: extra.port };
    const k = endpointKey(e);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(e);
  }
  return out;
}

// ---- Routed addresses (affiliate `addresses`) ----

export interface RoutedAddressInput {
  /** Usable node addresses (usableNodeAddresses). */
  addresses: string[];
  /** Our KubeSpan address (`ip`, `ip/128` or `ip/64`); always included. */
  kubespanAddress: string;
  /** Pod CIDRs (and any other prefixes peers must not route to us as node addresses). */
  podCIDRs?: (string | Prefix)[];
}

/**
 * The affiliate `addresses` field, which peers turn into /32 and /128 allowed IPs: the usable
 * addresses outside the pod CIDRs, then our KubeSpan address.
 */
export function routedAddresses(input: RoutedAddressInput): string[] {
  const excludes = (input.podCIDRs ?? []).map((p, i) => toPrefix(p, `podCIDRs[${i}]`));
  const own = formatIp(parseIp(input.kubespanAddress.replace(/\/\d+$/, ''), 'kubespanAddress'));
  const out: string[] = [];
  const seen = new Set<string>();
  for (const [i, a] of input.addresses.entries()) {
    const bytes = parseIp(a, `addresses[${i}]`);
    const text = formatIp(bytes);
    if (seen.has(text) || excludes.some((p) => prefixContains(p, bytes))) continue;
    seen.add(text);
    out.push(text);
  }
  if (!seen.has(own)) out.push(own);
  return out;
}
