/**
 * The `kubespand up --config file.yaml` file: one static WireGuard device, shaped like Talos's
 * WireGuard device config (spec/kubespan.md §7: `privateKey`, `listenPort`, `firewallMark`,
 * `peers[]{publicKey, presharedKey, endpoint, persistentKeepaliveInterval, allowedIPs}`), plus the
 * link settings `interface`, `mtu` and `addresses`:
 *
 *   interface: kubespan0            # required; a Linux interface name (1..15 bytes)
 *   mtu: 1420                       # default 1420; 1280..65535
 *   addresses: [10.10.0.1/24, fd00::1/64]
 *   wireguard:
 *     privateKey: <base64>          # required; `wg genkey`
 *     listenPort: 51820             # default 0 = random
 *     firewallMark: 0x20            # default 0 = off; YAML hex integers are fine
 *     peers:
 *       - publicKey: <base64>
 *         presharedKey: <base64>    # optional
 *         endpoint: 192.0.2.1:51820 # optional; ip:port, [v6]:port or host.name:port
 *         persistentKeepaliveInterval: 25s   # optional Go duration, 0..65535 s
 *         allowedIPs: [10.10.0.2/32]
 *
 * Parsing is strict and reports EVERY problem at once, one per line, as
 * `<file>: <path.to.field>: <problem> (got <value>)`. Private and preshared key values are never
 * echoed (not even malformed ones): their lines name the field and the problem only. Unknown
 * fields are errors, so a typo does not silently drop a setting.
 *
 * Endpoints may name a host; it is NOT resolved here but at apply time (`resolveConfigEndpoint`),
 * so a file can be checked offline and a name is looked up when the device is configured.
 */
import { readFile } from 'node:fs/promises';
import { lookup } from 'node:dns/promises';
import { isDocument, parseDocument, type Document } from 'yaml';
import { complexKeyOffset, keyName, yamlMessage } from './yaml-safety.js';
import { z } from 'zod';
import { canonicalAddress, type Endpoint } from '../bind/bind.js';
import { formatIp, formatPrefix, parseIp, parsePrefix, type Prefix } from '../noise/allowed-ips.js';
import { constantTimeEqual } from '../noise/bytes.js';
import { nodeCrypto } from '../noise/crypto-node.js';
import { asPresharedKey, clampPrivateKey, keyFromBase64, type PresharedKey, type PrivateKey } from '../noise/keys.js';

// ---- Implementation constants ----

/** WireGuard's usual MTU: 1500 minus the largest overhead (IPv6 40 + UDP 8 + WireGuard 32). */
export const DEFAULT_MTU = 1420;
/**
 * IPv6 requires every link to carry 1280-byte packets (RFC 8200 §5), and Linux removes the IPv6
 * addresses of an interface whose MTU is set below 1280. KubeSpan meshes carry IPv6 (and the file
 * may list IPv6 addresses), so anything lower would silently break it.
 */
export const MIN_MTU = 1280;
/** The largest MTU Linux allows on a TUN device (and the IP total-length limit). */
export const MAX_MTU = 65535;
export const MAX_PERSISTENT_KEEPALIVE_SEC = 65535;

// ---- Output types ----

/** A peer endpoint as written in the file. A host name is resolved at apply time. */
export interface ConfigEndpoint {
  /** Canonical IP text as the bind layer writes it (IPv6 without brackets, optional `%zone`), or a DNS name. */
  host: string;
  port: number;
  /** True when `host` is a numeric IP address; false for a name to resolve. */
  isIp: boolean;
}

export interface WireguardPeerConfig {
  publicKey: Uint8Array;
  presharedKey: PresharedKey | null;
  endpoint: ConfigEndpoint | null;
  /** 0 = off. */
  persistentKeepaliveSec: number;
  /** Masked prefixes, in file order. */
  allowedIps: Prefix[];
}

export interface WireguardDeviceConfig {
  /** Where the config came from (the file path or the name given to parseWireguardConfig). */
  source: string;
  interface: string;
  mtu: number;
  /** Interface addresses with their host bits KEPT (10.10.0.1/24 is address 10.10.0.1, prefix length 24). */
  addresses: Prefix[];
  wireguard: {
    /** Clamped; prints as a redaction marker in JSON and util.inspect. */
    privateKey: PrivateKey;
    /** Derived from privateKey. */
    publicKey: Uint8Array;
    /** 0 = random. */
    listenPort: number;
    /** 0 = off. */
    firewallMark: number;
    peers: WireguardPeerConfig[];
  };
}

/** Every problem of a config file, one per line in `message` and one per entry in `problems`. */
export class ConfigError extends Error {
  readonly problems: string[];

  constructor(problems: string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

// ---- Field parsers (each returns the value or throws a plain Error whose message is the problem) ----

/** Fields whose values are secret: their problems never show the value. */
const SECRET_FIELDS = new Set(['privateKey', 'presharedKey']);

function problem(message: string): Error {
  return new Error(message);
}

/** Linux's dev_valid_name: 1..15 bytes, not "." or "..", no '/', ':' or whitespace. */
function parseInterfaceName(name: string): string {
  const bytes = Buffer.byteLength(name);
  if (bytes === 0) throw problem('must not be empty');
  if (bytes > 15) throw problem(`must be at most 15 bytes (Linux IFNAMSIZ), is ${bytes}`);
  if (name === '.' || name === '..') throw problem('must not be "." or ".."');
  if (/[/:\s\0]/.test(name)) throw problem("must not contain '/', ':' or whitespace");
  return name;
}

function parseKey(text: string): Uint8Array {
  try {
    return keyFromBase64(text, 'key');
  } catch {
    throw problem('must be a WireGuard key: 44 characters of standard base64 encoding 32 bytes (as `wg genkey` prints)');
  }
}

/** `a.b.c.d/n` or `v6/n`, host bits kept. */
function parseInterfaceAddress(text: string): Prefix {
  const slash = text.indexOf('/');
  if (slash < 0) throw problem('must be an address with a prefix length, like 10.10.0.1/24 or fd00::1/64');
  let address: Uint8Array;
  try {
    address = parseIp(text.slice(0, slash), 'address');
  } catch (err) {
    throw problem((err as Error).message.replace(/^address: /, ''));
  }
  const lengthText = text.slice(slash + 1);
  const max = address.length * 8;
  if (!/^(0|[1-9][0-9]{0,2})$/.test(lengthText) || Number(lengthText) > max) {
    throw problem(`prefix length must be a decimal number 0..${max}`);
  }
  return { address, bits: Number(lengthText) };
}

function parseAllowedIp(text: string): Prefix {
  if (!text.includes('/')) throw problem('must be a CIDR prefix like 10.10.0.0/24 or fd00::/64');
  try {
    return parsePrefix(text, 'prefix');
  } catch (err) {
    throw problem((err as Error).message.replace(/^prefix: /, ''));
  }
}

/** RFC 1123 host name: dot-separated labels of letters, digits and '-', ≤ 253 characters. */
function isHostName(host: string): boolean {
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  // an all-numeric last label is a mistyped IPv4 address, not a name
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? '')) return false;
  return labels.every((l) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(l));
}

/** `ip:port`, `[v6]:port` (optionally `[v6%zone]:port`) or `host.name:port`; port 1..65535. */
function parseEndpoint(text: string): ConfigEndpoint {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') throw problem('must be ip:port, [ipv6]:port or host:port');
    host = text.slice(1, close);
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) throw problem('must include a port: ip:port, [ipv6]:port or host:port');
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) throw problem('an IPv6 endpoint needs brackets: [ipv6]:port');
  }
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    throw problem('port must be a decimal number 1..65535');
  }
  const port = Number(portText);
  if (text.startsWith('[')) {
    const percent = host.indexOf('%');
    const zone = percent < 0 ? '' : host.slice(percent + 1);
    if (percent >= 0 && !/^[A-Za-z0-9_.-]+$/.test(zone)) throw problem('IPv6 zone must be an interface name');
    let address: Uint8Array;
    try {
      address = parseIp(percent < 0 ? host : host.slice(0, percent), 'address');
    } catch (err) {
      throw problem((err as Error).message.replace(/^address: /, ''));
    }
    if (address.length !== 16) throw problem('brackets are only for IPv6 addresses');
    return { host: canonicalAddress(formatIp(address) + (zone ? `%${zone}` : '')) ?? formatIp(address), port, isIp: true };
  }
  if (/^[0-9.]+$/.test(host)) {
    try {
      return { host: formatIp(parseIp(host, 'address')), port, isIp: true };
    } catch (err) {
      throw problem((err as Error).message.replace(/^address: /, ''));
    }
  }
  if (!isHostName(host)) throw problem('host must be an IP address or a DNS name');
  return { host, port, isIp: false };
}

const DURATION_UNITS_NS: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, 'μs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/**
 * A Go duration string (time.ParseDuration: "25s", "1m30s", "1.5m", "0") as whole seconds,
 * 0..65535. Sub-second remainders are refused rather than silently truncated.
 */
export function parseGoDurationSeconds(text: string): number {
  const bad = problem('must be a Go duration like "25s", "1m30s" or "0s"');
  if (text === '0') return 0;
  let rest = text;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    sign = rest.startsWith('-') ? -1 : 1;
    rest = rest.slice(1);
  }
  if (rest === '') throw bad;
  let totalNs = 0;
  const term = /^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)/;
  while (rest !== '') {
    const m = term.exec(rest);
    if (!m) throw bad;
    totalNs += Number(m[1]) * (DURATION_UNITS_NS[m[2]!] ?? Number.NaN);
    rest = rest.slice(m[0].length);
  }
  totalNs *= sign;
  if (!Number.isFinite(totalNs)) throw bad;
  if (totalNs < 0) throw problem('must not be negative');
  const seconds = totalNs / 1e9;
  if (!Number.isInteger(Math.round(seconds * 1e6) / 1e6)) throw problem('must be a whole number of seconds (WireGuard counts keepalive in seconds)');
  const whole = Math.round(seconds);
  if (whole > MAX_PERSISTENT_KEEPALIVE_SEC) throw problem(`must be at most ${MAX_PERSISTENT_KEEPALIVE_SEC}s`);
  return whole;
}

// ---- Schema ----

function required(what: string) {
  return (issue: { input?: unknown }): string => (issue.input === undefined ? 'is required' : `must be ${what}`);
}

/** A string field checked by `parse`; its problem message comes from the thrown Error. */
function parsedString<T>(parse: (text: string) => T, what: string) {
  return z.string({ error: required(what) }).transform((text, ctx): T => {
    try {
      return parse(text);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });
}

function integer(min: number, max: number, what: string) {
  const message = `must be ${what}`;
  return z.number({ error: required(what) }).int({ error: message }).min(min, { error: message }).max(max, { error: message });
}

const peerSchema = z.strictObject({
  publicKey: parsedString(parseKey, 'a base64 WireGuard key'),
  presharedKey: parsedString(parseKey, 'a base64 WireGuard key').optional(),
  endpoint: parsedString(parseEndpoint, 'a string like 192.0.2.1:51820').optional(),
  persistentKeepaliveInterval: parsedString(parseGoDurationSeconds, 'a Go duration string like "25s"').optional(),
  allowedIPs: z.array(parsedString(parseAllowedIp, 'a CIDR prefix string'), { error: required('a list of CIDR prefixes') }),
});

const fileSchema = z.strictObject({
  interface: parsedString(parseInterfaceName, 'an interface name string'),
  mtu: integer(MIN_MTU, MAX_MTU, `an integer ${MIN_MTU}..${MAX_MTU} (IPv6 needs at least 1280)`).default(DEFAULT_MTU),
  addresses: z.array(parsedString(parseInterfaceAddress, 'a CIDR address string'), { error: required('a list of CIDR addresses') }).default([]),
  wireguard: z.strictObject(
    {
      privateKey: parsedString(parseKey, 'a base64 WireGuard key'),
      listenPort: integer(0, 65535, 'an integer 0..65535 (0 = random)').default(0),
      firewallMark: integer(0, 0xffffffff, 'an integer 0..4294967295').default(0),
      peers: z.array(peerSchema, { error: required('a list of peers') }).default([]),
    },
    { error: required('a mapping') },
  ),
});

// ---- Error formatting ----

type PathKey = PropertyKey;

function formatPath(path: readonly PathKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out === '' ? '(top level)' : out;
}

function valueAt(root: unknown, path: readonly PathKey[]): unknown {
  let v: unknown = root;
  for (const key of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[key as string];
  }
  return v;
}

/**
 * A string as it may be shown: runs that look like key material are hidden, except a lone key in a
 * `publicKey` field (public by definition). A damaged file can carry a key into another field's value.
 */
function maskKeys(text: string, publicField: boolean): string {
  if (publicField && /^[A-Za-z0-9+/]{42,43}=?$/.test(text)) return text;
  return text.replace(/[A-Za-z0-9+/]{40,}={0,2}/g, '(hidden)');
}

/** The value as JSON; secret fields inside it (a mis-indented peer or section arrives whole) show as hidden. */
function showValue(v: unknown, publicField = false): string {
  let text: string;
  try {
    text =
      typeof v === 'string'
        ? JSON.stringify(maskKeys(v, publicField))
        : JSON.stringify(v, (k, x: unknown) => (SECRET_FIELDS.has(k) ? '(secret)' : typeof x === 'string' ? maskKeys(x, k === 'publicKey') : x)) ?? String(v);
  } catch {
    text = String(v);
  }
  return text.length > 100 ? `${text.slice(0, 100)}…` : text;
}

function line(source: string, path: readonly PathKey[], message: string, root: unknown): string {
  const last = path[path.length - 1];
  const secret = SECRET_FIELDS.has(String(last));
  const value = valueAt(root, path);
  const got = secret ? (value === undefined ? '' : ' (value not shown: it is secret)') : value === undefined ? '' : ` (got ${showValue(value, String(last) === 'publicKey')})`;
  return `${source}: ${formatPath(path)}: ${message}${got}`;
}

/** Problems that need several fields: duplicate peers, our own key as a peer, repeated prefixes. */
function crossFieldProblems(source: string, root: unknown): string[] {
  const out: string[] = [];
  const wireguard = valueAt(root, ['wireguard']);
  const rawPeers = valueAt(wireguard, ['peers']);
  let ownPublic: Uint8Array | null = null;
  const rawPrivate = valueAt(wireguard, ['privateKey']);
  if (typeof rawPrivate === 'string') {
    try {
      ownPublic = nodeCrypto.publicKey(clampPrivateKey(keyFromBase64(rawPrivate, 'privateKey')));
    } catch {
      /* reported by the schema */
    }
  }
  if (Array.isArray(rawPeers)) {
    const seenKeys: { key: Uint8Array; index: number }[] = [];
    const seenPrefixes = new Map<string, number>();
    rawPeers.forEach((peer: unknown, index) => {
      const rawKey = valueAt(peer, ['publicKey']);
      if (typeof rawKey === 'string') {
        let key: Uint8Array | null = null;
        try {
          key = keyFromBase64(rawKey, 'publicKey');
        } catch {
          /* reported by the schema */
        }
        if (key) {
          if (ownPublic && constantTimeEqual(key, ownPublic)) {
            out.push(line(source, ['wireguard', 'peers', index, 'publicKey'], "is this device's own public key (derived from wireguard.privateKey)", root));
          }
          const earlier = seenKeys.find((s) => constantTimeEqual(s.key, key));
          if (earlier) out.push(line(source, ['wireguard', 'peers', index, 'publicKey'], `duplicates the key of wireguard.peers[${earlier.index}]`, root));
          else seenKeys.push({ key, index });
        }
      }
      const allowed = valueAt(peer, ['allowedIPs']);
      if (Array.isArray(allowed)) {
        allowed.forEach((text: unknown, j) => {
          if (typeof text !== 'string') return;
          let canonical: string;
          try {
            canonical = formatPrefix(parsePrefix(text, 'prefix'));
          } catch {
            return;
          }
          const owner = seenPrefixes.get(canonical);
          if (owner !== undefined) {
            const where = owner === index ? 'is listed twice for this peer' : `is also an allowed IP of wireguard.peers[${owner}] (a prefix routes to one peer)`;
            out.push(line(source, ['wireguard', 'peers', index, 'allowedIPs', j], `${canonical} ${where}`, root));
          } else {
            seenPrefixes.set(canonical, index);
          }
        });
      }
    });
  }
  const addresses = valueAt(root, ['addresses']);
  if (Array.isArray(addresses)) {
    const seen = new Map<string, number>();
    addresses.forEach((text: unknown, i) => {
      if (typeof text !== 'string') return;
      let key: string;
      try {
        key = formatIp(parseInterfaceAddress(text).address);
      } catch {
        return;
      }
      const first = seen.get(key);
      if (first !== undefined) out.push(line(source, ['addresses', i], `address ${key} is already listed at addresses[${first}]`, root));
      else seen.set(key, i);
    });
  }
  return out;
}

// ---- Entry points ----
/**
 * Parses and validates the YAML text of an `up` config. `sourceName` starts every problem line
 * (usually the file path). Throws ConfigError listing every problem.
 */
export function parseWireguardConfig(text: string, sourceName: string): WireguardDeviceConfig {
  return parseWireguardConfigYaml(readWireguardConfigYaml(text), sourceName);
}

/** An `up` config's text as YAML: the document (syntax errors on `doc.errors`) and the text itself. */
export interface WireguardConfigYaml {
  doc: Document;
  text: string;
}

/**
 * The first step of parseWireguardConfig: the text as a YAML document. Never throws; nothing is
 * checked yet. (The fuzz target reads the document's secrets from the very tree the parser checked.)
 */
export function readWireguardConfigYaml(text: string): WireguardConfigYaml {
  return { doc: parseDocument(text, { uniqueKeys: true, prettyErrors: true }), text };
}

/** The second step of parseWireguardConfig: every problem of the document, or the config. Leaves `yaml` as it was. */
export function parseWireguardConfigYaml(yaml: WireguardConfigYaml, sourceName: string): WireguardDeviceConfig {
  const { doc, text } = yaml;
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        const where = pos ? `line ${pos.line}, column ${pos.col}` : 'YAML';
        // the first line only: later lines quote the source, which may hold a key
        const message = yamlMessage(e.message);
        return `${sourceName}: ${where}: invalid YAML: ${message}`;
      }),
    );
  }
  if (!isDocument(doc)) throw new ConfigError([`${sourceName}: not a YAML document`]);
  // a list or mapping as a key would be stringified whole into the key (a key's value with it)
  const complex = complexKeyOffset(doc);
  if (complex !== undefined) {
    const line = text.slice(0, complex).split('\n').length;
    const column = complex - text.lastIndexOf('\n', complex - 1);
    throw new ConfigError([`${sourceName}: line ${line}, column ${column}: invalid YAML: a mapping key must be a plain name, not a list or mapping (check the indentation, or a stray "?")`]);
  }
  let root: unknown;
  try {
    root = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // an alias to a missing anchor, or an alias bomb
    throw new ConfigError([`${sourceName}: YAML error: ${(err as Error).message.split('\n')[0]}`]);
  }
  if (root === null || root === undefined) throw new ConfigError([`${sourceName}: the file is empty`]);
  if (typeof root !== 'object' || Array.isArray(root)) {
    throw new ConfigError([`${sourceName}: (top level): must be a mapping with interface, mtu, addresses and wireguard (got ${showValue(root)})`]);
  }

  const parsed = fileSchema.safeParse(root);
  const problems: string[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) problems.push(`${sourceName}: ${formatPath([...issue.path, keyName(key)])}: unknown field`);
      } else {
        problems.push(line(sourceName, issue.path, issue.message, root));
      }
    }
  }
  problems.push(...crossFieldProblems(sourceName, root));
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);

  const data = parsed.data;
  const privateKey = clampPrivateKey(data.wireguard.privateKey);
  return {
    source: sourceName,
    interface: data.interface,
    mtu: data.mtu,
    addresses: data.addresses,
    wireguard: {
      privateKey,
      publicKey: nodeCrypto.publicKey(privateKey),
      listenPort: data.wireguard.listenPort,
      firewallMark: data.wireguard.firewallMark,
      peers: data.wireguard.peers.map((p) => ({
        publicKey: p.publicKey,
        presharedKey: p.presharedKey === undefined ? null : asPresharedKey(p.presharedKey),
        endpoint: p.endpoint ?? null,
        persistentKeepaliveSec: p.persistentKeepaliveInterval ?? 0,
        allowedIps: p.allowedIPs,
      })),
    },
  };
}

/** Reads and parses an `up` config file; problems are prefixed with `path`. */
export async function parseWireguardConfigFile(path: string): Promise<WireguardDeviceConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ConfigError([`${path}: cannot read the file: ${e.code ?? e.message}`]);
  }
  return parseWireguardConfig(text, path);
}

/**
 * The numeric endpoint for a config endpoint: IPs as they are, names looked up now (first address
 * the system resolver returns, as `wg` does).
 */
export async function resolveConfigEndpoint(endpoint: ConfigEndpoint): Promise<Endpoint> {
  if (endpoint.isIp) return { address: endpoint.host, port: endpoint.port };
  const { address } = await lookup(endpoint.host);
  const canonical = canonicalAddress(address);
  if (canonical === undefined) throw new Error(`endpoint ${endpoint.host}: the resolver returned ${JSON.stringify(address)}, not an IP address`);
  return { address: canonical, port: endpoint.port };
}
