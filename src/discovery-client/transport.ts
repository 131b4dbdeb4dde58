/**
 * The gRPC channel to a discovery service: TLS with the system roots plus extra CA files (a
 * corporate MITM proxy's CA, a private server's CA), or plaintext HTTP/2 for `http://` endpoints;
 * optional HTTP CONNECT proxy (proxy.ts); keepalive never below the server's 10 s minimum.
 *
 * grpc-js `credentials.createSsl(rootCerts)` replaces the trust store, so the roots passed are
 * the system bundle followed by every extra CA file.
 */
import { existsSync, readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { credentials, type ChannelCredentials, type ChannelOptions } from '@grpc/grpc-js';
import type { DiscoveryTarget } from '../discovery/endpoint-url.js';
import { CLIENT_MAX_RECEIVE_BYTES, MIN_KEEPALIVE_MS } from '../discovery/limits.js';
import { resolveProxy, type ProxyDecision, type ProxyEnv, type ProxySettings } from './proxy.js';

/** Debian/Ubuntu/Alpine system bundle; other systems fall back to Node's bundled roots. */
export const SYSTEM_CA_FILE = '/etc/ssl/certs/ca-certificates.crt';

export interface TransportOptions {
  /** Extra PEM CA files appended to the system roots. */
  caFiles?: string[];
  /** System bundle to start from (default SYSTEM_CA_FILE; Node's bundled roots when it is missing). */
  systemCaFile?: string;
  proxy?: ProxySettings;
  env?: ProxyEnv;
  /** gRPC keepalive ping interval; raised to 10 s when lower. */
  keepaliveMs: number;
  /**
   * Addresses of the discovery host already resolved through the configured nameservers
   * (`machine.network.nameservers`): the channel connects to them directly while TLS still checks the
   * certificate against the host name. Ignored when a proxy is used (the proxy resolves the name).
   */
  resolvedAddresses?: string[];
}

export interface Channel {
  /** What to hand to `new grpc.Client(address, …)`. */
  address: string;
  credentials: ChannelCredentials;
  options: ChannelOptions;
  proxy: ProxyDecision;
}

/** System roots + extra CA files as one PEM buffer. Throws naming `caFiles[i]` and the path. */
export function loadRootCerts(caFiles: readonly string[] = [], systemCaFile = SYSTEM_CA_FILE): Buffer {
  const parts: string[] = [];
  if (systemCaFile !== '' && existsSync(systemCaFile)) parts.push(readFileSync(systemCaFile, 'utf8'));
  else parts.push(rootCertificates.join('\n'));
  caFiles.forEach((file, i) => {
    let pem: string;
    try {
      pem = readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`caFiles[${i}]: cannot read "${file}": ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
      throw new Error(`caFiles[${i}]: "${file}" contains no PEM certificate`);
    }
    parts.push(pem);
  });
  return Buffer.from(parts.map((p) => (p.endsWith('\n') ? p : `${p}\n`)).join(''));
}

/** Builds the address, credentials and channel options for one discovery target. */
export function buildChannel(target: DiscoveryTarget, opts: TransportOptions): Channel {
  const creds = target.tls ? credentials.createSsl(loadRootCerts(opts.caFiles, opts.systemCaFile)) : credentials.createInsecure();
  const proxy = resolveProxy(target, opts.proxy, opts.env ?? process.env);
  const options: ChannelOptions = {
    // proxy selection is ours (proxy.ts), not grpc-js's reading of process.env
    'grpc.enable_http_proxy': 0,
    'grpc.keepalive_time_ms': Math.max(MIN_KEEPALIVE_MS, opts.keepaliveMs),
    'grpc.keepalive_timeout_ms': 20_000,
    'grpc.max_receive_message_length': CLIENT_MAX_RECEIVE_BYTES,
    // one connection per client: dropping it after a failed Hello must not affect other clients
    'grpc.use_local_subchannel_pool': 1,
    'grpc.default_authority': target.target,
  };
  let address = `dns:${target.target}`;
  if (!proxy.route && opts.resolvedAddresses && opts.resolvedAddresses.length > 0) {
    const v4 = opts.resolvedAddresses.filter((a) => !a.includes(':'));
    const v6 = opts.resolvedAddresses.filter((a) => a.includes(':'));
    // grpc-js's ipv4:/ipv6: schemes take a comma-separated address list for one family
    address = v4.length > 0 ? `ipv4:${v4.map((a) => `${a}:${target.port}`).join(',')}` : `ipv6:${v6.map((a) => `[${a}]:${target.port}`).join(',')}`;
    if (target.tls) options['grpc.ssl_target_name_override'] = target.host;
  }
  if (proxy.route) {
    address = `dns:${proxy.route.address}`;
    options['grpc.http_connect_target'] = `dns:${target.target}`;
    if (proxy.route.credentials !== undefined) options['grpc.http_connect_creds'] = proxy.route.credentials;
  }
  return { address, credentials: creds, options, proxy };
}

const TLS_TRUST = /certificate|self[- ]signed|UNABLE_TO_|CERT_|unable to verify|issuer/i;

/**
 * Turns a gRPC transport error into one clear line. TLS trust failures name the fix (the CA file
 * option); everything else keeps grpc-js's details.
 */
export function describeTransportError(err: unknown, target: DiscoveryTarget, proxy?: ProxyDecision): string {
  const e = err as { code?: number; details?: string; message?: string };
  const via = proxy?.route ? ` via proxy ${proxy.route.display}` : '';
  // grpc-js wraps the cause as "No connection established. Last error: Error: …. Resolution note: …"
  let details = String(e?.details ?? e?.message ?? err)
    .replace(/^No connection established\.\s*/i, '')
    .replace(/^Last error:\s*/i, '')
    .replace(/\s*Resolution note:.*$/is, '')
    .replace(/^Error:\s*/, '')
    .replace(/\.$/, '')
    .trim();
  if (details === '' || details === 'undefined' || details === 'null') {
    details = proxy?.route ? 'the proxy refused or failed the CONNECT' : 'connection failed';
  }
  if (target.tls && TLS_TRUST.test(details)) {
    return `TLS certificate of ${target.target}${via} is not trusted (${details}); add the issuing CA with caFiles / --ca-file`;
  }
  if (proxy?.route) {
    return `cannot reach ${target.target}${via}: ${details} (check the proxy address, its CONNECT port/allow rules, or no_proxy)`;
  }
  return `cannot reach ${target.target}: ${details}`;
}
