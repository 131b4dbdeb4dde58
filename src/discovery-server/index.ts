/** Open discovery server (Sidero discovery API): gRPC shell, sans-IO state, limits, metrics. */
export { DiscoveryServer, parseHostPort, type DiscoveryServerOptions } from './server.js';
export {
  DiscoveryError,
  DiscoveryState,
  DEFAULT_STATE_LIMITS,
  type GcResult,
  type Notification,
  type StateExport,
  type StateLimits,
  type StateStats,
} from './state.js';
export { RateLimiter, type RateDecision, type RateLimitOptions } from './rate-limiter.js';
export { SubscriberQueue } from './subscriber-queue.js';
export { clientIp, peerIp } from './client-ip.js';
export { decodeStateFile, encodeStateFile, readStateFile, writeFileAtomic, type StateFileContent } from './state-file.js';
export { DiscoveryMetrics, serveMetrics, versionLabel } from './metrics.js';
