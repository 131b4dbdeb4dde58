/**
 * The node config file: Talos machine-config snippets (`cluster:`, `machine:`) that users can paste
 * as they are, plus a `kubespand:` section for what a non-Talos host must say itself.
 *
 * Spec: ../shared/spec/kubespan.md §4.1 (options and defaults), §4.2 (filter syntax), §1.5–1.7
 * (cluster id verbatim, secret = standard base64 of 32 bytes, discovery URL schemes); the full
 * reference is docs/kubespan-config.md.
 *
 * Parsing is strict: unknown keys are errors (a typo must not pass silently), and every problem in
 * the file is reported at once as `<file>: <path.in.file>: <problem> (got <value>)`. The cluster
 * secret and anything that looks like key material is never echoed: its value shows as
 * "(value hidden)". A YAML `null` (an empty `key:`) means "not set", as in Talos.
 */
import { readFileSync, statSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { isAbsolute } from 'node:path';
import { inspect } from 'node:util';
import { LineCounter, parseDocument, type Document } from 'yaml';
import { complexKeyOffset, keyName, yamlMessage } from '../config/yaml-safety.js';
import { z } from 'zod';
import { formatIp, parseIp, parsePrefix, type Prefix } from '../noise/allowed-ips.js';
import { asPresharedKey, type PresharedKey } from '../noise/keys.js';
import { normaliseEndpoint, type DiscoveryTarget } from '../discovery/endpoint-url.js';
import { parseProxyUrl } from '../discovery-client/proxy.js';
import { KUBESPAN_DEFAULT_PORT, parseEndpointFilter, type Endpoint } from './endpoints.js';
import { isEmptySelector, type DeviceSelector } from '../netdev/selector.js';

// ---- Defaults ----

export const DEFAULT_DISCOVERY_ENDPOINT = 'https://discovery.talos.dev/';
export const DEFAULT_KUBESPAN_MTU = 1420;
/** Talos `KubeSpanLinkMinimumMTU`. */
export const MIN_KUBESPAN_MTU = 1280;
export const DEFAULT_STATE_DIR = '/var/lib/kubespand';
export const DEFAULT_CONTROL_SOCKET = '/run/kubespand/kubespand.sock';
export const DEFAULT_INTERFACE = 'kubespan';
export const DEFAULT_LOG_LEVEL = 'info';
/** The system trust store; users append a MITM proxy CA here. `kubespand.discovery.caFiles` add to it. */
export const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
/** TTL of the VIP election lease in etcd: a vanished owner is replaced after at most this long. */
export const DEFAULT_VIP_LEASE_TTL_SEC = 10;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

// ---- The typed result ----

export interface NodeConfig {
  /** Where the text came from (file path or a name given by the caller); prefixes every message. */
  sourceName: string;
  cluster: {
    /** Cluster id, verbatim (sent to discovery as is; SHA-256 of it gives the ULA). */
    id: string | undefined;
    /** The decoded cluster secret (32 bytes): AES-256 key for discovery and the WireGuard PSK. Redacted when printed. */
    secret: PresharedKey | undefined;
    /** The secret as written (standard base64). Hidden when the config is printed. */
    secretBase64: string | undefined;
    discovery: {
      enabled: boolean;
      registries: {
        service: { endpoint: string; disabled: boolean; target: DiscoveryTarget };
        /** Accepted so Talos snippets paste; kubespand has no Kubernetes registry. */
        kubernetes: { disabled: boolean };
      };
    };
  };
  machine: {
    network: {
      kubespan: {
        enabled: boolean;
        advertiseKubernetesNetworks: boolean;
        allowDownPeerBypass: boolean;
        harvestExtraEndpoints: boolean;
        mtu: number;
        filters: {
          /** As written (each validated): feed to `filterIps`. Empty = no filtering. */
          endpoints: string[];
          excludeAdvertisedNetworks: Prefix[];
        };
        extraAnnouncedEndpoints: Endpoint[];
        /** Links whose addresses become endpoints (union of the selectors); undefined = every usable link. */
        endpointLinks: DeviceSelector[] | undefined;
      };
      /** A shared virtual IP (Talos Layer2 VIP), elected through `kubespand.etcd`. */
      vip: VipConfig | undefined;
      /** Resolvers for the discovery host (canonical IP text); empty = the system resolver. */
      nameservers: string[];
    };
    /** Proxy settings for the discovery connection (upper-case spellings folded into these). */
    env: { http_proxy?: string; https_proxy?: string; no_proxy?: string; grpc_proxy?: string; no_grpc_proxy?: string };
  };
  kubespand: {
    nodeName: string | undefined;
    hostname: string;
    podCIDRs: Prefix[];
    stateDir: string;
    controlSocket: string;
    interface: string;
    listenPort: number;
    identityLink: string | undefined;
    /** The link whose MAC seeds the KubeSpan address, chosen by hardware; exclusive with identityLink. */
    identityLinkSelector: DeviceSelector | undefined;
    /** The etcd cluster the VIP election uses; undefined when no endpoints are given. */
    etcd: EtcdConfig | undefined;
    discovery: { caFiles: string[] };
    logLevel: LogLevel;
    /** `host` '' means every address. */
    metricsListen: { host: string; port: number } | undefined;
  };
  /** Things that are valid but probably not what was meant, formatted like problems. */
  warnings: string[];
}

export interface VipConfig {
  /** Canonical IP text. */
  ip: string;
  /** Exactly one of link and deviceSelector is set. */
  link: string | undefined;
  deviceSelector: DeviceSelector | undefined;
}

export interface EtcdConfig {
  /** `http(s)://host:port` URLs of the etcd members (v3 JSON gateway). */
  endpoints: string[];
  caFile: string | undefined;
  certFile: string | undefined;
  keyFile: string | undefined;
  /** Seconds. */
  leaseTTL: number;
}

export interface ConfigProblem {
  /** Dotted path in the file (`machine.network.kubespan.mtu`, `…endpoints[1]`); '' for the file itself. */
  path: string;
  /** The problem, ending with `(got <value>)` where there is a value to show. */
  message: string;
}

/** Every problem found in one config file. The message has one line per problem. */
export class ConfigError extends Error {
  constructor(
    readonly sourceName: string,
    readonly problems: ConfigProblem[],
  ) {
    super(problems.map((p) => formatProblem(sourceName, p)).join('\n'));
    this.name = 'ConfigError';
  }
}

export function formatProblem(sourceName: string, p: ConfigProblem): string {
  return p.path === '' ? `${sourceName}: ${p.message}` : `${sourceName}: ${p.path}: ${p.message}`;
}

// ---- Field checks (each returns the problem, or undefined) ----

type Check = (v: string) => string | undefined;

const BASE64_STD = /^[A-Za-z0-9+/]*={0,2}$/;
const CLUSTER_SECRET_BYTES = 32;
const MAX_CLUSTER_ID_BYTES = 256;

const checkSecret: Check = (v) => {
  if (v.length % 4 !== 0 || !BASE64_STD.test(v)) return 'is not standard base64 (A–Z, a–z, 0–9, +, / with = padding)';
  const n = Buffer.from(v, 'base64').length;
  if (n !== CLUSTER_SECRET_BYTES) return `must decode to exactly ${CLUSTER_SECRET_BYTES} bytes, decodes to ${n}`;
  return undefined;
};

const checkClusterId: Check = (v) => {
  if (v === '') return 'must not be empty';
  const n = Buffer.byteLength(v, 'utf8');
  return n > MAX_CLUSTER_ID_BYTES ? `is ${n} bytes; the discovery service accepts at most ${MAX_CLUSTER_ID_BYTES}` : undefined;
};

function reason(err: unknown): string {
  // drop the "field: " lead-in of errors from the shared parsers; the path is printed already
  return (err as Error).message.replace(/^[^:]*: /, '');
}

const checkCidr: Check = (v) => {
  try {
    parsePrefix(v, 'cidr');
    return undefined;
  } catch (err) {
    return `is not a CIDR or IP address: ${reason(err)}`;
  }
};

const checkFilter: Check = (v) => {
  try {
    parseEndpointFilter(v, 'filter');
    return undefined;
  } catch {
    return 'is not a CIDR or IP address, optionally prefixed with "!"';
  }
};

const checkIp: Check = (v) => {
  try {
    parseIp(v, 'ip');
    return undefined;
  } catch (err) {
    return `is not an IP address: ${reason(err)}`;
  }
};

/** `ip:port` or `[ipv6]:port` → endpoint, or the problem. */
export function parseEndpointText(v: string): Endpoint | string {
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):([0-9]{1,5})$/.exec(v);
  if (!m) {
    return (v.match(/:/g)?.length ?? 0) > 1 && !v.startsWith('[')
      ? 'is not ip:port (write an IPv6 endpoint as [address]:port)'
      : 'is not ip:port or [ipv6]:port';
  }
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return `port ${m[3]} is out of range 1–65535`;
  let bytes: Uint8Array;
  try {
    bytes = parseIp(host, 'ip');
  } catch (err) {
    return `is not ip:port: ${reason(err)}`;
  }
  if (m[1] !== undefined && bytes.length !== 16) return 'brackets are for IPv6 addresses only';
  return { address: formatIp(bytes), port };
}

const checkEndpoint: Check = (v) => {
  const r = parseEndpointText(v);
  return typeof r === 'string' ? r : undefined;
};

const checkDiscoveryUrl: Check = (v) => {
  try {
    normaliseEndpoint(v, 'endpoint');
    return undefined;
  } catch (err) {
    // the shared parser says `"<url>" <problem>`; the value is printed after the problem already
    return reason(err).replace(/^"[^"]*" /, '');
  }
};

const IFNAME = /^[^\s/:]{1,15}$/;
const checkIfname: Check = (v) =>
  IFNAME.test(v) && v !== '.' && v !== '..' ? undefined : 'is not a Linux interface name (1–15 characters, no spaces, "/" or ":")';

const MAC_GLOB = /^[0-9a-f:*]*$/;
const checkMacGlob: Check = (v) => {
  if (MAC_GLOB.test(v)) return undefined;
  if (/^[0-9a-fA-F:*]*$/.test(v)) return 'hardware addresses are matched in lowercase colon form (write 3c:ec:ef:… not 3C:EC:EF:…)';
  return 'is not a hardware address pattern (hex pairs separated by ":", with "*" as the only wildcard)';
};

const checkEtcdEndpoint: Check = (v) => {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return 'is not a URL (want https://host:2379)';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'must be an http:// or https:// URL';
  if (u.pathname !== '/' || u.search !== '' || u.hash !== '') return 'must have no path, query or fragment (want https://host:2379)';
  if (u.username !== '' || u.password !== '') return 'must not carry credentials; use certFile and keyFile';
  return undefined;
};

const checkAbsolutePath: Check = (v) => (v !== '' && isAbsolute(v) ? undefined : 'must be an absolute path');

/** sockaddr_un.sun_path is 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;
const checkSocketPath: Check = (v) =>
  checkAbsolutePath(v) ??
  (Buffer.byteLength(v) > MAX_SOCKET_PATH_BYTES ? `is ${Buffer.byteLength(v)} bytes; a unix socket path can have at most ${MAX_SOCKET_PATH_BYTES}` : undefined);

const DNS_LABEL = '[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?';
const NODE_NAME = new RegExp(`^${DNS_LABEL}(\\.${DNS_LABEL})*$`);
const checkNodeName: Check = (v) =>
  v.length <= 253 && NODE_NAME.test(v) ? undefined : 'is not a Kubernetes node name (lowercase RFC 1123 subdomain: a–z, 0–9, "-", ".", at most 253 characters)';

const checkHostname: Check = (v) =>
  v.length >= 1 && v.length <= 253 && /^[\x21-\x7e]+$/.test(v) ? undefined : 'must be 1–253 printable characters without spaces';

function parseListen(v: string): { host: string; port: number } | string {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):([0-9]{1,5})$/.exec(v);
  if (!m) return 'is not host:port (use [address]:port for IPv6, :port for every address)';
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return `port ${m[3]} is out of range 1–65535`;
  return { host: m[1] ?? m[2]!, port };
}
const checkListen: Check = (v) => {
  const r = parseListen(v);
  return typeof r === 'string' ? r : undefined;
};

/** The discovery client's own proxy parser, so validate refuses what `run` would refuse. */
const checkProxy: Check = (v) => {
  if (v === '') return undefined; // an explicit "none"
  try {
    parseProxyUrl(v, 'proxy');
    return undefined;
  } catch (err) {
    return reason(err).replace(/^"[^"]*" /, '');
  }
};

// ---- Schema ----

function checked(check: Check) {
  return z.string().superRefine((v, ctx) => {
    const problem = check(v);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  });
}

/**
 * A strict mapping whose known keys set to null count as unset (Talos: `key:` with no value is the
 * zero value). An absent or null section is an empty one, so its defaults apply.
 */
function section<T extends z.ZodRawShape>(shape: T) {
  const known = new Set(Object.keys(shape));
  return z.preprocess((v) => {
    if (v === null || v === undefined) return {};
    if (typeof v !== 'object' || Array.isArray(v)) return v;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (!(x === null && known.has(k))) out[k] = x;
    return out;
  }, z.strictObject(shape));
}

const port = (what: string) => z.int().min(1, { error: `${what} must be 1–65535` }).max(65535, { error: `${what} must be 1–65535` });

/** Talos `deviceSelector`; an empty one matches nothing, so it is refused. */
const deviceSelector = section({
  busPath: z.string().optional(),
  hardwareAddr: checked(checkMacGlob).optional(),
  permanentAddr: checked(checkMacGlob).optional(),
  pciID: z.string().optional(),
  driver: z.string().optional(),
  physical: z.boolean().optional(),
}).refine((v) => !isEmptySelector(v), {
  message: 'is an empty device selector, which matches nothing (set busPath, hardwareAddr, permanentAddr, pciID, driver or physical)',
  // an unknown key (a typo) is the problem to report, not the emptiness it causes
  when: (payload) => payload.issues.length === 0,
});

const schema = section({
  cluster: section({
    id: checked(checkClusterId).optional(),
    secret: checked(checkSecret).optional(),
    discovery: section({
      enabled: z.boolean().default(true),
      registries: section({
        service: section({
          endpoint: checked(checkDiscoveryUrl).default(DEFAULT_DISCOVERY_ENDPOINT),
          disabled: z.boolean().default(false),
        }),
        kubernetes: section({
          disabled: z.boolean().default(true),
        }),
      }),
    }),
  }),
  machine: section({
    network: section({
      kubespan: section({
        enabled: z.boolean().default(false),
        advertiseKubernetesNetworks: z.boolean().default(false),
        allowDownPeerBypass: z.boolean().default(false),
        harvestExtraEndpoints: z.boolean().default(false),
        mtu: z
          .int()
          .superRefine((v, ctx) => {
            // 0 is the legacy spelling of "default"
            if (v !== 0 && v < MIN_KUBESPAN_MTU) ctx.addIssue({ code: 'custom', message: `must be at least ${MIN_KUBESPAN_MTU} (the IPv6 minimum MTU)` });
            if (v > 65535) ctx.addIssue({ code: 'custom', message: 'must be at most 65535' });
          })
          .default(DEFAULT_KUBESPAN_MTU),
        filters: section({
          endpoints: z.array(checked(checkFilter)).default([]),
          excludeAdvertisedNetworks: z.array(checked(checkCidr)).default([]),
        }),
        extraAnnouncedEndpoints: z.array(checked(checkEndpoint)).default([]),
        endpointLinks: z
          .array(deviceSelector)
          .superRefine((v, ctx) => {
            if (v.length === 0) ctx.addIssue({ code: 'custom', message: 'is an empty list, so no address would be advertised; omit it to use every usable link' });
          })
          .optional(),
      }),
      vip: section({
        ip: checked(checkIp),
        link: checked(checkIfname).optional(),
        deviceSelector: deviceSelector.optional(),
      }).optional(),
      nameservers: z.array(checked(checkIp)).default([]),
    }),
    env: section({
      http_proxy: checked(checkProxy).optional(),
      https_proxy: checked(checkProxy).optional(),
      no_proxy: z.string().optional(),
      grpc_proxy: checked(checkProxy).optional(),
      no_grpc_proxy: z.string().optional(),
      HTTP_PROXY: checked(checkProxy).optional(),
      HTTPS_PROXY: checked(checkProxy).optional(),
      NO_PROXY: z.string().optional(),
      GRPC_PROXY: checked(checkProxy).optional(),
    }),
  }),
  kubespand: section({
    nodeName: checked(checkNodeName).optional(),
    hostname: checked(checkHostname).optional(),
    podCIDRs: z.array(checked(checkCidr)).default([]),
    stateDir: checked(checkAbsolutePath).default(DEFAULT_STATE_DIR),
    controlSocket: checked(checkSocketPath).default(DEFAULT_CONTROL_SOCKET),
    interface: checked(checkIfname).default(DEFAULT_INTERFACE),
    listenPort: port('listenPort').default(KUBESPAN_DEFAULT_PORT),
    identityLink: checked(checkIfname).optional(),
    identityLinkSelector: deviceSelector.optional(),
    etcd: section({
      endpoints: z.array(checked(checkEtcdEndpoint)).default([]),
      caFile: checked(checkAbsolutePath).optional(),
      certFile: checked(checkAbsolutePath).optional(),
      keyFile: checked(checkAbsolutePath).optional(),
      leaseTTL: z.int().min(2, { error: 'must be 2–300 seconds' }).max(300, { error: 'must be 2–300 seconds' }).default(DEFAULT_VIP_LEASE_TTL_SEC),
    }),
    discovery: section({
      caFiles: z.array(checked(checkAbsolutePath)).default([]),
    }),
    logLevel: z.enum(LOG_LEVELS).default(DEFAULT_LOG_LEVEL),
    metricsListen: checked(checkListen).optional(),
  }),
});

type Parsed = z.output<typeof schema>;

// ---- Problem formatting ----

type PathKey = string | number;

function formatPath(path: readonly PathKey[]): string {
  let out = '';
  for (const k of path) out += typeof k === 'number' ? `[${k}]` : out === '' ? k : `.${k}`;
  return out;
}

const HIDDEN_KEY = /secret|private|password|token|psk/i;

function valueAt(root: unknown, path: readonly PathKey[]): { found: boolean; value: unknown } {
  let cur = root;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object' || !(k in (cur as object))) return { found: false, value: undefined };
    cur = (cur as Record<PathKey, unknown>)[k];
  }
  return { found: true, value: cur };
}

/** Looks like key material (a long base64 run, 64 hex digits): shown nowhere, whatever key it sits under. */
const KEY_MATERIAL = /^\s*(?:[A-Za-z0-9+/]{40,}={0,2}|[0-9a-fA-F]{64})\s*$/;

/**
 * A string as it may be shown: key material hidden; for URLs (proxies), everything before the last
 * '@' masked, with or without a scheme (a mistyped password may hold '@', '/' or spaces).
 */
function showable(v: string): string {
  if (KEY_MATERIAL.test(v)) return '(value hidden)';
  // a damaged file can carry key material into another value: hide long base64 runs anywhere
  return v.replace(/^((?:[a-z][a-z0-9+.-]*:\/\/)?).*@/is, '$1***@').replace(/[A-Za-z0-9+/]{40,}={0,2}/g, '(hidden)');
}

function renderValue(path: readonly PathKey[], root: unknown): string {
  if (path.some((k) => typeof k === 'string' && HIDDEN_KEY.test(k))) return '(value hidden)';
  const { found, value } = valueAt(root, path);
  if (!found || value === undefined) return '(got nothing)';
  let text: string;
  if (typeof value === 'string') {
    text = JSON.stringify(showable(value));
  } else if (value === null || typeof value !== 'object') {
    text = String(value);
  } else {
    try {
      // a mis-indented section arrives here whole: hide its secret keys and mask its strings
      text = JSON.stringify(value, (k, v: unknown) => (HIDDEN_KEY.test(k) ? '(value hidden)' : typeof v === 'string' ? showable(v) : v)) ?? String(value);
    } catch {
      text = Array.isArray(value) ? 'a list' : 'a mapping'; // a recursive YAML alias
    }
  }
  if (text.length > 80) text = `${text.slice(0, 77)}…`;
  return `(got ${text})`;
}

const TYPE_WORDS: Record<string, string> = {
  string: 'must be a string',
  boolean: 'must be true or false',
  // every number in the file is an integer
  number: 'must be an integer',
  int: 'must be an integer',
  array: 'must be a list',
  object: 'must be a mapping',
};

/** The schema node at `path` (through defaults, optionals, preprocess and arrays). */
function schemaAt(path: readonly PathKey[]): z.ZodType | undefined {
  let cur: unknown = schema;
  const unwrap = (s: unknown): unknown => {
    for (;;) {
      if (s instanceof z.ZodPipe) s = s.out;
      else if (s instanceof z.ZodDefault || s instanceof z.ZodOptional) s = s.unwrap();
      else return s;
    }
  };
  for (const k of path) {
    cur = unwrap(cur);
    if (cur instanceof z.ZodObject && typeof k === 'string') cur = cur.shape[k];
    else if (cur instanceof z.ZodArray) cur = cur.element;
    else return undefined;
  }
  return unwrap(cur) as z.ZodType | undefined;
}

function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length]![b.length]!;
}

function unknownKeyMessage(parent: readonly PathKey[], key: string): string {
  const node = schemaAt(parent);
  const known = node instanceof z.ZodObject ? Object.keys(node.shape) : [];
  const close = known.filter((k) => k.toLowerCase() === key.toLowerCase() || distance(k.toLowerCase(), key.toLowerCase()) <= Math.max(1, Math.floor(k.length / 4)));
  if (close.length > 0) return `unknown key; did you mean ${close.map((k) => JSON.stringify(k)).join(' or ')}?`;
  return known.length > 0 ? `unknown key (known keys here: ${known.join(', ')})` : 'unknown key';
}

function issueProblems(issue: z.core.$ZodIssue, root: unknown): ConfigProblem[] {
  const path = issue.path.filter((k): k is PathKey => typeof k === 'string' || typeof k === 'number');
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => ({ path: formatPath([...path, keyName(key)]), message: `${unknownKeyMessage(path, key)} ${renderValue([...path, key], root)}` }));
    case 'invalid_type': {
      const words = TYPE_WORDS[issue.expected] ?? `must be of type ${issue.expected}`;
      return [{ path: formatPath(path), message: `${words} ${renderValue(path, root)}` }];
    }
    case 'invalid_value':
      return [{ path: formatPath(path), message: `must be one of ${issue.values.map((v) => String(v)).join(', ')} ${renderValue(path, root)}` }];
    default:
      return [{ path: formatPath(path), message: `${issue.message} ${renderValue(path, root)}` }];
  }
}

// ---- Cross-field rules ----

/** Rules of the network sections that hold whether KubeSpan is on or not. */
function networkProblems(root: unknown): ConfigProblem[] {
  const at = (...path: string[]) => valueAt(root, path).value;
  const set = (v: unknown) => v !== undefined && v !== null;
  const problems: ConfigProblem[] = [];
  const vip = at('machine', 'network', 'vip');
  if (vip !== null && typeof vip === 'object' && !Array.isArray(vip)) {
    const hasLink = set(at('machine', 'network', 'vip', 'link'));
    const hasSelector = set(at('machine', 'network', 'vip', 'deviceSelector'));
    if (hasLink && hasSelector) problems.push({ path: 'machine.network.vip', message: 'sets both link and deviceSelector; give exactly one' });
    if (!hasLink && !hasSelector) problems.push({ path: 'machine.network.vip', message: 'needs the link that carries the address: set link or deviceSelector' });
    const endpoints = at('kubespand', 'etcd', 'endpoints');
    if (!Array.isArray(endpoints) || endpoints.length === 0) {
      problems.push({ path: 'kubespand.etcd.endpoints', message: 'is required when machine.network.vip is set: the nodes elect the VIP owner through etcd (got nothing)' });
    }
  }
  if (set(at('kubespand', 'identityLink')) && set(at('kubespand', 'identityLinkSelector'))) {
    problems.push({ path: 'kubespand.identityLinkSelector', message: 'cannot be combined with kubespand.identityLink; give one of them' });
  }
  if (set(at('kubespand', 'etcd', 'certFile')) !== set(at('kubespand', 'etcd', 'keyFile'))) {
    problems.push({ path: set(at('kubespand', 'etcd', 'certFile')) ? 'kubespand.etcd.keyFile' : 'kubespand.etcd.certFile', message: 'is required with the other half of the client certificate (certFile and keyFile go together)' });
  }
  return problems;
}

function crossFieldProblems(root: unknown): ConfigProblem[] {
  const at = (...path: string[]) => valueAt(root, path).value;
  const problems: ConfigProblem[] = networkProblems(root);
  if (at('machine', 'network', 'kubespan', 'enabled') !== true) return problems;
  const why = 'when machine.network.kubespan.enabled is true';
  if (at('cluster', 'id') === undefined || at('cluster', 'id') === null) {
    problems.push({ path: 'cluster.id', message: `is required ${why} (got nothing)` });
  }
  if (at('cluster', 'secret') === undefined || at('cluster', 'secret') === null) {
    problems.push({ path: 'cluster.secret', message: `is required ${why} (got nothing)` });
  }
  if (at('cluster', 'discovery', 'enabled') === false) {
    problems.push({ path: 'cluster.discovery.enabled', message: `must be true ${why}: KubeSpan finds its peers through discovery (got false)` });
  }
  if (at('cluster', 'discovery', 'registries', 'service', 'disabled') === true) {
    problems.push({
      path: 'cluster.discovery.registries.service.disabled',
      message: `must be false ${why}: the discovery service is kubespand's only registry (got true)`,
    });
  }
  return problems;
}

// ---- Building the result ----

function redactCluster(cluster: NodeConfig['cluster']): NodeConfig['cluster'] {
  const hidden = () => ({ ...cluster, secret: cluster.secret && '(hidden)', secretBase64: cluster.secretBase64 && '(hidden)' });
  Object.defineProperty(cluster, 'toJSON', { value: hidden, enumerable: false });
  Object.defineProperty(cluster, inspect.custom, { value: (_depth: number, options: object) => inspect(hidden(), options), enumerable: false });
  return cluster;
}

function build(p: Parsed, sourceName: string, root: unknown): NodeConfig {
  const ks = p.machine.network.kubespan;
  const env = p.machine.env;
  const warnings: ConfigProblem[] = [];
  const pick = (lower: string | undefined, upper: string | undefined, name: string): string | undefined => {
    if (lower !== undefined && upper !== undefined && lower !== upper) {
      warnings.push({ path: `machine.env.${name.toUpperCase()}`, message: `differs from machine.env.${name}; using ${name}` });
    }
    return lower ?? upper;
  };
  const envOut: NodeConfig['machine']['env'] = {};
  const httpProxy = pick(env.http_proxy, env.HTTP_PROXY, 'http_proxy');
  const httpsProxy = pick(env.https_proxy, env.HTTPS_PROXY, 'https_proxy');
  const noProxy = pick(env.no_proxy, env.NO_PROXY, 'no_proxy');
  const grpcProxy = pick(env.grpc_proxy, env.GRPC_PROXY, 'grpc_proxy');
  if (httpProxy !== undefined) envOut.http_proxy = httpProxy;
  if (httpsProxy !== undefined) envOut.https_proxy = httpsProxy;
  if (noProxy !== undefined) envOut.no_proxy = noProxy;
  if (grpcProxy !== undefined) envOut.grpc_proxy = grpcProxy;
  if (env.no_grpc_proxy !== undefined) envOut.no_grpc_proxy = env.no_grpc_proxy;

  if (!ks.enabled) {
    warnings.push({ path: 'machine.network.kubespan.enabled', message: 'is false: kubespand will not build a mesh' });
  }
  const kubernetesRegistry = valueAt(root, ['cluster', 'discovery', 'registries', 'kubernetes', 'disabled']).value;
  if (kubernetesRegistry === false) {
    warnings.push({
      path: 'cluster.discovery.registries.kubernetes.disabled',
      message: 'is false, but kubespand has no Kubernetes registry (deprecated upstream); only the discovery service is used',
    });
  }
  const filters = ks.filters.endpoints;
  if (filters.length > 0 && filters.every((f) => f.startsWith('!'))) {
    warnings.push({
      path: 'machine.network.kubespan.filters.endpoints',
      message: 'has only negated entries, so no address is advertised (a "!" entry only removes what an earlier positive entry added; start with 0.0.0.0/0 and ::/0)',
    });
  }
  if (ks.advertiseKubernetesNetworks && p.kubespand.podCIDRs.length === 0) {
    warnings.push({ path: 'machine.network.kubespan.advertiseKubernetesNetworks', message: 'is true but kubespand.podCIDRs is empty: nothing extra is advertised' });
  }
  const target = normaliseEndpoint(p.cluster.discovery.registries.service.endpoint, 'endpoint');
  if (ks.enabled && !target.tls) {
    warnings.push({
      path: 'cluster.discovery.registries.service.endpoint',
      message: 'is plaintext http://: affiliate data stays encrypted with the cluster secret, but the cluster id and client addresses are visible on the wire',
    });
  }
  const listen = p.kubespand.metricsListen === undefined ? undefined : parseListen(p.kubespand.metricsListen);
  const vip = p.machine.network.vip;
  const etcd = p.kubespand.etcd;
  if (etcd.endpoints.some((e) => e.startsWith('http://'))) {
    warnings.push({ path: 'kubespand.etcd.endpoints', message: 'has a plaintext http:// endpoint: anyone on the path can read and forge the VIP election' });
  }
  if (etcd.endpoints.length > 0 && vip === undefined) {
    warnings.push({ path: 'kubespand.etcd', message: 'is set but machine.network.vip is not: etcd is only used for the VIP election' });
  }
  for (const [path, sel] of [
    ['machine.network.vip.deviceSelector', vip?.deviceSelector],
    ['kubespand.identityLinkSelector', p.kubespand.identityLinkSelector],
    ...(ks.endpointLinks ?? []).map((s, i) => [`machine.network.kubespan.endpointLinks[${i}]`, s] as const),
  ] as const) {
    if (sel?.pciID && /[a-f]/.test(sel.pciID)) {
      warnings.push({ path: `${path}.pciID`, message: `has lower-case hex; PCI ids are matched case-sensitively in the kernel's upper-case form (e.g. 8086:15BC) (got ${JSON.stringify(sel.pciID)})` });
    }
  }

  const cluster = redactCluster({
    id: p.cluster.id,
    secret: p.cluster.secret === undefined ? undefined : asPresharedKey(new Uint8Array(Buffer.from(p.cluster.secret, 'base64')), 'cluster.secret'),
    secretBase64: p.cluster.secret,
    discovery: {
      enabled: p.cluster.discovery.enabled,
      registries: {
        service: { ...p.cluster.discovery.registries.service, target },
        kubernetes: { ...p.cluster.discovery.registries.kubernetes },
      },
    },
  });
  return {
    sourceName,
    cluster,
    machine: {
      network: {
        kubespan: {
          enabled: ks.enabled,
          advertiseKubernetesNetworks: ks.advertiseKubernetesNetworks,
          allowDownPeerBypass: ks.allowDownPeerBypass,
          harvestExtraEndpoints: ks.harvestExtraEndpoints,
          mtu: ks.mtu === 0 ? DEFAULT_KUBESPAN_MTU : ks.mtu,
          filters: {
            endpoints: [...filters],
            excludeAdvertisedNetworks: ks.filters.excludeAdvertisedNetworks.map((c) => parsePrefix(c)),
          },
          extraAnnouncedEndpoints: ks.extraAnnouncedEndpoints.map((e) => parseEndpointText(e) as Endpoint),
          endpointLinks: ks.endpointLinks?.map(compactSelector),
        },
        vip: vip === undefined ? undefined : { ip: formatIp(parseIp(vip.ip)), link: vip.link, deviceSelector: vip.deviceSelector && compactSelector(vip.deviceSelector) },
        nameservers: p.machine.network.nameservers.map((ip) => formatIp(parseIp(ip))),
      },
      env: envOut,
    },
    kubespand: {
      nodeName: p.kubespand.nodeName,
      hostname: p.kubespand.hostname ?? osHostname(),
      podCIDRs: p.kubespand.podCIDRs.map((c) => parsePrefix(c)),
      stateDir: p.kubespand.stateDir,
      controlSocket: p.kubespand.controlSocket,
      interface: p.kubespand.interface,
      listenPort: p.kubespand.listenPort,
      identityLink: p.kubespand.identityLink,
      identityLinkSelector: p.kubespand.identityLinkSelector && compactSelector(p.kubespand.identityLinkSelector),
      etcd:
        etcd.endpoints.length === 0
          ? undefined
          : { endpoints: [...etcd.endpoints], caFile: etcd.caFile, certFile: etcd.certFile, keyFile: etcd.keyFile, leaseTTL: etcd.leaseTTL },
      discovery: { caFiles: [...p.kubespand.discovery.caFiles] },
      logLevel: p.kubespand.logLevel,
      metricsListen: typeof listen === 'object' ? listen : undefined,
    },
    warnings: warnings.map((w) => formatProblem(sourceName, w)),
  };
}

/** The selector with only its set fields (so it prints and compares cleanly). */
function compactSelector(sel: DeviceSelector): DeviceSelector {
  const out: DeviceSelector = {};
  for (const k of ['busPath', 'hardwareAddr', 'permanentAddr', 'pciID', 'driver'] as const) if (sel[k] !== undefined && sel[k] !== '') out[k] = sel[k];
  if (sel.physical !== undefined) out.physical = sel.physical;
  return out;
}

// ---- Entry points ----
/**
 * Parses and validates a node config. Throws ConfigError listing every problem; never echoes the
 * cluster secret.
 */
export function parseNodeConfig(text: string, sourceName: string): NodeConfig {
  return parseNodeConfigYaml(readNodeConfigYaml(text), sourceName);
}

/** A node config's text as YAML: the document (syntax errors on `doc.errors`) and its line starts. */
export interface NodeConfigYaml {
  doc: Document;
  lineCounter: LineCounter;
}

/**
 * The first step of parseNodeConfig: the text as a YAML document. Never throws; nothing is checked
 * yet. (The fuzz target reads the document's secrets from the very tree the parser checked.)
 */
export function readNodeConfigYaml(text: string): NodeConfigYaml {
  const lineCounter = new LineCounter();
  return { doc: parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter }), lineCounter };
}

/** The second step of parseNodeConfig: every problem of the document, or the config. Leaves `yaml` as it was. */
export function parseNodeConfigYaml(yaml: NodeConfigYaml, sourceName: string): NodeConfig {
  const { doc, lineCounter } = yaml;
  if (doc.errors.length > 0) {
    throw new ConfigError(
      sourceName,
      doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        const message = e.code === 'MULTIPLE_DOCS'
          ? 'the file holds more than one YAML document ("---"); put cluster:, machine: and kubespand: in one document'
          : `YAML syntax error: ${yamlMessage(e.message)}`;
        return { path: `line ${pos.line}, column ${pos.col}`, message };
      }),
    );
  }
  // a list or mapping as a key would be stringified whole into the key (a key's value with it)
  const complex = complexKeyOffset(doc);
  if (complex !== undefined) {
    const pos = lineCounter.linePos(complex);
    throw new ConfigError(sourceName, [{ path: `line ${pos.line}, column ${pos.col}`, message: 'YAML syntax error: a mapping key must be a plain name, not a list or mapping (check the indentation, or a stray "?")' }]);
  }
  let root: unknown;
  try {
    root = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError(sourceName, [{ path: '', message: `YAML error: ${(err as Error).message}` }]);
  }
  if (root === null || root === undefined) root = {};
  if (typeof root !== 'object' || Array.isArray(root)) {
    throw new ConfigError(sourceName, [{ path: '', message: `must be a YAML mapping with cluster:, machine: and kubespand: sections ${renderValue([], root)}` }]);
  }
  const result = schema.safeParse(root);
  const problems = [...(result.success ? [] : result.error.issues.flatMap((i) => issueProblems(i, root))), ...crossFieldProblems(root)];
  if (problems.length > 0 || !result.success) throw new ConfigError(sourceName, problems);
  return build(result.data, sourceName, root);
}

/** Reads and parses a node config file; a file that cannot be read is a ConfigError too. */
export function parseNodeConfigFile(path: string): NodeConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as { code?: string }).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
    throw new ConfigError(path, [{ path: '', message: `cannot read the config file: ${why}` }]);
  }
  return parseNodeConfig(text, path);
}

/** The CA files for discovery TLS: the system bundle, then `kubespand.discovery.caFiles`. */
export function trustedCaFiles(config: NodeConfig): string[] {
  return [SYSTEM_CA_BUNDLE, ...config.kubespand.discovery.caFiles];
}

/**
 * Checks what only the host can tell: every configured CA file exists, is readable and holds a PEM
 * certificate. Returns the problems (empty when all is well).
 */
/**
 * The config file holds the cluster secret: when others can read it, the problem to refuse it with
 * (wg warns about world-accessible keys). Empty when the mode is fine, the file holds no secret, or
 * the config was parsed from text that is not a file.
 */
export function checkConfigFileMode(config: NodeConfig): ConfigProblem[] {
  let mode: number;
  try {
    mode = statSync(config.sourceName).mode & 0o777;
  } catch {
    return [];
  }
  if ((mode & 0o007) === 0 || config.cluster.secret === undefined) return [];
  return [{ path: '', message: `mode ${mode.toString(8).padStart(4, '0')} lets others read the cluster secret; refusing to use it (fix with: chmod 600 ${config.sourceName})` }];
}

export function checkConfigFiles(config: NodeConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  config.kubespand.discovery.caFiles.forEach((file, i) => {
    const path = `kubespand.discovery.caFiles[${i}]`;
    let text: string;
    try {
      if (!statSync(file).isFile()) {
        problems.push({ path, message: `is not a regular file (got ${JSON.stringify(file)})` });
        return;
      }
      text = readFileSync(file, 'utf8');
    } catch (err) {
      const code = (err as { code?: string }).code;
      problems.push({ path, message: `cannot be read: ${code === 'ENOENT' ? 'no such file' : (err as Error).message} (got ${JSON.stringify(file)})` });
      return;
    }
    if (!text.includes('-----BEGIN CERTIFICATE-----')) {
      problems.push({ path, message: `holds no PEM certificate (got ${JSON.stringify(file)})` });
    }
  });
  const etcd = config.kubespand.etcd;
  for (const [key, file] of [['caFile', etcd?.caFile], ['certFile', etcd?.certFile], ['keyFile', etcd?.keyFile]] as const) {
    if (file === undefined) continue;
    const path = `kubespand.etcd.${key}`;
    try {
      if (!statSync(file).isFile()) problems.push({ path, message: `is not a regular file (got ${JSON.stringify(file)})` });
      else readFileSync(file);
    } catch (err) {
      const code = (err as { code?: string }).code;
      problems.push({ path, message: `cannot be read: ${code === 'ENOENT' ? 'no such file' : (err as Error).message} (got ${JSON.stringify(file)})` });
    }
  }
  return problems;
}
