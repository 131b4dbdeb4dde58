/**
 * IP packet peeking and test-packet builders. Pure functions over bytes: the device uses the peek
 * functions to route TUN packets (destination) and check decrypted ones (source, total length);
 * tests use the builders for ICMP echo (RFC 792 / RFC 4443) and UDP (RFC 768) packets with correct
 * checksums (RFC 1071; the IPv6 pseudo-header of RFC 8200 §8.1).
 *
 * Peek functions return views into the packet (no copy); copy them if you keep them past the packet.
 */
import { formatIp, parseIp } from '../noise/allowed-ips.js';

export const IPV4_HEADER_SIZE = 20;
export const IPV6_HEADER_SIZE = 40;
export const UDP_HEADER_SIZE = 8;
export const ICMP_ECHO_HEADER_SIZE = 8;

export const IP_PROTOCOL = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58 } as const;
export const ICMP_TYPE = { echoReply: 0, echoRequest: 8 } as const;
export const ICMPV6_TYPE = { echoRequest: 128, echoReply: 129 } as const;

const DEFAULT_TTL = 64;

// ---------------------------------------------------------------- addresses

/** Address text (strict: dotted-quad IPv4 or IPv6, no zone) → 4 or 16 bytes (the allowed-IPs parser). */
export function ipToBytes(text: string, field = 'address'): Uint8Array {
  if (text.includes('%')) throw new Error(`${field}: "${text}" is not a numeric IPv4 or IPv6 address`);
  try {
    return parseIp(text, field);
  } catch {
    throw new Error(`${field}: "${text}" is not a numeric IPv4 or IPv6 address`);
  }
}

/** 4 or 16 bytes → canonical address text (RFC 5952; the allowed-IPs formatter). */
export function bytesToIp(bytes: Uint8Array): string {
  if (bytes.length !== 4 && bytes.length !== 16) throw new Error(`bytesToIp: expected 4 or 16 bytes, got ${bytes.length}`);
  return formatIp(bytes);
}

function addressBytes(value: string | Uint8Array, field: string): Uint8Array {
  if (typeof value === 'string') return ipToBytes(value, field);
  if (value.length !== 4 && value.length !== 16) throw new Error(`${field}: expected 4 or 16 bytes, got ${value.length}`);
  return value;
}

// ---------------------------------------------------------------- peeking

/** The IP version nibble (4 or 6 for valid packets), or 0 for an empty packet. */
export function ipVersion(packet: Uint8Array): number {
  return packet.length === 0 ? 0 : packet[0]! >> 4;
}

function need(packet: Uint8Array, size: number, what: string): void {
  if (packet.length < size) throw new RangeError(`${what}: packet of ${packet.length} bytes is shorter than ${size}`);
}

export function ipv4Src(packet: Uint8Array): Uint8Array {
  need(packet, IPV4_HEADER_SIZE, 'ipv4Src');
  return packet.subarray(12, 16);
}

export function ipv4Dst(packet: Uint8Array): Uint8Array {
  need(packet, IPV4_HEADER_SIZE, 'ipv4Dst');
  return packet.subarray(16, 20);
}

export function ipv6Src(packet: Uint8Array): Uint8Array {
  need(packet, IPV6_HEADER_SIZE, 'ipv6Src');
  return packet.subarray(8, 24);
}

export function ipv6Dst(packet: Uint8Array): Uint8Array {
  need(packet, IPV6_HEADER_SIZE, 'ipv6Dst');
  return packet.subarray(24, 40);
}

/** Source address view for an IPv4 or IPv6 packet, or undefined when the packet is neither or too short. */
export function ipSrc(packet: Uint8Array): Uint8Array | undefined {
  const v = ipVersion(packet);
  if (v === 4 && packet.length >= IPV4_HEADER_SIZE) return packet.subarray(12, 16);
  if (v === 6 && packet.length >= IPV6_HEADER_SIZE) return packet.subarray(8, 24);
  return undefined;
}

/** Destination address view for an IPv4 or IPv6 packet, or undefined when the packet is neither or too short. */
export function ipDst(packet: Uint8Array): Uint8Array | undefined {
  const v = ipVersion(packet);
  if (v === 4 && packet.length >= IPV4_HEADER_SIZE) return packet.subarray(16, 20);
  if (v === 6 && packet.length >= IPV6_HEADER_SIZE) return packet.subarray(24, 40);
  return undefined;
}

/**
 * The packet length the IP header claims (IPv4 total length; IPv6 40 + payload length), used to trim
 * WireGuard's padding. Undefined when the version is unknown or the header is incomplete.
 */
export function ipTotalLength(packet: Uint8Array): number | undefined {
  const v = ipVersion(packet);
  if (v === 4 && packet.length >= IPV4_HEADER_SIZE) return (packet[2]! << 8) | packet[3]!;
  if (v === 6 && packet.length >= IPV6_HEADER_SIZE) return IPV6_HEADER_SIZE + ((packet[4]! << 8) | packet[5]!);
  return undefined;
}

// ---------------------------------------------------------------- checksums

/** Adds `data` as big-endian 16-bit words to a running one's-complement sum (not yet folded). */
function sumWords(data: Uint8Array, sum = 0): number {
  const end = data.length & ~1;
  for (let i = 0; i < end; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (data.length & 1) sum += data[data.length - 1]! << 8;
  return sum;
}

function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** RFC 1071 Internet checksum of `data`; `initial` is an unfolded partial sum (e.g. a pseudo-header). */
export function internetChecksum(data: Uint8Array, initial = 0): number {
  return ~fold(sumWords(data, initial)) & 0xffff;
}

/** Unfolded sum of the TCP/UDP/ICMPv6 pseudo-header (RFC 768 for IPv4, RFC 8200 §8.1 for IPv6). */
function pseudoHeaderSum(src: Uint8Array, dst: Uint8Array, protocol: number, length: number): number {
  let sum = sumWords(src) + sumWords(dst) + protocol;
  if (src.length === 16) sum += Math.floor(length / 0x10000) + (length & 0xffff);
  else sum += length;
  return sum;
}

// ---------------------------------------------------------------- builders

function ipPacket(src: Uint8Array, dst: Uint8Array, protocol: number, payload: Uint8Array, ttl: number, ipId = 0): Uint8Array {
  if (src.length !== dst.length) throw new Error('src and dst must be the same IP version');
  if (src.length === 4) {
    const total = IPV4_HEADER_SIZE + payload.length;
    if (total > 0xffff) throw new RangeError(`IPv4 packet of ${total} bytes exceeds 65535`);
    const p = new Uint8Array(total);
    p[0] = 0x45; // version 4, IHL 5
    p[2] = total >> 8;
    p[3] = total & 0xff;
    p[4] = (ipId >> 8) & 0xff;
    p[5] = ipId & 0xff;
    p[8] = ttl;
    p[9] = protocol;
    p.set(src, 12);
    p.set(dst, 16);
    const csum = internetChecksum(p.subarray(0, IPV4_HEADER_SIZE));
    p[10] = csum >> 8;
    p[11] = csum & 0xff;
    p.set(payload, IPV4_HEADER_SIZE);
    return p;
  }
  if (payload.length > 0xffff) throw new RangeError(`IPv6 payload of ${payload.length} bytes exceeds 65535`);
  const p = new Uint8Array(IPV6_HEADER_SIZE + payload.length);
  p[0] = 0x60; // version 6, traffic class 0, flow label 0
  p[4] = payload.length >> 8;
  p[5] = payload.length & 0xff;
  p[6] = protocol; // next header
  p[7] = ttl; // hop limit
  p.set(src, 8);
  p.set(dst, 24);
  p.set(payload, IPV6_HEADER_SIZE);
  return p;
}

export interface IcmpEchoOptions {
  src: string | Uint8Array;
  dst: string | Uint8Array;
  id: number;
  seq: number;
  payload?: Uint8Array;
  /** Build an echo reply (ICMP type 0 / ICMPv6 129) instead of a request (8 / 128). */
  reply?: boolean;
  /** IPv4 TTL / IPv6 hop limit, default 64. */
  ttl?: number;
  /** IPv4 identification field, default 0. */
  ipId?: number;
}

/** An IPv4 ICMP or IPv6 ICMPv6 echo request/reply with correct checksums; the version follows `src`. */
export function buildIcmpEcho(opts: IcmpEchoOptions): Uint8Array {
  const src = addressBytes(opts.src, 'src');
  const dst = addressBytes(opts.dst, 'dst');
  if (src.length !== dst.length) throw new Error('buildIcmpEcho: src and dst must be the same IP version');
  checkU16(opts.id, 'id');
  checkU16(opts.seq, 'seq');
  const payload = opts.payload ?? new Uint8Array(0);
  const v6 = src.length === 16;
  const icmp = new Uint8Array(ICMP_ECHO_HEADER_SIZE + payload.length);
  icmp[0] = v6
    ? opts.reply ? ICMPV6_TYPE.echoReply : ICMPV6_TYPE.echoRequest
    : opts.reply ? ICMP_TYPE.echoReply : ICMP_TYPE.echoRequest;
  icmp[4] = opts.id >> 8;
  icmp[5] = opts.id & 0xff;
  icmp[6] = opts.seq >> 8;
  icmp[7] = opts.seq & 0xff;
  icmp.set(payload, ICMP_ECHO_HEADER_SIZE);
  const protocol = v6 ? IP_PROTOCOL.icmpv6 : IP_PROTOCOL.icmp;
  // ICMPv4 sums the message alone; ICMPv6 includes the pseudo-header
  const csum = internetChecksum(icmp, v6 ? pseudoHeaderSum(src, dst, protocol, icmp.length) : 0);
  icmp[2] = csum >> 8;
  icmp[3] = csum & 0xff;
  return ipPacket(src, dst, protocol, icmp, opts.ttl ?? DEFAULT_TTL, opts.ipId ?? 0);
}

export interface UdpPacketOptions {
  src: string | Uint8Array;
  dst: string | Uint8Array;
  srcPort: number;
  dstPort: number;
  payload?: Uint8Array;
  ttl?: number;
  ipId?: number;
}

/** An IPv4 or IPv6 UDP packet with the checksum computed (0 is sent as 0xffff, RFC 768). */
export function buildUdpPacket(opts: UdpPacketOptions): Uint8Array {
  const src = addressBytes(opts.src, 'src');
  const dst = addressBytes(opts.dst, 'dst');
  if (src.length !== dst.length) throw new Error('buildUdpPacket: src and dst must be the same IP version');
  checkU16(opts.srcPort, 'srcPort');
  checkU16(opts.dstPort, 'dstPort');
  const payload = opts.payload ?? new Uint8Array(0);
  const udp = new Uint8Array(UDP_HEADER_SIZE + payload.length);
  udp[0] = opts.srcPort >> 8;
  udp[1] = opts.srcPort & 0xff;
  udp[2] = opts.dstPort >> 8;
  udp[3] = opts.dstPort & 0xff;
  udp[4] = (udp.length >> 8) & 0xff;
  udp[5] = udp.length & 0xff;
  udp.set(payload, UDP_HEADER_SIZE);
  const csum = internetChecksum(udp, pseudoHeaderSum(src, dst, IP_PROTOCOL.udp, udp.length)) || 0xffff;
  udp[6] = csum >> 8;
  udp[7] = csum & 0xff;
  return ipPacket(src, dst, IP_PROTOCOL.udp, udp, opts.ttl ?? DEFAULT_TTL, opts.ipId ?? 0);
}

function checkU16(v: number, field: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new RangeError(`${field}: ${v} is not an integer in [0, 65535]`);
}

// ---------------------------------------------------------------- parsing (tests and diagnostics)

export interface IcmpEcho {
  version: 4 | 6;
  src: string;
  dst: string;
  kind: 'request' | 'reply';
  id: number;
  seq: number;
  ttl: number;
  payload: Uint8Array;
  /** The ICMP checksum (and the IPv4 header checksum) verify. */
  checksumOk: boolean;
}

/** Parses an ICMP/ICMPv6 echo request or reply (no IPv4 options, no IPv6 extension headers); else undefined. */
export function parseIcmpEcho(packet: Uint8Array): IcmpEcho | undefined {
  const v = ipVersion(packet);
  const total = ipTotalLength(packet);
  if (total === undefined || total > packet.length) return undefined;
  if (v === 4) {
    if ((packet[0]! & 0x0f) !== 5 || packet[9] !== IP_PROTOCOL.icmp) return undefined;
    const icmp = packet.subarray(IPV4_HEADER_SIZE, total);
    if (icmp.length < ICMP_ECHO_HEADER_SIZE) return undefined;
    const type = icmp[0];
    if ((type !== ICMP_TYPE.echoRequest && type !== ICMP_TYPE.echoReply) || icmp[1] !== 0) return undefined;
    const headerOk = internetChecksum(packet.subarray(0, IPV4_HEADER_SIZE)) === 0;
    return echoFields(4, ipv4Src(packet), ipv4Dst(packet), type === ICMP_TYPE.echoRequest, icmp, packet[8]!, headerOk && internetChecksum(icmp) === 0);
  }
  if (v === 6) {
    if (packet[6] !== IP_PROTOCOL.icmpv6) return undefined;
    const icmp = packet.subarray(IPV6_HEADER_SIZE, total);
    if (icmp.length < ICMP_ECHO_HEADER_SIZE) return undefined;
    const type = icmp[0];
    if ((type !== ICMPV6_TYPE.echoRequest && type !== ICMPV6_TYPE.echoReply) || icmp[1] !== 0) return undefined;
    const src = ipv6Src(packet);
    const dst = ipv6Dst(packet);
    const ok = internetChecksum(icmp, pseudoHeaderSum(src, dst, IP_PROTOCOL.icmpv6, icmp.length)) === 0;
    return echoFields(6, src, dst, type === ICMPV6_TYPE.echoRequest, icmp, packet[7]!, ok);
  }
  return undefined;
}

function echoFields(version: 4 | 6, src: Uint8Array, dst: Uint8Array, request: boolean, icmp: Uint8Array, ttl: number, checksumOk: boolean): IcmpEcho {
  return {
    version,
    src: bytesToIp(src),
    dst: bytesToIp(dst),
    kind: request ? 'request' : 'reply',
    id: (icmp[4]! << 8) | icmp[5]!,
    seq: (icmp[6]! << 8) | icmp[7]!,
    ttl,
    payload: icmp.slice(ICMP_ECHO_HEADER_SIZE),
    checksumOk,
  };
}

/** The echo reply a host would send for `request` (addresses swapped, same id/seq/payload), or undefined. */
export function buildEchoReplyFor(request: Uint8Array): Uint8Array | undefined {
  const echo = parseIcmpEcho(request);
  if (!echo || echo.kind !== 'request') return undefined;
  return buildIcmpEcho({ src: echo.dst, dst: echo.src, id: echo.id, seq: echo.seq, payload: echo.payload, reply: true });
}
