/**
 * The `sidero.discovery.client.Endpoint` message, encoded by hand to the exact canonical bytes
 * vtprotobuf's MarshalVT produces (kubespan.md §1.4): tag 0x0a, length, ip bytes, then (port ≠ 0)
 * tag 0x10 and the varint port. Ciphertext equality, and so server-side dedup, depends on it.
 * Example: 10.0.0.2:51820 → 0a 04 0a 00 00 02 10 ec 94 03.
 */
import { BlobError } from './errors.js';
import { decodeIp, encodeIp } from './ip-bytes.js';
import { discoveryTypes } from './proto.js';
import type { AffiliateEndpoint } from './types.js';

/** Validates an endpoint (IP without zone, port 0..65535); throws naming `field` and the value. */
export function checkEndpoint(endpoint: AffiliateEndpoint, field: string): Uint8Array {
  if (typeof endpoint?.address !== 'string') throw new Error(`${field}.address: missing`);
  if (endpoint.address.includes('%')) {
    throw new Error(`${field}.address: "${endpoint.address}" has a zone; zoned endpoints do not fit the 32-byte blob`);
  }
  const ip = encodeIp(endpoint.address, `${field}.address`);
  if (!Number.isInteger(endpoint.port) || endpoint.port < 0 || endpoint.port > 65535) {
    throw new Error(`${field}.port: ${String(endpoint.port)} is not a port (0..65535)`);
  }
  return ip;
}

/** Canonical protobuf bytes of an Endpoint. */
export function encodeEndpoint(endpoint: AffiliateEndpoint, field = 'endpoint'): Uint8Array {
  const ip = checkEndpoint(endpoint, field);
  const out: number[] = [];
  if (ip.length > 0) out.push(0x0a, ip.length, ...ip);
  let port = endpoint.port;
  if (port !== 0) {
    out.push(0x10);
    while (port >= 0x80) {
      out.push((port & 0x7f) | 0x80);
      port >>>= 7;
    }
    out.push(port);
  }
  return Uint8Array.from(out);
}

/** Decodes Endpoint protobuf bytes (tolerant of unknown fields); throws BlobError when invalid. */
export function decodeEndpoint(bytes: Uint8Array): AffiliateEndpoint {
  let message: Record<string, unknown>;
  try {
    message = discoveryTypes().Endpoint.decode(bytes) as unknown as Record<string, unknown>;
  } catch (err) {
    throw new BlobError(`endpoint protobuf: ${err instanceof Error ? err.message : String(err)}`);
  }
  const ipBytes = message['ip'] instanceof Uint8Array ? message['ip'] : new Uint8Array(0);
  const address = decodeIp(ipBytes);
  if (address === undefined) throw new BlobError(`endpoint ip has ${ipBytes.length} bytes, not an address`);
  const port = typeof message['port'] === 'number' ? message['port'] : 0;
  if (port > 65535) throw new BlobError(`endpoint port ${port} out of range`);
  return { address, port };
}
