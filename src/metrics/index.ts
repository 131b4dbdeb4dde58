/** Prometheus metrics of a running node: the registry over a daemon snapshot, and its HTTP listener. */
export { createMetricsRegistry, DISCOVERY_STATES, PEER_STATES, type MetricsOptions, type MetricsSnapshot, type PeerMetrics } from './metrics.js';
export { formatListen, startMetricsServer, type MetricsListen, type MetricsServer } from './server.js';
