/**
 * HTTP CONNECT proxy selection for the discovery connection.
 *
 * Keys, each taken from the config (`proxy` option, same names as the environment variables) when
 * set there — an empty string there explicitly means "none" — else from the environment, lower
 * case first, then upper case:
 *
 *   grpc_proxy  > https_proxy (TLS targets only) > http_proxy      proxy URL, http://[user:pass@]host[:port]
 *   no_grpc_proxy > no_proxy                                       bypass list
 *
 * `no_proxy` entries are comma (or space) separated: `*` (everything), a host name (matches itself
 * and its subdomains; a leading `.` or `*.` is ignored), an IP address, or a CIDR; any entry may end
 * in `:port` to match only that port. grpc-js's own environment handling is switched off
 * (`grpc.enable_http_proxy: 0`) and the decision is handed to it through channel options, so the
 * config keys work without touching process.env and upper-case variables are honoured too.
 */
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import type { DiscoveryTarget } from '../discovery/endpoint-url.js';

/** Proxy keys as they may appear in a config file. */
export interface ProxySettings {
  grpc_proxy?: string;
  https_proxy?: string;
  http_proxy?: string;
  no_proxy?: string;
  no_grpc_proxy?: string;
}

export type ProxyEnv = Readonly<Record<string, string | undefined>>;

/** A proxy to tunnel through. `credentials` is `user:password` (secret: never logged). */
export interface ProxyRoute {
  host: string;
  port: number;
  /** `host:port` of the proxy (IPv6 bracketed). */
  address: string;
  credentials?: string;
  /** Which key chose it, and where it came from, e.g. `https_proxy (env HTTPS_PROXY)`. */
  source: string;
  /** The proxy URL with any password masked, for logs. */
  display: string;
}

export interface ProxyDecision {
  route?: ProxyRoute;
  /** One-line explanation for logs (never contains credentials). */
  reason: string;
}

interface Lookup {
  value: string;
  source: string;
}

function lookup(key: keyof ProxySettings, config: ProxySettings | undefined, env: ProxyEnv): Lookup | undefined {
  const fromConfig = config?.[key];
  if (fromConfig !== undefined) return { value: fromConfig.trim(), source: `config ${key}` };
  for (const name of [key, key.toUpperCase()]) {
    const v = env[name];
    if (v !== undefined && v.trim() !== '') return { value: v.trim(), source: `env ${name}` };
  }
  return undefined;
}

/**
 * Masks the password of a proxy URL, with or without a scheme. Everything up to the LAST '@' is
 * user info: a mistyped password may hold '@', '/' or spaces, and none of it may show.
 */
export function maskProxyUrl(url: string): string {
  return url.replace(/^((?:[a-z][a-z0-9+.-]*:\/\/)?)(.*)@/is, (_m, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    return `${scheme}${colon === -1 ? userinfo : `${userinfo.slice(0, colon)}:***`}@`;
  });
}

/** Parses a proxy URL (`http://…`, or bare `host:port` meaning http); throws naming the key. */
export function parseProxyUrl(value: string, key: string): Omit<ProxyRoute, 'source'> {
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`${key}: "${maskProxyUrl(value)}" is not a proxy URL (want http://host:port)`);
  }
  if (url.protocol !== 'http:') {
    throw new Error(
      `${key}: "${maskProxyUrl(value)}" uses ${url.protocol.replace(':', '')}; only http:// proxies (HTTP CONNECT) are supported`,
    );
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw new Error(`${key}: "${maskProxyUrl(value)}" has no host`);
  const port = url.port === '' ? 80 : Number(url.port);
  const route: Omit<ProxyRoute, 'source'> = {
    host,
    port,
    address: `${host.includes(':') ? `[${host}]` : host}:${port}`,
    display: maskProxyUrl(value),
  };
  if (url.username !== '') {
    let user: string;
    let password: string;
    try {
      user = decodeURIComponent(url.username);
      password = decodeURIComponent(url.password);
    } catch {
      throw new Error(`${key}: "${maskProxyUrl(value)}" has a malformed %-escape in its user name or password`);
    }
    route.credentials = url.password !== '' ? `${user}:${password}` : user;
  }
  return route;
}

/** Splits a no_proxy entry into host-or-CIDR and an optional port. */
function splitEntry(entry: string): { name: string; port?: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(entry);
  if (bracketed) return bracketed[2] === undefined ? { name: bracketed[1]! } : { name: bracketed[1]!, port: Number(bracketed[2]) };
  if (entry.includes('/') || isIP(entry) !== 0) return { name: entry };
  const withPort = /^(.+):(\d{1,5})$/.exec(entry);
  if (withPort) return { name: withPort[1]!, port: Number(withPort[2]) };
  return { name: entry };
}

/** True when `host:port` is covered by a no_proxy list. */
export function matchesNoProxy(host: string, port: number, list: string): boolean {
  const target = host.toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
  const targetIp = isIP(target) !== 0 ? ipaddr.process(target) : undefined;
  for (const raw of list.split(/[,\s]+/)) {
    const entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') return true;
    const { name, port: entryPort } = splitEntry(entry);
    if (entryPort !== undefined && entryPort !== port) continue;
    if (name.includes('/')) {
      if (!targetIp || !ipaddr.isValidCIDR(name)) continue;
      const [net, bits] = ipaddr.parseCIDR(name);
      if (targetIp.kind() === net.kind() && targetIp.match(net, bits)) return true;
      continue;
    }
    if (isIP(name) !== 0) {
      if (targetIp && ipaddr.process(name).toString() === targetIp.toString()) return true;
      continue;
    }
    const domain = name.replace(/^\*?\./, '');
    if (domain !== '' && (target === domain || target.endsWith(`.${domain}`))) return true;
  }
  return false;
}

/** Decides whether (and through which proxy) to reach `target`. Throws on an unusable proxy URL. */
export function resolveProxy(target: DiscoveryTarget, config: ProxySettings | undefined, env: ProxyEnv): ProxyDecision {
  const candidates: Array<keyof ProxySettings> = target.tls
    ? ['grpc_proxy', 'https_proxy', 'http_proxy']
    : ['grpc_proxy', 'http_proxy'];
  let chosen: (Lookup & { key: string }) | undefined;
  for (const key of candidates) {
    const found = lookup(key, config, env);
    if (found === undefined) continue;
    if (found.value === '') return { reason: `no proxy (${found.source} is empty)` };
    chosen = { ...found, key };
    break;
  }
  if (!chosen) return { reason: 'no proxy configured' };
  const noProxy = lookup('no_grpc_proxy', config, env) ?? lookup('no_proxy', config, env);
  if (noProxy && matchesNoProxy(target.host, target.port, noProxy.value)) {
    return { reason: `direct: ${target.target} matches ${noProxy.source}` };
  }
  const route: ProxyRoute = { ...parseProxyUrl(chosen.value, chosen.key), source: `${chosen.key} (${chosen.source})` };
  return { route, reason: `via proxy ${route.display} from ${route.source}` };
}
