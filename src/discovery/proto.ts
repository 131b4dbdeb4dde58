/**
 * Runtime-loaded protobuf schemas. The `.proto` files in the repository's `proto/` folder are the
 * source of truth; they are found relative to this module's own URL, so the same code works from
 * `src/discovery` (vitest, tsx) and from `dist/src/discovery` (compiled).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

/** Locates the `proto/` folder by walking up from this module (src/discovery or dist/src/discovery). */
export function protoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'proto');
    if (existsSync(join(candidate, 'cluster.proto'))) return candidate;
    dir = dirname(dir);
  }
  throw new Error(`discovery: cannot find proto/cluster.proto above ${fileURLToPath(import.meta.url)}`);
}

/** Message types used by the discovery client and server. */
export interface DiscoveryTypes {
  root: protobuf.Root;
  // sidero.discovery.server
  Affiliate: protobuf.Type;
  HelloRequest: protobuf.Type;
  HelloResponse: protobuf.Type;
  AffiliateUpdateRequest: protobuf.Type;
  AffiliateUpdateResponse: protobuf.Type;
  AffiliateDeleteRequest: protobuf.Type;
  AffiliateDeleteResponse: protobuf.Type;
  ListRequest: protobuf.Type;
  ListResponse: protobuf.Type;
  WatchRequest: protobuf.Type;
  WatchResponse: protobuf.Type;
  // sidero.discovery.client
  ClientAffiliate: protobuf.Type;
  Endpoint: protobuf.Type;
  // kubespand.discovery.storage
  StateSnapshot: protobuf.Type;
}

let cached: DiscoveryTypes | undefined;

/** Loads (once) and returns the discovery message types. */
export function discoveryTypes(): DiscoveryTypes {
  if (cached) return cached;
  const dir = protoDir();
  const root = new protobuf.Root();
  root.loadSync(['cluster.proto', 'affiliate.proto', 'storage.proto'].map((f) => join(dir, f)));
  root.resolveAll();
  const server = (name: string) => root.lookupType(`sidero.discovery.server.${name}`);
  cached = {
    root,
    Affiliate: server('Affiliate'),
    HelloRequest: server('HelloRequest'),
    HelloResponse: server('HelloResponse'),
    AffiliateUpdateRequest: server('AffiliateUpdateRequest'),
    AffiliateUpdateResponse: server('AffiliateUpdateResponse'),
    AffiliateDeleteRequest: server('AffiliateDeleteRequest'),
    AffiliateDeleteResponse: server('AffiliateDeleteResponse'),
    ListRequest: server('ListRequest'),
    ListResponse: server('ListResponse'),
    WatchRequest: server('WatchRequest'),
    WatchResponse: server('WatchResponse'),
    ClientAffiliate: root.lookupType('sidero.discovery.client.Affiliate'),
    Endpoint: root.lookupType('sidero.discovery.client.Endpoint'),
    StateSnapshot: root.lookupType('kubespand.discovery.storage.StateSnapshot'),
  };
  return cached;
}
