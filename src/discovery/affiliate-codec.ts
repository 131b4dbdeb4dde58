/**
 * The plaintext affiliate record (`sidero.discovery.client.Affiliate`, kubespan.md §1.3) to and
 * from plain typed data. Encoding is canonical (ascending field numbers, proto3 zero values
 * omitted), the same bytes vtprotobuf's MarshalVT gives, so equal records compare equal.
 */
import { decodeIp, decodePrefix, encodeIp, encodePrefix, type PrefixBytes } from './ip-bytes.js';
import { BlobError } from './errors.js';
import { discoveryTypes } from './proto.js';
import type { AffiliateKubeSpan, DiscoveredAffiliate, LocalAffiliate } from './types.js';
import { GCM_OVERHEAD } from './cluster-cipher.js';
import { MAX_AFFILIATE_DATA_BYTES, MAX_ID_BYTES } from './limits.js';

/** Largest plaintext that still fits the server's 2048-byte data limit once sealed (2020). */
export const MAX_AFFILIATE_PLAINTEXT_BYTES = MAX_AFFILIATE_DATA_BYTES - GCM_OVERHEAD;

const WG_KEY_BASE64 = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** True for a standard-base64 WireGuard public key (44 characters, 32 bytes). */
export function isWireGuardKey(key: string): boolean {
  return WG_KEY_BASE64.test(key);
}

function checkString(value: unknown, field: string): string {
  if (typeof value !== 'string') throw new Error(`${field}: must be a string, got ${typeof value}`);
  return value;
}

function checkList(value: unknown, field: string): unknown[] {
  if (!Array.isArray(value)) throw new Error(`${field}: must be an array`);
  return value;
}

function prefixObject(p: PrefixBytes): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (p.ip.length > 0) o['ip'] = p.ip;
  if (p.bits !== 0) o['bits'] = p.bits;
  return o;
}

/**
 * Validates a local affiliate and returns its canonical protobuf plaintext. Throws an Error naming
 * the offending field and value, or the size when the record would not fit the data limit.
 */
export function encodeAffiliate(affiliate: LocalAffiliate, field = 'affiliate'): Uint8Array {
  const nodeId = checkString(affiliate?.nodeId, `${field}.nodeId`);
  const idBytes = Buffer.byteLength(nodeId);
  if (idBytes < 1 || idBytes > MAX_ID_BYTES) {
    throw new Error(`${field}.nodeId: "${nodeId}" must be 1..${MAX_ID_BYTES} bytes`);
  }
  const addresses = checkList(affiliate.addresses, `${field}.addresses`).map((a, i) =>
    encodeIp(checkString(a, `${field}.addresses[${i}]`), `${field}.addresses[${i}]`),
  );
  const o: Record<string, unknown> = { nodeId };
  if (addresses.length > 0) o['addresses'] = addresses;
  for (const key of ['hostname', 'nodename', 'machineType', 'operatingSystem'] as const) {
    const v = checkString(affiliate[key], `${field}.${key}`);
    if (v !== '') o[key] = v;
  }
  if (affiliate.kubespan !== undefined) {
    const k = affiliate.kubespan;
    const publicKey = checkString(k?.publicKey, `${field}.kubespan.publicKey`);
    if (!isWireGuardKey(publicKey)) {
      throw new Error(`${field}.kubespan.publicKey: "${publicKey}" is not a base64 WireGuard public key (44 characters)`);
    }
    const ks: Record<string, unknown> = { publicKey };
    const address = encodeIp(checkString(k.address, `${field}.kubespan.address`), `${field}.kubespan.address`);
    if (address.length > 0) ks['address'] = address;
    const additional = checkList(k.additionalAddresses ?? [], `${field}.kubespan.additionalAddresses`).map((p, i) =>
      encodePrefix(checkString(p, `${field}.kubespan.additionalAddresses[${i}]`), `${field}.kubespan.additionalAddresses[${i}]`),
    );
    if (additional.length > 0) ks['additionalAddresses'] = additional.map(prefixObject);
    const exclude = checkList(k.excludeAdvertisedAddresses ?? [], `${field}.kubespan.excludeAdvertisedAddresses`).map((p, i) =>
      encodePrefix(
        checkString(p, `${field}.kubespan.excludeAdvertisedAddresses[${i}]`),
        `${field}.kubespan.excludeAdvertisedAddresses[${i}]`,
      ),
    );
    if (exclude.length > 0) ks['excludeAdvertisedAddresses'] = exclude.map(prefixObject);
    o['kubespan'] = ks;
  }
  const bytes = discoveryTypes().ClientAffiliate.encode(o).finish();
  if (bytes.length > MAX_AFFILIATE_PLAINTEXT_BYTES) {
    throw new Error(
      `${field}: encoded record is ${bytes.length} bytes, more than the ${MAX_AFFILIATE_PLAINTEXT_BYTES} that fit the server's ${MAX_AFFILIATE_DATA_BYTES}-byte data limit (too many addresses or prefixes)`,
    );
  }
  return bytes;
}

function bytesOf(v: unknown): Uint8Array {
  return v instanceof Uint8Array ? v : new Uint8Array(0);
}

function strOf(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function prefixes(v: unknown): string[] {
  if (!Array.isArray(v)) return [];
  const out: string[] = [];
  for (const p of v as Array<Record<string, unknown>>) {
    const text = decodePrefix({ ip: bytesOf(p['ip']), bits: typeof p['bits'] === 'number' ? p['bits'] : 0 });
    if (text !== undefined) out.push(text);
  }
  return out;
}

/**
 * Parses a decrypted affiliate record. Unparseable addresses and prefixes are dropped (as Talos
 * does); a missing node id, or a KubeSpan section whose key or address is invalid, makes the whole
 * record malformed (BlobError).
 */
export function decodeAffiliate(plaintext: Uint8Array): Omit<DiscoveredAffiliate, 'endpoints'> {
  let m: Record<string, unknown>;
  try {
    m = discoveryTypes().ClientAffiliate.decode(plaintext) as unknown as Record<string, unknown>;
  } catch (err) {
    throw new BlobError(`affiliate protobuf: ${err instanceof Error ? err.message : String(err)}`);
  }
  const nodeId = strOf(m['nodeId']);
  if (nodeId === '') throw new BlobError('affiliate record has no node_id');
  const addresses: string[] = [];
  if (Array.isArray(m['addresses'])) {
    for (const raw of m['addresses'] as unknown[]) {
      const ip = decodeIp(bytesOf(raw));
      if (ip !== undefined) addresses.push(ip);
    }
  }
  const out: Omit<DiscoveredAffiliate, 'endpoints'> = {
    nodeId,
    addresses,
    hostname: strOf(m['hostname']),
    nodename: strOf(m['nodename']),
    machineType: strOf(m['machineType']),
    operatingSystem: strOf(m['operatingSystem']),
  };
  const k = m['kubespan'] as Record<string, unknown> | null | undefined;
  if (k) {
    const publicKey = strOf(k['publicKey']);
    if (!isWireGuardKey(publicKey)) throw new BlobError('kubespan.public_key is not a base64 WireGuard key');
    const address = decodeIp(bytesOf(k['address']));
    if (address === undefined) throw new BlobError('kubespan.address is not an IP address');
    const kubespan: AffiliateKubeSpan = {
      publicKey,
      address,
      additionalAddresses: prefixes(k['additionalAddresses']),
      excludeAdvertisedAddresses: prefixes(k['excludeAdvertisedAddresses']),
    };
    out.kubespan = kubespan;
  }
  const cp = m['controlPlane'] as Record<string, unknown> | null | undefined;
  if (cp) out.controlPlane = { apiServerPort: typeof cp['apiServerPort'] === 'number' ? cp['apiServerPort'] : 0 };
  return out;
}
