/**
 * IP addresses in the byte form Talos puts on the wire: Go's `netip.Addr.MarshalBinary`
 * (kubespan.md §1.4). IPv4 → 4 bytes; IPv6 → 16 bytes; IPv6 with zone → 16 bytes + zone (UTF-8);
 * the zero address → 0 bytes. Parsing is strict (node:net rules: dotted quads, RFC 4291 IPv6),
 * so `1.2.3` or `0x7f.1` are refused instead of being reinterpreted.
 */
import { isIP, isIPv4 } from 'node:net';
import ipaddr from 'ipaddr.js';

/** Parses an IP string; throws naming `field` and the value when it is not an IP address. */
export function encodeIp(address: string, field: string): Uint8Array {
  const [bare, zone] = splitZone(address);
  if (isIP(bare) === 0 || (zone !== undefined && (zone === '' || isIPv4(bare)))) {
    throw new Error(`${field}: "${address}" is not an IP address`);
  }
  const parsed = ipaddr.parse(bare);
  const bytes = Uint8Array.from(parsed.toByteArray());
  if (zone === undefined) return bytes;
  const zoneBytes = new TextEncoder().encode(zone);
  const out = new Uint8Array(16 + zoneBytes.length);
  out.set(bytes, 0);
  out.set(zoneBytes, 16);
  return out;
}

/**
 * Formats MarshalBinary bytes as an IP string, or returns undefined for anything that is not a
 * valid address (Talos silently drops such entries). IPv4-mapped IPv6 keeps Go's `::ffff:a.b.c.d`.
 */
export function decodeIp(bytes: Uint8Array): string | undefined {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length < 16) return undefined;
  const head = bytes.subarray(0, 16);
  let text: string;
  if (head.subarray(0, 10).every((b) => b === 0) && head[10] === 0xff && head[11] === 0xff) {
    text = `::ffff:${head[12]}.${head[13]}.${head[14]}.${head[15]}`;
  } else {
    text = new ipaddr.IPv6(Array.from(head)).toRFC5952String();
  }
  if (bytes.length === 16) return text;
  let zone: string;
  try {
    zone = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(16));
  } catch {
    return undefined;
  }
  if (zone.includes('%') || zone.includes('\0')) return undefined;
  return `${text}%${zone}`;
}

/** A prefix in wire form (`IPPrefix{ip, bits}`). */
export interface PrefixBytes {
  ip: Uint8Array;
  bits: number;
}

/** Parses `a.b.c.d/n` or `x::/n` (a bare IP means a host prefix); throws naming `field`. */
export function encodePrefix(cidr: string, field: string): PrefixBytes {
  const slash = cidr.indexOf('/');
  const ipText = slash === -1 ? cidr : cidr.slice(0, slash);
  if (ipText.includes('%')) throw new Error(`${field}: "${cidr}" is not a CIDR prefix (zone not allowed)`);
  let ip: Uint8Array;
  try {
    ip = encodeIp(ipText, field);
  } catch {
    throw new Error(`${field}: "${cidr}" is not a CIDR prefix`);
  }
  const max = ip.length * 8;
  let bits = max;
  if (slash !== -1) {
    const bitsText = cidr.slice(slash + 1);
    if (!/^\d{1,3}$/.test(bitsText) || Number(bitsText) > max) {
      throw new Error(`${field}: "${cidr}" has an invalid prefix length (0..${max})`);
    }
    bits = Number(bitsText);
  }
  return { ip, bits };
}

/** Formats a wire prefix as a CIDR string, or undefined when it is invalid (dropped like Talos does). */
export function decodePrefix(prefix: PrefixBytes): string | undefined {
  if (prefix.ip.length !== 4 && prefix.ip.length !== 16) return undefined;
  const ip = decodeIp(prefix.ip);
  if (ip === undefined || prefix.bits > prefix.ip.length * 8) return undefined;
  return `${ip}/${prefix.bits}`;
}

function splitZone(address: string): [string, string | undefined] {
  const i = address.indexOf('%');
  return i === -1 ? [address, undefined] : [address.slice(0, i), address.slice(i + 1)];
}
