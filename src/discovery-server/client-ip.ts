/**
 * The client address a Hello reports and the rate limiter keys on: the TCP peer, or — only when
 * the operator says a trusted reverse proxy sits in front (`--trust-forwarded-headers`) —
 * `X-Real-IP`, else the first `X-Forwarded-For` entry (kubespan.md §1.8). IPv4-mapped IPv6 peers
 * are reported as IPv4, as Go's netip Unmap does.
 */
import { isIP } from 'node:net';
import type { Metadata } from '@grpc/grpc-js';

function normalise(ip: string): string | undefined {
  let text = ip.trim().replace(/^\[(.*)\]$/, '$1');
  const zone = text.indexOf('%');
  if (zone !== -1) text = text.slice(0, zone);
  if (isIP(text) === 0) return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(text);
  return mapped ? mapped[1] : text.toLowerCase();
}

/**
 * grpc-js `getPeer()` is `address:port` with IPv6 unbracketed (`::1:5000`), or `unknown`; a TCP
 * peer always has a port, so the text after the last colon is the port.
 */
export function peerIp(peer: string): string | undefined {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(peer);
  if (bracketed) return normalise(bracketed[1]!);
  const colon = peer.lastIndexOf(':');
  return colon === -1 ? undefined : normalise(peer.slice(0, colon));
}

function header(metadata: Metadata, name: string): string | undefined {
  const v = metadata.get(name)[0];
  return typeof v === 'string' && v.trim() !== '' ? v : undefined;
}

/** The client IP for a call, or undefined when none can be determined. */
export function clientIp(peer: string, metadata: Metadata, trustForwardedHeaders: boolean): string | undefined {
  if (trustForwardedHeaders) {
    const real = header(metadata, 'x-real-ip');
    const realIp = real === undefined ? undefined : normalise(real);
    if (realIp) return realIp;
    const forwarded = header(metadata, 'x-forwarded-for');
    const first = forwarded?.split(',')[0];
    const forwardedIp = first === undefined ? undefined : normalise(first);
    if (forwardedIp) return forwardedIp;
  }
  return peerIp(peer);
}
