/**
 * Plain TypeScript shapes of the `sidero.discovery.server` messages and their protobuf codecs.
 * Decoders turn protobufjs messages into these plain objects (bytes as Uint8Array, durations as
 * milliseconds) so nothing else touches protobufjs objects or `Long`.
 */
import type protobuf from 'protobufjs';
import { discoveryTypes } from './proto.js';

/** Server-side affiliate: opaque id, encrypted data, encrypted endpoint blobs. */
export interface WireAffiliate {
  id: string;
  data: Uint8Array;
  endpoints: Uint8Array[];
}

export interface HelloRequest {
  clusterId: string;
  clientVersion: string;
}

export interface HelloResponse {
  /** gRPC target `host:port` the client must switch to. */
  redirect?: { endpoint: string };
  /** Client address as the server saw it (MarshalBinary form); empty when not reported. */
  clientIp: Uint8Array;
}

export interface AffiliateUpdateRequest {
  clusterId: string;
  affiliateId: string;
  /** Absent or empty: the data is not touched. */
  affiliateData?: Uint8Array;
  affiliateEndpoints: Uint8Array[];
  /** TTL in milliseconds; absent means 0 (expires at the next garbage collection). */
  ttlMs?: number;
}

export interface AffiliateDeleteRequest {
  clusterId: string;
  affiliateId: string;
}

export interface ClusterRequest {
  clusterId: string;
}

export interface ListResponse {
  affiliates: WireAffiliate[];
}

export interface WatchResponse {
  affiliates: WireAffiliate[];
  deleted: boolean;
}

/** An empty message (AffiliateUpdateResponse, AffiliateDeleteResponse). */
export type Empty = Record<string, never>;

// --- helpers ---------------------------------------------------------------------------------

type Decoded = protobuf.Message & Record<string, unknown>;

function bytes(v: unknown): Uint8Array {
  return v instanceof Uint8Array ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : new Uint8Array(0);
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function bytesList(v: unknown): Uint8Array[] {
  return Array.isArray(v) ? v.map(bytes) : [];
}

/** A `google.protobuf.Duration`-shaped value (`seconds` may be a number or a Long) → milliseconds. */
export function durationToMs(v: unknown): number | undefined {
  if (v === null || v === undefined || typeof v !== 'object') return undefined;
  const d = v as { seconds?: unknown; nanos?: unknown };
  const secondsRaw = d.seconds;
  let seconds = 0;
  if (typeof secondsRaw === 'number') seconds = secondsRaw;
  else if (secondsRaw !== null && typeof secondsRaw === 'object' && 'toNumber' in secondsRaw) {
    seconds = (secondsRaw as { toNumber(): number }).toNumber();
  }
  const nanos = typeof d.nanos === 'number' ? d.nanos : 0;
  return seconds * 1000 + Math.trunc(nanos / 1e6);
}

/** Milliseconds → a `google.protobuf.Duration` plain object (seconds + nanos, same sign). */
export function msToDuration(ms: number): { seconds: number; nanos: number } {
  const whole = Math.trunc(ms);
  const seconds = Math.trunc(whole / 1000);
  const nanos = (whole - seconds * 1000) * 1e6;
  return { seconds, nanos };
}

function encode(type: protobuf.Type, value: Record<string, unknown>): Uint8Array {
  return type.encode(value).finish();
}

function decode(type: protobuf.Type, buf: Uint8Array): Decoded {
  return type.decode(buf) as Decoded;
}

function wireAffiliate(v: unknown): WireAffiliate {
  const a = (v ?? {}) as Record<string, unknown>;
  return { id: str(a['id']), data: bytes(a['data']), endpoints: bytesList(a['endpoints']) };
}

function affiliateObject(a: WireAffiliate): Record<string, unknown> {
  const o: Record<string, unknown> = { id: a.id };
  if (a.data.length > 0) o['data'] = a.data;
  if (a.endpoints.length > 0) o['endpoints'] = a.endpoints;
  return o;
}

// --- codecs ----------------------------------------------------------------------------------

/** Serialize/deserialize pair for one message shape. */
export interface Codec<T> {
  encode(value: T): Uint8Array;
  decode(buf: Uint8Array): T;
}

export const helloRequestCodec: Codec<HelloRequest> = {
  encode: (v) => encode(discoveryTypes().HelloRequest, { clusterId: v.clusterId, clientVersion: v.clientVersion }),
  decode: (b) => {
    const m = decode(discoveryTypes().HelloRequest, b);
    return { clusterId: str(m['clusterId']), clientVersion: str(m['clientVersion']) };
  },
};

export const helloResponseCodec: Codec<HelloResponse> = {
  encode: (v) => {
    const o: Record<string, unknown> = {};
    if (v.redirect) o['redirect'] = { endpoint: v.redirect.endpoint };
    if (v.clientIp.length > 0) o['clientIp'] = v.clientIp;
    return encode(discoveryTypes().HelloResponse, o);
  },
  decode: (b) => {
    const m = decode(discoveryTypes().HelloResponse, b);
    const out: HelloResponse = { clientIp: bytes(m['clientIp']) };
    const r = m['redirect'] as Record<string, unknown> | null | undefined;
    if (r) out.redirect = { endpoint: str(r['endpoint']) };
    return out;
  },
};

export const affiliateUpdateRequestCodec: Codec<AffiliateUpdateRequest> = {
  encode: (v) => {
    const o: Record<string, unknown> = { clusterId: v.clusterId, affiliateId: v.affiliateId };
    if (v.affiliateData !== undefined) o['affiliateData'] = v.affiliateData;
    if (v.affiliateEndpoints.length > 0) o['affiliateEndpoints'] = v.affiliateEndpoints;
    if (v.ttlMs !== undefined) o['ttl'] = msToDuration(v.ttlMs);
    return encode(discoveryTypes().AffiliateUpdateRequest, o);
  },
  decode: (b) => {
    const m = decode(discoveryTypes().AffiliateUpdateRequest, b);
    const out: AffiliateUpdateRequest = {
      clusterId: str(m['clusterId']),
      affiliateId: str(m['affiliateId']),
      affiliateEndpoints: bytesList(m['affiliateEndpoints']),
    };
    const data = m['affiliateData'];
    if (data instanceof Uint8Array) out.affiliateData = bytes(data);
    const ttl = durationToMs(m['ttl']);
    if (ttl !== undefined) out.ttlMs = ttl;
    return out;
  },
};

export const affiliateDeleteRequestCodec: Codec<AffiliateDeleteRequest> = {
  encode: (v) => encode(discoveryTypes().AffiliateDeleteRequest, { clusterId: v.clusterId, affiliateId: v.affiliateId }),
  decode: (b) => {
    const m = decode(discoveryTypes().AffiliateDeleteRequest, b);
    return { clusterId: str(m['clusterId']), affiliateId: str(m['affiliateId']) };
  },
};

function clusterRequestCodec(typeName: 'ListRequest' | 'WatchRequest'): Codec<ClusterRequest> {
  return {
    encode: (v) => encode(discoveryTypes()[typeName], { clusterId: v.clusterId }),
    decode: (b) => ({ clusterId: str(decode(discoveryTypes()[typeName], b)['clusterId']) }),
  };
}

export const listRequestCodec = clusterRequestCodec('ListRequest');
export const watchRequestCodec = clusterRequestCodec('WatchRequest');

export const listResponseCodec: Codec<ListResponse> = {
  encode: (v) => encode(discoveryTypes().ListResponse, { affiliates: v.affiliates.map(affiliateObject) }),
  decode: (b) => {
    const m = decode(discoveryTypes().ListResponse, b);
    return { affiliates: Array.isArray(m['affiliates']) ? m['affiliates'].map(wireAffiliate) : [] };
  },
};

export const watchResponseCodec: Codec<WatchResponse> = {
  encode: (v) => {
    const o: Record<string, unknown> = { affiliates: v.affiliates.map(affiliateObject) };
    if (v.deleted) o['deleted'] = true;
    return encode(discoveryTypes().WatchResponse, o);
  },
  decode: (b) => {
    const m = decode(discoveryTypes().WatchResponse, b);
    return {
      affiliates: Array.isArray(m['affiliates']) ? m['affiliates'].map(wireAffiliate) : [],
      deleted: m['deleted'] === true,
    };
  },
};

function emptyCodec(typeName: 'AffiliateUpdateResponse' | 'AffiliateDeleteResponse'): Codec<Empty> {
  return {
    encode: () => encode(discoveryTypes()[typeName], {}),
    decode: (b) => {
      decode(discoveryTypes()[typeName], b);
      return {};
    },
  };
}

export const affiliateUpdateResponseCodec = emptyCodec('AffiliateUpdateResponse');
export const affiliateDeleteResponseCodec = emptyCodec('AffiliateDeleteResponse');
