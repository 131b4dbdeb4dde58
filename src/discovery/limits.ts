/**
 * Discovery service limits and protocol timings (kubespan.md §1.7, §1.8), shared by the client
 * and the server.
 */

// Specification constants (Sidero discovery service and Talos client behaviour).

/** cluster_id and affiliate_id: 1..256 bytes. */
export const MAX_ID_BYTES = 256;
/** Encrypted affiliate data blob. */
export const MAX_AFFILIATE_DATA_BYTES = 2048;
/** Each encrypted endpoint blob. */
export const MAX_ENDPOINT_BYTES = 32;
/** Largest TTL an update may carry. */
export const MAX_TTL_MS = 30 * 60_000;
/** Affiliates per cluster (checked when a new id is created). */
export const MAX_AFFILIATES_PER_CLUSTER = 1024;
/** Endpoints per affiliate, accumulated (including harvested ones). */
export const MAX_ENDPOINTS_PER_AFFILIATE = 64;
/** Per-subscriber notification buffer; overflow aborts the watch ("lost update"). */
export const WATCH_BUFFER_SIZE = 32;
/** Per-IP token bucket: sustained rate and burst. */
export const RATE_LIMIT_PER_SECOND = 15;
export const RATE_LIMIT_BURST = 60;
/** Garbage collection interval. */
export const GC_INTERVAL_MS = 60_000;

/** TTL Talos puts on every AffiliateUpdate. */
export const DEFAULT_TTL_MS = 30 * 60_000;
/** Hello deadline. */
export const HELLO_TIMEOUT_MS = 10_000;
/** Deadline for one whole refresh batch. */
export const REFRESH_TIMEOUT_MS = 30_000;
/** The server refuses keepalive pings more often than this. */
export const MIN_KEEPALIVE_MS = 10_000;
/** Default discovery endpoint. */
export const DEFAULT_DISCOVERY_ENDPOINT = 'https://discovery.talos.dev/';

// Implementation constants (kubespand).

/** Snapshot of the server state to its state file (Sidero's default is also 10 minutes). */
export const SNAPSHOT_INTERVAL_MS = 10 * 60_000;
/** Longest a rate-limited call without a deadline is delayed before it is refused. */
export const RATE_LIMIT_MAX_DELAY_MS = 10_000;
/** gRPC message size cap on the server (a legitimate request is a few KiB). */
export const SERVER_MAX_RECEIVE_BYTES = 1 << 20;
/** gRPC message size cap on the client (a full cluster snapshot is ≤ ~4.3 MiB). */
export const CLIENT_MAX_RECEIVE_BYTES = 16 << 20;
