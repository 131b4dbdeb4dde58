/** Discovery client (Sidero discovery API) for the KubeSpan controller. */
export {
  DiscoveryClient,
  type ClientTimers,
  type DiscoveryClientCounters,
  type DiscoveryClientOptions,
  type DiscoveryClientState,
} from './client.js';
export { DEFAULT_BACKOFF, ExponentialBackoff, type BackoffOptions } from './backoff.js';
export {
  maskProxyUrl,
  matchesNoProxy,
  parseProxyUrl,
  resolveProxy,
  type ProxyDecision,
  type ProxyEnv,
  type ProxyRoute,
  type ProxySettings,
} from './proxy.js';
export { buildChannel, describeTransportError, loadRootCerts, SYSTEM_CA_FILE, type TransportOptions } from './transport.js';
export type {
  AffiliateEndpoint,
  AffiliateKubeSpan,
  AffiliateControlPlane,
  DiscoveredAffiliate,
  LocalAffiliate,
} from '../discovery/types.js';
