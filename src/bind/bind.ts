/**
 * The UDP side of the device (wireguard-go's conn.Bind / conn.Endpoint): endpoints as plain
 * {address, port} values with canonical address text, and the Bind interface implemented by
 * `UdpBind` (udp-bind.ts, node:dgram) and its in-memory twin (channel-bind.ts).
 *
 * Canonical address text: IPv4 dotted quad; IPv6 in RFC 5952 form (lower case, longest zero run
 * compressed), without brackets, with an optional `%zone`; IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes
 * the IPv4 address. Canonical text makes `endpointKey` a plain string usable as a map key.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { bytesToIp, ipToBytes } from '../tun/packets.js';

export interface Endpoint {
  /** Canonical numeric address text; IPv6 without brackets. */
  address: string;
  port: number;
}

export interface Datagram {
  data: Uint8Array;
  from: Endpoint;
}

export interface Bind {
  /**
   * Binds (or rebinds, for a UAPI listen_port change) to `port` on every family; 0 lets the kernel pick.
   * Resolves with the bound port.
   */
  open(port: number): Promise<number>;
  /** The bound port; 0 while closed. */
  readonly port: number;
  /** Sends one datagram. Never throws for network errors: they are counted. */
  send(ep: Endpoint, data: Uint8Array): void;
  /** Sends several datagrams to one endpoint, in order. */
  sendBatch?(ep: Endpoint, packets: Uint8Array[]): void;
  /** Registers a receiver of datagram batches (a burst arrives as one call). */
  onDatagrams(cb: (batch: Datagram[]) => void): void;
  /** Sets the firewall mark (SO_MARK) on the sockets, now and after every rebind; 0 clears it. */
  setMark(mark: number): void;
  close(): Promise<void>;
}

const ZONE = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * Canonical text for a numeric address (see the module comment), or undefined when `text` is not one.
 * Accepts an IPv6 `%zone` suffix.
 */
export function canonicalAddress(text: string): string | undefined {
  if (isIPv4(text)) return text;
  const pct = text.indexOf('%');
  const base = pct < 0 ? text : text.slice(0, pct);
  const zone = pct < 0 ? undefined : text.slice(pct + 1);
  if (!isIPv6(base) || (zone !== undefined && !ZONE.test(zone))) return undefined;
  const bytes = ipToBytes(base);
  const mapped = bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  const canonical = mapped ? bytesToIp(bytes.subarray(12)) : bytesToIp(bytes);
  return zone === undefined ? canonical : `${canonical}%${zone}`;
}

/**
 * Canonical text for an address received from the kernel. inet_ntop output is already canonical for
 * ordinary addresses, so only the forms with an embedded dotted quad are reparsed.
 */
export function normalizeReceivedAddress(address: string): string {
  if (address.includes(':') && address.includes('.')) return canonicalAddress(address) ?? address;
  return address;
}

/**
 * Parses `1.2.3.4:51820` or `[fd00::1]:51820` (numeric only, no DNS names). Errors name `field` and the
 * offending text.
 */
export function parseEndpoint(text: string, field = 'endpoint'): Endpoint {
  if (typeof text !== 'string' || text.length === 0) throw new Error(`${field}: empty endpoint (want ip:port or [ipv6]:port)`);
  const bad = (why: string): Error => new Error(`${field}: "${text}" ${why}`);
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) throw bad('has no closing "]" after the IPv6 address');
    host = text.slice(1, close);
    if (text[close + 1] !== ':') throw bad('needs ":port" after "]"');
    portText = text.slice(close + 2);
    if (!host.includes(':')) throw bad('puts a non-IPv6 address in brackets');
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) throw bad('has no ":port"');
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) throw bad('is an IPv6 endpoint without brackets (write [address]:port)');
  }
  if (!/^[0-9]{1,5}$/.test(portText)) throw bad(`has an invalid port "${portText}"`);
  const port = Number(portText);
  if (port < 1 || port > 65535) throw bad(`has port ${port} outside 1-65535`);
  const address = canonicalAddress(host);
  if (address === undefined) throw bad('does not start with a numeric IPv4 or [IPv6] address (DNS names are not accepted)');
  return { address, port };
}

/** `a.b.c.d:port` or `[v6]:port`, as wg prints endpoints. */
export function formatEndpoint(ep: Endpoint): string {
  return ep.address.includes(':') ? `[${ep.address}]:${ep.port}` : `${ep.address}:${ep.port}`;
}

/** A string identifying the endpoint, for maps and equality (the endpoint's canonical text). */
export function endpointKey(ep: Endpoint): string {
  return formatEndpoint(ep);
}

/** 4 or 6. */
export function endpointFamily(ep: Endpoint): 4 | 6 {
  return ep.address.includes(':') ? 6 : 4;
}

export function endpointsEqual(a: Endpoint, b: Endpoint): boolean {
  return a.port === b.port && a.address === b.address;
}

/** Validates a UDP listen port (0 = any). */
export function validatePort(port: number, field = 'listen_port'): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`${field}: ${String(port)} is not an integer in [0, 65535]`);
}

/** Validates a firewall mark (u32). */
export function validateMark(mark: number, field = 'fwmark'): void {
  if (!Number.isInteger(mark) || mark < 0 || mark > 0xffffffff) throw new Error(`${field}: ${String(mark)} is not an integer in [0, 4294967295]`);
}
