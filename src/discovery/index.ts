/** Shared discovery pieces: plain types, byte encodings, encryption, protobuf codecs, limits. */
export type {
  AffiliateControlPlane,
  AffiliateEndpoint,
  AffiliateKubeSpan,
  DiscoveredAffiliate,
  LocalAffiliate,
} from './types.js';
export { decodeIp, decodePrefix, encodeIp, encodePrefix, type PrefixBytes } from './ip-bytes.js';
export { BlobError } from './errors.js';
export {
  ClusterCipher,
  parseClusterSecret,
  padEndpointPlaintext,
  CLUSTER_KEY_SIZE,
  GCM_OVERHEAD,
} from './cluster-cipher.js';
export { checkEndpoint, decodeEndpoint, encodeEndpoint } from './endpoint-codec.js';
export { decodeAffiliate, encodeAffiliate, isWireGuardKey, MAX_AFFILIATE_PLAINTEXT_BYTES } from './affiliate-codec.js';
export { normaliseEndpoint, parseRedirectTarget, type DiscoveryTarget } from './endpoint-url.js';
export * from './limits.js';
export * from './wire.js';
export { clusterMethods, clusterServiceDefinition, isMalformed, METHOD_PATHS, SERVICE_NAME, type MalformedRequest } from './service.js';
export { discoveryTypes, protoDir } from './proto.js';
