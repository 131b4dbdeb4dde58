/**
 * Discovery endpoint URL → gRPC target, as Talos normalises it (kubespan.md §1.7): schemes
 * `http`, `https` and `grpc`; `http` is plaintext HTTP/2, the others TLS; default port 80 for
 * `http`, 443 otherwise. `https://discovery.talos.dev/` → `discovery.talos.dev:443`.
 */
import { isIPv6 } from 'node:net';

/** Where and how to connect. */
export interface DiscoveryTarget {
  host: string;
  port: number;
  tls: boolean;
  /** `host:port` with IPv6 in brackets: the gRPC target and the HTTP/2 authority. */
  target: string;
}

function formatTarget(host: string, port: number): string {
  return `${isIPv6(host) ? `[${host}]` : host}:${port}`;
}

/** Normalises a discovery endpoint URL; throws naming `field` and the value when it is not usable. */
export function normaliseEndpoint(endpoint: string, field = 'endpoint'): DiscoveryTarget {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new Error(`${field}: "${endpoint}" is not a URL (want http://, https:// or grpc://host[:port])`);
  }
  const scheme = url.protocol.replace(/:$/, '').toLowerCase();
  if (scheme !== 'http' && scheme !== 'https' && scheme !== 'grpc') {
    throw new Error(`${field}: "${endpoint}" has scheme "${scheme}", want http, https or grpc`);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw new Error(`${field}: "${endpoint}" has no host`);
  const port = url.port === '' ? (scheme === 'http' ? 80 : 443) : Number(url.port);
  return { host, port, tls: scheme !== 'http', target: formatTarget(host, port) };
}

/**
 * Parses a `redirect.endpoint` from Hello: a gRPC target `host:port` (a URL is accepted too). The
 * redirected connection keeps the current TLS setting.
 */
export function parseRedirectTarget(endpoint: string, tls: boolean): DiscoveryTarget {
  if (endpoint.includes('://')) return { ...normaliseEndpoint(endpoint, 'redirect.endpoint'), tls };
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(endpoint.trim());
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || host === undefined || !(port >= 1 && port <= 65535)) {
    throw new Error(`redirect.endpoint: "${endpoint}" is not host:port`);
  }
  return { host, port, tls, target: formatTarget(host, port) };
}
