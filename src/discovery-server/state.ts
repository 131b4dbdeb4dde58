/**
 * The discovery server's in-memory state, sans-IO: clusters of affiliates (opaque encrypted blobs
 * with expiries), watch subscribers, garbage collection. Time comes from an injected `now()`
 * (milliseconds). Every limit and update rule of kubespan.md §1.8 is applied here; the gRPC shell
 * only maps requests in and errors out.
 *
 * Update rules: new expiry = now + ttl. Non-empty data replaces the data and sets the affiliate's
 * expiry to exactly that. Endpoints merge: an identical blob only has its own expiry extended
 * (never shortened), a new blob is appended. The affiliate's expiry is then raised to at least the
 * new expiry (so endpoints-only updates from other nodes keep it alive). An update for an unknown
 * id creates it (empty data), counting toward the per-cluster limit.
 *
 * Notifications: creating an affiliate, setting data (even identical bytes) or adding an endpoint
 * notify the cluster's watchers with the whole affiliate; a pure TTL extension does not; a delete
 * or expiry notifies `deleted`.
 *
 * Deliberate difference from Sidero's server: when garbage collection drops only some endpoints
 * of a live affiliate, watchers get the updated affiliate, not a `deleted` notification (which
 * made clients drop a live peer until its next refresh, §1.8 "quirk").
 */
import { status } from '@grpc/grpc-js';
import {
  MAX_AFFILIATE_DATA_BYTES,
  MAX_AFFILIATES_PER_CLUSTER,
  MAX_ENDPOINT_BYTES,
  MAX_ENDPOINTS_PER_AFFILIATE,
  MAX_ID_BYTES,
  MAX_TTL_MS,
} from '../discovery/limits.js';
import type { AffiliateUpdateRequest, WireAffiliate } from '../discovery/wire.js';

/** A refused request: gRPC status code and message. */
export class DiscoveryError extends Error {
  override name = 'DiscoveryError';
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
  }
}

export interface StateLimits {
  maxIdBytes: number;
  maxDataBytes: number;
  maxEndpointBytes: number;
  maxTtlMs: number;
  maxAffiliatesPerCluster: number;
  maxEndpointsPerAffiliate: number;
}

export const DEFAULT_STATE_LIMITS: Readonly<StateLimits> = Object.freeze({
  maxIdBytes: MAX_ID_BYTES,
  maxDataBytes: MAX_AFFILIATE_DATA_BYTES,
  maxEndpointBytes: MAX_ENDPOINT_BYTES,
  maxTtlMs: MAX_TTL_MS,
  maxAffiliatesPerCluster: MAX_AFFILIATES_PER_CLUSTER,
  maxEndpointsPerAffiliate: MAX_ENDPOINTS_PER_AFFILIATE,
});

interface StoredEndpoint {
  data: Uint8Array;
  key: string;
  expiresAt: number;
}

interface StoredAffiliate {
  id: string;
  data: Uint8Array;
  expiresAt: number;
  endpoints: StoredEndpoint[];
}

/** What a watcher receives after its snapshot: one affiliate, or a deletion. */
export type Notification = { kind: 'update'; affiliate: WireAffiliate } | { kind: 'deleted'; id: string };

export type NotificationSink = (n: Notification) => void;

interface Cluster {
  id: string;
  affiliates: Map<string, StoredAffiliate>;
  subscribers: Set<NotificationSink>;
  /** Bumped on every notification: equal versions mean an equal watch snapshot. */
  version: number;
}

export interface GcResult {
  expiredAffiliates: number;
  expiredEndpoints: number;
  removedClusters: number;
}

export interface StateStats {
  clusters: number;
  affiliates: number;
  endpoints: number;
  subscribers: number;
}

/** Remaining-TTL form of the state, for the state file. */
export interface StateExport {
  clusters: Array<{
    id: string;
    affiliates: Array<{ id: string; data: Uint8Array; remainingMs: number; endpoints: Array<{ data: Uint8Array; remainingMs: number }> }>;
  }>;
}

function keyOf(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

/** A plain Uint8Array copy (never a Buffer view of a larger request or file buffer). */
function copy(b: Uint8Array): Uint8Array {
  return new Uint8Array(b);
}

function toWire(a: StoredAffiliate): WireAffiliate {
  return { id: a.id, data: a.data, endpoints: a.endpoints.map((e) => e.data) };
}

export class DiscoveryState {
  readonly limits: Readonly<StateLimits>;
  readonly #now: () => number;
  readonly #clusters = new Map<string, Cluster>();
  /** State-wide counter, so a version is never reused even when a cluster is dropped and re-created. */
  #versions = 0;

  constructor(opts: { now?: () => number; limits?: Partial<StateLimits> } = {}) {
    this.#now = opts.now ?? Date.now;
    this.limits = { ...DEFAULT_STATE_LIMITS, ...opts.limits };
  }

  // --- validation ----------------------------------------------------------------------------

  checkClusterId(clusterId: string): void {
    this.#checkId('cluster_id', clusterId);
  }

  #checkId(field: string, id: string): void {
    const n = Buffer.byteLength(id);
    if (n < 1 || n > this.limits.maxIdBytes) {
      throw new DiscoveryError(status.INVALID_ARGUMENT, `${field} must be 1..${this.limits.maxIdBytes} bytes, got ${n}`);
    }
  }

  // --- operations ----------------------------------------------------------------------------

  /** AffiliateUpdate. Throws DiscoveryError (InvalidArgument / ResourceExhausted); all-or-nothing. */
  update(req: AffiliateUpdateRequest): void {
    this.#checkId('cluster_id', req.clusterId);
    this.#checkId('affiliate_id', req.affiliateId);
    const data = req.affiliateData;
    if (data !== undefined && data.length > this.limits.maxDataBytes) {
      throw new DiscoveryError(status.INVALID_ARGUMENT, `affiliate_data is ${data.length} bytes, limit ${this.limits.maxDataBytes}`);
    }
    req.affiliateEndpoints.forEach((ep, i) => {
      if (ep.length > this.limits.maxEndpointBytes) {
        throw new DiscoveryError(
          status.INVALID_ARGUMENT,
          `affiliate_endpoints[${i}] is ${ep.length} bytes, limit ${this.limits.maxEndpointBytes}`,
        );
      }
    });
    const ttl = req.ttlMs ?? 0;
    if (ttl > this.limits.maxTtlMs) {
      throw new DiscoveryError(status.INVALID_ARGUMENT, `ttl ${ttl / 1000}s exceeds ${this.limits.maxTtlMs / 1000}s`);
    }
    if (ttl < 0) throw new DiscoveryError(status.INVALID_ARGUMENT, `ttl ${ttl / 1000}s is negative`);

    const now = this.#now();
    const expiresAt = now + ttl;
    const cluster = this.#clusters.get(req.clusterId);
    let affiliate = cluster?.affiliates.get(req.affiliateId);
    if (!affiliate && (cluster?.affiliates.size ?? 0) >= this.limits.maxAffiliatesPerCluster) {
      throw new DiscoveryError(
        status.RESOURCE_EXHAUSTED,
        `cluster has ${this.limits.maxAffiliatesPerCluster} affiliates, the limit`,
      );
    }
    // distinct endpoints of the request, and how many are new
    const incoming = new Map<string, Uint8Array>();
    for (const ep of req.affiliateEndpoints) incoming.set(keyOf(ep), ep);
    const existingKeys = new Set(affiliate?.endpoints.map((e) => e.key) ?? []);
    let added = 0;
    for (const key of incoming.keys()) if (!existingKeys.has(key)) added++;
    const total = existingKeys.size + added;
    if (total > this.limits.maxEndpointsPerAffiliate) {
      throw new DiscoveryError(
        status.RESOURCE_EXHAUSTED,
        `affiliate would have ${total} endpoints, limit ${this.limits.maxEndpointsPerAffiliate}`,
      );
    }

    // apply
    const c = cluster ?? this.#cluster(req.clusterId);
    let changed = false;
    if (!affiliate) {
      affiliate = { id: req.affiliateId, data: new Uint8Array(0), expiresAt, endpoints: [] };
      c.affiliates.set(affiliate.id, affiliate);
      changed = true;
    }
    if (data !== undefined && data.length > 0) {
      affiliate.data = copy(data);
      affiliate.expiresAt = expiresAt;
      changed = true;
    }
    for (const [key, blob] of incoming) {
      const found = affiliate.endpoints.find((e) => e.key === key);
      if (found) {
        found.expiresAt = Math.max(found.expiresAt, expiresAt);
      } else {
        affiliate.endpoints.push({ data: copy(blob), key, expiresAt });
        changed = true;
      }
    }
    affiliate.expiresAt = Math.max(affiliate.expiresAt, expiresAt);
    if (changed) this.#notify(c, { kind: 'update', affiliate: toWire(affiliate) });
  }

  /** AffiliateDelete: removes at once and notifies `deleted` (no-op for an unknown id). */
  delete(clusterId: string, affiliateId: string): void {
    this.#checkId('cluster_id', clusterId);
    this.#checkId('affiliate_id', affiliateId);
    const cluster = this.#clusters.get(clusterId);
    if (cluster?.affiliates.delete(affiliateId)) this.#notify(cluster, { kind: 'deleted', id: affiliateId });
  }

  /** List: every affiliate of the cluster (including those with no data yet). */
  list(clusterId: string): WireAffiliate[] {
    this.#checkId('cluster_id', clusterId);
    return [...(this.#clusters.get(clusterId)?.affiliates.values() ?? [])].map(toWire);
  }

  /**
   * Watch: returns the current affiliates and registers `sink` for every later change, atomically
   * (single-threaded). Call `unsubscribe` when the stream ends.
   */
  subscribe(
    clusterId: string,
    sink: NotificationSink,
  ): { snapshot: WireAffiliate[]; version: number; unsubscribe: () => void } {
    this.#checkId('cluster_id', clusterId);
    const cluster = this.#cluster(clusterId);
    cluster.subscribers.add(sink);
    return {
      snapshot: [...cluster.affiliates.values()].map(toWire),
      version: cluster.version,
      unsubscribe: () => {
        cluster.subscribers.delete(sink);
      },
    };
  }

  /** Drops expired affiliates and endpoints, and clusters with no affiliates and no watchers. */
  gc(): GcResult {
    const now = this.#now();
    const result: GcResult = { expiredAffiliates: 0, expiredEndpoints: 0, removedClusters: 0 };
    for (const [id, cluster] of this.#clusters) {
      for (const [affiliateId, affiliate] of cluster.affiliates) {
        if (affiliate.expiresAt <= now) {
          cluster.affiliates.delete(affiliateId);
          result.expiredAffiliates++;
          this.#notify(cluster, { kind: 'deleted', id: affiliateId });
          continue;
        }
        const before = affiliate.endpoints.length;
        affiliate.endpoints = affiliate.endpoints.filter((e) => e.expiresAt > now);
        if (affiliate.endpoints.length !== before) {
          result.expiredEndpoints += before - affiliate.endpoints.length;
          this.#notify(cluster, { kind: 'update', affiliate: toWire(affiliate) });
        }
      }
      if (cluster.affiliates.size === 0 && cluster.subscribers.size === 0) {
        this.#clusters.delete(id);
        result.removedClusters++;
      }
    }
    return result;
  }

  /** Open watches on one cluster. */
  subscriberCount(clusterId: string): number {
    return this.#clusters.get(clusterId)?.subscribers.size ?? 0;
  }

  stats(): StateStats {
    const s: StateStats = { clusters: this.#clusters.size, affiliates: 0, endpoints: 0, subscribers: 0 };
    for (const c of this.#clusters.values()) {
      s.affiliates += c.affiliates.size;
      s.subscribers += c.subscribers.size;
      for (const a of c.affiliates.values()) s.endpoints += a.endpoints.length;
    }
    return s;
  }

  /** The state with remaining TTLs, for the state file. */
  export(): StateExport {
    const now = this.#now();
    const clusters: StateExport['clusters'] = [];
    for (const c of this.#clusters.values()) {
      if (c.affiliates.size === 0) continue;
      clusters.push({
        id: c.id,
        affiliates: [...c.affiliates.values()].map((a) => ({
          id: a.id,
          data: a.data,
          remainingMs: Math.max(0, a.expiresAt - now),
          endpoints: a.endpoints.map((e) => ({ data: e.data, remainingMs: Math.max(0, e.expiresAt - now) })),
        })),
      });
    }
    return { clusters };
  }

  /**
   * Loads a state file's content, subtracting `elapsedMs` (time spent down) from every remaining
   * TTL. Entries already expired or breaking a limit are skipped; returns how many were loaded.
   */
  import(snapshot: StateExport, elapsedMs = 0): { affiliates: number; skipped: number } {
    const now = this.#now();
    let loaded = 0;
    let skipped = 0;
    for (const c of snapshot.clusters) {
      for (const a of c.affiliates) {
        const expiresAt = now + a.remainingMs - Math.max(0, elapsedMs);
        const idOk = (s: string) => Buffer.byteLength(s) >= 1 && Buffer.byteLength(s) <= this.limits.maxIdBytes;
        const cluster = this.#clusters.get(c.id);
        if (
          expiresAt <= now ||
          !idOk(c.id) ||
          !idOk(a.id) ||
          a.data.length > this.limits.maxDataBytes ||
          (cluster?.affiliates.size ?? 0) >= this.limits.maxAffiliatesPerCluster ||
          cluster?.affiliates.has(a.id)
        ) {
          skipped++;
          continue;
        }
        const endpoints: StoredEndpoint[] = [];
        for (const e of a.endpoints) {
          const eExpires = now + e.remainingMs - Math.max(0, elapsedMs);
          if (eExpires <= now || e.data.length > this.limits.maxEndpointBytes) continue;
          if (endpoints.length >= this.limits.maxEndpointsPerAffiliate) break;
          const key = keyOf(e.data);
          if (endpoints.some((x) => x.key === key)) continue;
          endpoints.push({ data: copy(e.data), key, expiresAt: eExpires });
        }
        this.#cluster(c.id).affiliates.set(a.id, { id: a.id, data: copy(a.data), expiresAt, endpoints });
        loaded++;
      }
    }
    return { affiliates: loaded, skipped };
  }

  // --- internals -----------------------------------------------------------------------------

  #cluster(id: string): Cluster {
    let c = this.#clusters.get(id);
    if (!c) {
      c = { id, affiliates: new Map(), subscribers: new Set(), version: ++this.#versions };
      this.#clusters.set(id, c);
    }
    return c;
  }

  #notify(cluster: Cluster, n: Notification): void {
    cluster.version = ++this.#versions;
    for (const sink of [...cluster.subscribers]) sink(n);
  }
}
