/**
 * Discovery bytes from the network (spec/kubespan.md §1): gRPC request decoders as the server
 * registers them, response decoders as the client uses them, the encrypted affiliate data and
 * endpoint blobs, and the plaintext protobuf inside them.
 *
 * Contracts:
 * - server request decoders never throw (a malformed request becomes InvalidArgument); what they
 *   return is well-typed, and feeding it to the server state throws only DiscoveryError and keeps
 *   the state within its limits (and empty again once TTLs pass);
 * - client response decoders return well-typed values or throw an Error (the client catches it);
 * - a blob opens to a well-formed record or throws BlobError; a modified sealed blob never opens;
 *   records round-trip through seal/open.
 */
import fc from 'fast-check';
import { ClusterCipher, BlobError, decodeAffiliate, encodeAffiliate, decodeEndpoint, encodeEndpoint, clusterMethods, clusterServiceDefinition, isMalformed, isWireGuardKey } from '../../src/discovery/index.js';
import type { AffiliateEndpoint, LocalAffiliate } from '../../src/discovery/types.js';
import { DiscoveryError, DiscoveryState } from '../../src/discovery-server/state.js';
import { parseIp } from '../../src/noise/allowed-ips.js';
import { decodeIp, encodeIp, encodePrefix, decodePrefix } from '../../src/discovery/ip-bytes.js';
import { SeededRandom } from '../support/clock.js';
import { applyMutation, changed, mutationArb, type Mutation } from './mutate.js';
import { expectThat, type FuzzTarget } from './target.js';

type Method = keyof typeof clusterServiceDefinition;
const METHODS = Object.keys(clusterServiceDefinition) as Method[];

// ---------------------------------------------------------------------------------------------- valid records

const zoneArb = fc.stringMatching(/^[a-z0-9]{1,6}$/);
const ipArb = fc.oneof(fc.ipV4(), fc.ipV6(), fc.tuple(fc.ipV6(), zoneArb).map(([a, z]) => `${a}%${z}`));
const cidrArb = fc.oneof(fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([a, n]) => `${a}/${n}`), fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 128 })).map(([a, n]) => `${a}/${n}`));
const keyArb = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('base64'));
const textArb = fc.string({ maxLength: 40 });

export const localAffiliateArb: fc.Arbitrary<LocalAffiliate> = fc.record(
  {
    nodeId: fc.string({ minLength: 1, maxLength: 60 }).filter((s) => Buffer.byteLength(s) <= 256),
    addresses: fc.array(ipArb, { maxLength: 6 }),
    hostname: textArb,
    nodename: textArb,
    machineType: fc.constantFrom('worker', 'controlplane', ''),
    operatingSystem: textArb,
    kubespan: fc.record({ publicKey: keyArb, address: fc.ipV6(), additionalAddresses: fc.array(cidrArb, { maxLength: 4 }), excludeAdvertisedAddresses: fc.array(cidrArb, { maxLength: 3 }) }),
  },
  { requiredKeys: ['nodeId', 'addresses', 'hostname', 'nodename', 'machineType', 'operatingSystem'] },
);

export const endpointArb: fc.Arbitrary<AffiliateEndpoint> = fc.record({ address: fc.oneof(fc.ipV4(), fc.ipV6()), port: fc.integer({ min: 0, max: 65535 }) });

const canonicalIp = (a: string): string => decodeIp(encodeIp(a, 'ip'))!;
const canonicalCidr = (c: string): string => decodePrefix(encodePrefix(c, 'cidr'))!;

// ---------------------------------------------------------------------------------------------- blobs

export type BlobCase =
  | { kind: 'random-data'; bytes: Uint8Array }
  | { kind: 'sealed'; affiliate: LocalAffiliate; mutation: Mutation | null }
  | { kind: 'plaintext'; affiliate: LocalAffiliate; mutation: Mutation | null }
  | { kind: 'random-plaintext'; bytes: Uint8Array }
  | { kind: 'endpoint'; endpoint: AffiliateEndpoint; mutation: Mutation | null }
  | { kind: 'random-endpoint'; bytes: Uint8Array };

const blobCaseArb: fc.Arbitrary<BlobCase> = fc.oneof(
  fc.record({ kind: fc.constant('random-data' as const), bytes: fc.uint8Array({ maxLength: 120 }) }),
  fc.record({ kind: fc.constant('sealed' as const), affiliate: localAffiliateArb, mutation: fc.option(mutationArb, { freq: 4 }) }),
  fc.record({ kind: fc.constant('plaintext' as const), affiliate: localAffiliateArb, mutation: fc.option(mutationArb, { freq: 4 }) }),
  fc.record({ kind: fc.constant('random-plaintext' as const), bytes: fc.uint8Array({ maxLength: 120 }) }),
  fc.record({ kind: fc.constant('endpoint' as const), endpoint: endpointArb, mutation: fc.option(mutationArb, { freq: 4 }) }),
  fc.record({ kind: fc.constant('random-endpoint' as const), bytes: fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.constantFrom(16, 32, 48).chain((n) => fc.uint8Array({ minLength: n, maxLength: n }))) }),
);

function checkRecord(r: ReturnType<typeof decodeAffiliate>): void {
  expectThat(typeof r.nodeId === 'string' && r.nodeId !== '', 'decoded record without a node id');
  for (const a of r.addresses) expectThat(typeof a === 'string' && decodeIp(encodeIp(a, 'ip')) === a, () => `decoded address ${JSON.stringify(a)} does not re-encode`);
  if (r.kubespan) {
    expectThat(isWireGuardKey(r.kubespan.publicKey), 'decoded kubespan key is not a WireGuard key');
    expectThat(parseIp(r.kubespan.address.split('%')[0]!).length > 0, 'decoded kubespan address');
    for (const p of [...r.kubespan.additionalAddresses, ...r.kubespan.excludeAdvertisedAddresses]) {
      expectThat(decodePrefix(encodePrefix(p, 'p')) === p, () => `decoded prefix ${JSON.stringify(p)} does not re-encode`);
    }
  }
}

function checkEndpointValue(ep: AffiliateEndpoint): void {
  expectThat(Number.isInteger(ep.port) && ep.port >= 0 && ep.port <= 65535, () => `decoded port ${ep.port}`);
  expectThat(decodeIp(encodeIp(ep.address, 'ip')) === ep.address, () => `decoded endpoint address ${JSON.stringify(ep.address)}`);
}

/** Runs `fn`; any exception must be a BlobError. */
function blobOrError<T>(fn: () => T, what: string): T | BlobError {
  try {
    return fn();
  } catch (err) {
    expectThat(err instanceof BlobError, () => `${what} threw ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
    return err;
  }
}

export const discoveryBlobsTarget: FuzzTarget<BlobCase, ClusterCipher> = {
  name: 'discovery-blobs',
  description: 'affiliate data / endpoint blobs and their protobuf: BlobError or a well-formed record; modified sealed blobs never open; round trips',
  setup: (seed) => new ClusterCipher(new SeededRandom(seed).fill(new Uint8Array(32)), new SeededRandom(seed + 1)),
  arbitrary: () => blobCaseArb,
  check(cipher, c) {
    switch (c.kind) {
      case 'random-data': {
        const r = blobOrError(() => decodeAffiliate(cipher.openAffiliateData(c.bytes)), 'open random data');
        // 16 random tag bytes authenticate with probability 2^-128
        expectThat(r instanceof BlobError, 'random bytes opened as affiliate data');
        return;
      }
      case 'sealed': {
        const plain = encodeAffiliate(c.affiliate);
        const sealed = cipher.sealAffiliateData(plain);
        const blob = c.mutation ? applyMutation(sealed, c.mutation) : sealed;
        const r = blobOrError(() => decodeAffiliate(cipher.openAffiliateData(blob)), 'open sealed data');
        if (changed(blob, sealed)) {
          expectThat(r instanceof BlobError, 'a modified sealed blob opened');
          return;
        }
        expectThat(!(r instanceof BlobError), () => `an intact sealed record failed: ${(r as Error).message}`);
        checkRecord(r);
        expectThat(r.nodeId === c.affiliate.nodeId && r.hostname === c.affiliate.hostname && r.operatingSystem === c.affiliate.operatingSystem, 'round trip changed text fields');
        expectThat(JSON.stringify(r.addresses) === JSON.stringify(c.affiliate.addresses.map(canonicalIp)), 'round trip changed addresses');
        if (c.affiliate.kubespan) {
          expectThat(r.kubespan?.publicKey === c.affiliate.kubespan.publicKey, 'round trip changed the public key');
          expectThat(JSON.stringify(r.kubespan.additionalAddresses) === JSON.stringify(c.affiliate.kubespan.additionalAddresses.map(canonicalCidr)), 'round trip changed prefixes');
        } else {
          expectThat(r.kubespan === undefined, 'round trip invented a kubespan section');
        }
        return;
      }
      case 'plaintext': {
        const plain = encodeAffiliate(c.affiliate);
        const bytes = c.mutation ? applyMutation(plain, c.mutation) : plain;
        const r = blobOrError(() => decodeAffiliate(bytes), 'decode affiliate protobuf');
        if (!(r instanceof BlobError)) checkRecord(r);
        return;
      }
      case 'random-plaintext': {
        const r = blobOrError(() => decodeAffiliate(c.bytes), 'decode random protobuf');
        if (!(r instanceof BlobError)) checkRecord(r);
        return;
      }
      case 'endpoint': {
        const blob = cipher.encryptEndpoint(c.endpoint);
        expectThat(blob.length === 16 || blob.length === 32, () => `endpoint blob of ${blob.length} bytes`);
        const mutated = c.mutation ? applyMutation(blob, c.mutation) : blob;
        const r = blobOrError(() => cipher.decryptEndpoint(mutated), 'decrypt endpoint');
        if (!changed(mutated, blob)) {
          expectThat(!(r instanceof BlobError) && r.port === c.endpoint.port && r.address === canonicalIp(c.endpoint.address), 'endpoint round trip');
          expectThat(JSON.stringify(decodeEndpoint(encodeEndpoint(c.endpoint))) === JSON.stringify(r), 'endpoint protobuf round trip');
        } else if (!(r instanceof BlobError)) {
          checkEndpointValue(r);
        }
        return;
      }
      case 'random-endpoint': {
        const r = blobOrError(() => cipher.decryptEndpoint(c.bytes), 'decrypt random endpoint blob');
        if (!(r instanceof BlobError)) checkEndpointValue(r);
        const p = blobOrError(() => decodeEndpoint(c.bytes), 'decode random endpoint protobuf');
        if (!(p instanceof BlobError)) checkEndpointValue(p);
        return;
      }
    }
  },
};

// ---------------------------------------------------------------------------------------------- gRPC messages

/** Valid request/response bytes for a method, to mutate. */
function validBytes(method: Method, side: 'request' | 'response', seed: Uint8Array): Uint8Array {
  const id = Buffer.from(seed.subarray(0, 6)).toString('hex');
  const blob = seed.subarray(0, 16);
  const m = clusterMethods[method];
  switch (method) {
    case 'Hello':
      return side === 'request' ? m.requestSerialize({ clusterId: id, clientVersion: 'v1.11.0' } as never) : m.responseSerialize({ clientIp: seed.subarray(0, 4), redirect: { endpoint: `${id}:443` } } as never);
    case 'AffiliateUpdate':
      return side === 'request'
        ? m.requestSerialize({ clusterId: id, affiliateId: `a${id}`, affiliateData: seed, affiliateEndpoints: [blob, seed.subarray(8, 40)], ttlMs: 30_000 } as never)
        : m.responseSerialize({} as never);
    case 'AffiliateDelete':
      return side === 'request' ? m.requestSerialize({ clusterId: id, affiliateId: `a${id}` } as never) : m.responseSerialize({} as never);
    case 'List':
    case 'Watch':
      return side === 'request'
        ? m.requestSerialize({ clusterId: id } as never)
        : m.responseSerialize({ affiliates: [{ id: `a${id}`, data: seed, endpoints: [blob] }], deleted: seed[0]! > 128 } as never);
  }
}

export interface GrpcCase {
  method: Method;
  seed: Uint8Array;
  mutation: Mutation | null;
  random: Uint8Array | null;
  advanceMs: number;
}

const grpcCaseArb: fc.Arbitrary<GrpcCase> = fc.record({
  method: fc.constantFrom(...METHODS),
  seed: fc.uint8Array({ minLength: 48, maxLength: 80 }),
  mutation: fc.option(mutationArb, { freq: 5 }),
  random: fc.option(fc.uint8Array({ maxLength: 100 }), { freq: 4 }),
  advanceMs: fc.integer({ min: 0, max: 5_000 }),
});

function isBytes(v: unknown): boolean {
  return v instanceof Uint8Array;
}

/** Structural check of a decoded request/response (types only: values are checked by their users). */
function wellTyped(method: Method, side: 'request' | 'response', v: Record<string, unknown>): boolean {
  const s = (k: string) => typeof v[k] === 'string';
  if (side === 'request') {
    if (method === 'Hello') return s('clusterId') && s('clientVersion');
    if (method === 'AffiliateDelete') return s('clusterId') && s('affiliateId');
    if (method === 'AffiliateUpdate') {
      const ttl = v['ttlMs'];
      return s('clusterId') && s('affiliateId') && Array.isArray(v['affiliateEndpoints']) && (v['affiliateEndpoints'] as unknown[]).every(isBytes) && (v['affiliateData'] === undefined || isBytes(v['affiliateData'])) && (ttl === undefined || Number.isFinite(ttl));
    }
    return s('clusterId');
  }
  if (method === 'Hello') return isBytes(v['clientIp']) && (v['redirect'] === undefined || typeof (v['redirect'] as { endpoint?: unknown }).endpoint === 'string');
  if (method === 'List' || method === 'Watch') {
    const list = v['affiliates'];
    return Array.isArray(list) && list.every((a: { id: unknown; data: unknown; endpoints: unknown }) => typeof a.id === 'string' && isBytes(a.data) && Array.isArray(a.endpoints) && a.endpoints.every(isBytes));
  }
  return true;
}

interface GrpcContext {
  state: DiscoveryState;
  now: number;
}

const LIMITS = { maxAffiliatesPerCluster: 16, maxEndpointsPerAffiliate: 8 };

export const discoveryGrpcTarget: FuzzTarget<GrpcCase, GrpcContext> = {
  name: 'discovery-grpc',
  description: 'gRPC decoders: server side never throws and its state stays within limits; client side throws only Errors; values well-typed',
  setup: () => {
    const ctx = { now: 1_700_000_000_000 } as GrpcContext;
    ctx.state = new DiscoveryState({ now: () => ctx.now, limits: LIMITS });
    return ctx;
  },
  arbitrary: () => grpcCaseArb,
  check(ctx, c) {
    for (const side of ['request', 'response'] as const) {
      const valid = validBytes(c.method, side, c.seed);
      const bytes = c.random ?? (c.mutation ? applyMutation(valid, c.mutation) : valid);
      const buf = Buffer.from(bytes);
      if (side === 'request') {
        let decoded: unknown;
        try {
          decoded = clusterServiceDefinition[c.method].requestDeserialize(buf);
        } catch (err) {
          throw new Error(`server ${c.method} request decoder threw ${(err as Error).message}`);
        }
        if (isMalformed(decoded)) {
          expectThat(typeof decoded.malformed === 'string', 'malformed without a message');
          continue;
        }
        const req = decoded as Record<string, unknown>;
        expectThat(wellTyped(c.method, side, req), () => `server ${c.method} request decoded ill-typed: ${JSON.stringify(req)}`);
        // the server's state takes it or refuses it with a gRPC status
        try {
          if (c.method === 'AffiliateUpdate') ctx.state.update(req as never);
          else if (c.method === 'AffiliateDelete') ctx.state.delete(req['clusterId'] as string, req['affiliateId'] as string);
          else if (c.method === 'List') ctx.state.list(req['clusterId'] as string);
        } catch (err) {
          expectThat(err instanceof DiscoveryError, () => `state threw ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
        }
      } else {
        let decoded: unknown;
        try {
          decoded = clusterMethods[c.method].responseDeserialize(buf);
        } catch (err) {
          expectThat(err instanceof Error, 'client decoder threw a non-Error');
          continue;
        }
        expectThat(wellTyped(c.method, side, decoded as Record<string, unknown>), () => `client ${c.method} response decoded ill-typed`);
      }
    }
    ctx.now += c.advanceMs;
    ctx.state.gc();
    const stats = ctx.state.stats();
    expectThat(stats.endpoints <= stats.affiliates * LIMITS.maxEndpointsPerAffiliate, 'endpoint limit exceeded');
  },
  finish(ctx) {
    // every affiliate had a TTL of at most 30 min: after that, garbage collection empties the state
    ctx.now += 31 * 60_000;
    ctx.state.gc();
    const stats = ctx.state.stats();
    expectThat(stats.clusters === 0 && stats.affiliates === 0, () => `state not empty after every TTL passed: ${JSON.stringify(stats)}`);
  },
};
