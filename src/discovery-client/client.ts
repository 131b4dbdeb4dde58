/**
 * Discovery client for `sidero.discovery.server.Cluster`, following the Talos client's run loop
 * (kubespan.md §1.7):
 *
 *   loop:  back-off wait (before every (re)connect, including the first)
 *          → Hello (10 s; record client_ip; follow redirect; failure drops the connection)
 *          → Watch (first message replaces the affiliate map, later ones are deltas)
 *          → refresh: AffiliateUpdate(own data + own endpoints, ttl) + one endpoints-only update
 *            per harvested peer, at once, every TTL/2, and on any local change (one deadline
 *            for the batch; any error cancels the watch and the loop starts over)
 *
 * Edge-notify, level-read: `onChange(cb)` fires (no payload, coalesced) when the view may have
 * changed; `affiliates()` returns the decrypted, validated snapshot. Records that cannot be opened
 * or parsed are logged (id and reason only) and skipped; nothing a server sends can crash the loop.
 */
import {
  Client,
  Metadata,
  status as GrpcStatus,
  type ClientReadableStream,
  type ServiceError,
} from '@grpc/grpc-js';
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { pino, type Logger } from 'pino';
import type { Random } from '../noise/clock.js';
import { decodeAffiliate, encodeAffiliate } from '../discovery/affiliate-codec.js';
import { ClusterCipher, parseClusterSecret } from '../discovery/cluster-cipher.js';
import { checkEndpoint } from '../discovery/endpoint-codec.js';
import { normaliseEndpoint, parseRedirectTarget, type DiscoveryTarget } from '../discovery/endpoint-url.js';
import { decodeIp } from '../discovery/ip-bytes.js';
import {
  DEFAULT_DISCOVERY_ENDPOINT,
  DEFAULT_TTL_MS,
  HELLO_TIMEOUT_MS,
  MAX_ENDPOINTS_PER_AFFILIATE,
  MAX_ID_BYTES,
  MAX_TTL_MS,
  MIN_KEEPALIVE_MS,
  REFRESH_TIMEOUT_MS,
} from '../discovery/limits.js';
import { clusterMethods, METHOD_PATHS } from '../discovery/service.js';
import type { AffiliateEndpoint, DiscoveredAffiliate, LocalAffiliate } from '../discovery/types.js';
import type { AffiliateUpdateRequest, HelloResponse, WatchResponse, WireAffiliate } from '../discovery/wire.js';
import { ExponentialBackoff, type BackoffOptions } from './backoff.js';
import type { ProxyEnv, ProxySettings } from './proxy.js';
import { buildChannel, describeTransportError, type Channel } from './transport.js';

export interface DiscoveryClientOptions {
  /** Discovery service URL (default `https://discovery.talos.dev/`). */
  endpoint?: string;
  /** Cluster id, sent verbatim. */
  clusterId: string;
  /** Cluster secret, standard base64 of 32 bytes: the AES-256 key. */
  clusterSecret: string;
  /** This node's affiliate id (= `LocalAffiliate.nodeId`), 1..256 bytes. */
  affiliateId: string;
  /** Sent in Hello (the server only counts it); default `kubespand`. */
  clientVersion?: string;
  /** Extra PEM CA files appended to the system trust store. */
  caFiles?: string[];
  /**
   * Resolvers for the discovery host name (`machine.network.nameservers`, the corporate-network case):
   * the name is looked up through them before every connection instead of through the system resolver.
   */
  nameservers?: string[];
  /** System CA bundle path (default /etc/ssl/certs/ca-certificates.crt). */
  systemCaFile?: string;
  /** Proxy keys from the config file; they take precedence over the environment (see proxy.ts). */
  proxy?: ProxySettings;
  /** Environment to read proxy variables from (default process.env). */
  env?: ProxyEnv;
  /** TTL on every AffiliateUpdate (default 30 min, at most 30 min). */
  ttlMs?: number;
  /** Periodic resend interval (default TTL/2). */
  refreshIntervalMs?: number;
  helloTimeoutMs?: number;
  /** Deadline of one refresh batch (default 30 s). */
  refreshTimeoutMs?: number;
  /** gRPC keepalive (default max(10 s, TTL/10); never below 10 s). */
  keepaliveMs?: number;
  backoff?: Partial<BackoffOptions>;
  /** Uniform [0,1) source for back-off jitter. */
  random?: () => number;
  /** Timers of the run loop (default: the global ones). */
  timers?: ClientTimers;
  /** Nonce source for affiliate data encryption (default node:crypto). */
  cipherRandom?: Pick<Random, 'fill'>;
  logger?: Logger;
}

export type DiscoveryClientState = 'connecting' | 'connected' | 'backoff' | 'stopped';

/**
 * The timers of the client's own loop (back-off waits and the periodic refresh), injectable so a
 * test can run the loop on a manual clock. gRPC deadlines are not affected.
 */
export interface ClientTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

const systemTimers: ClientTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
};

/** Monotonic counters for metrics. */
export interface DiscoveryClientCounters {
  hellos: number;
  helloErrors: number;
  redirects: number;
  watchesOpened: number;
  watchErrors: number;
  snapshots: number;
  deltas: number;
  refreshes: number;
  updatesSent: number;
  updateErrors: number;
  deletesSent: number;
  /** Affiliate records that failed to decrypt or parse (skipped). */
  rejectedAffiliates: number;
  /** Endpoint blobs that failed to decrypt or parse (skipped). */
  rejectedEndpoints: number;
}

function zeroCounters(): DiscoveryClientCounters {
  return {
    hellos: 0,
    helloErrors: 0,
    redirects: 0,
    watchesOpened: 0,
    watchErrors: 0,
    snapshots: 0,
    deltas: 0,
    refreshes: 0,
    updatesSent: 0,
    updateErrors: 0,
    deletesSent: 0,
    rejectedAffiliates: 0,
    rejectedEndpoints: 0,
  };
}

/** One Hello-then-Watch attempt on a channel; ends on stream error, refresh failure or stop. */
interface Session {
  client: Client;
  call?: ClientReadableStream<WatchResponse>;
  snapshotPending: boolean;
  ended: boolean;
  end(reason: string): void;
  done: Promise<void>;
}

/** Per watch message, individual "skipping affiliate record" warnings beyond this are summarised. */
const MAX_LOGGED_REJECTIONS = 5;

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function blobsKey(blobs: readonly Uint8Array[]): string {
  return blobs.map((b) => Buffer.from(b).toString('hex')).join(',');
}

/** Discovery client: keeps this node published and the cluster's affiliates in view. */
/** Looks `host` up (A and AAAA) through the given resolvers only; throws naming the host when nothing answers. */
export async function resolveWith(nameservers: string[], host: string): Promise<string[]> {
  const resolver = new Resolver({ timeout: 3000, tries: 2 });
  resolver.setServers(nameservers);
  const [v4, v6] = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)]);
  const out = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
  if (out.length === 0) {
    const why = v4.status === 'rejected' ? (v4.reason as NodeJS.ErrnoException).code ?? String(v4.reason) : 'no addresses';
    throw new Error(`cannot resolve ${host} through nameservers ${nameservers.join(', ')}: ${why}`);
  }
  return out;
}

export class DiscoveryClient {
  readonly #clusterId: string;
  readonly #affiliateId: string;
  readonly #cipher: ClusterCipher;
  readonly #opts: DiscoveryClientOptions;
  readonly #log: Logger;
  readonly #ttlMs: number;
  readonly #refreshIntervalMs: number;
  readonly #backoff: ExponentialBackoff;

  #target: DiscoveryTarget;
  #channel: Channel | undefined;
  #client: Client | undefined;
  #state: DiscoveryClientState = 'stopped';
  #running = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #sleepTimer: unknown;
  #session: Session | undefined;
  #refreshTimer: unknown;
  readonly #timers: ClientTimers;

  #affiliates = new Map<string, DiscoveredAffiliate>();
  #publicIp: string | undefined;
  #lastError: string | undefined;
  #listeners = new Set<() => void>();
  #notifyQueued = false;
  readonly #counters = zeroCounters();

  // local state and the keys used to suppress unchanged re-sends
  #localKey = '';
  #localBlob: Uint8Array | undefined;
  #localEndpointBlobs: Uint8Array[] = [];
  #harvested = new Map<string, Uint8Array[]>();
  #harvestedKey = '';
  #leaving = false;
  #inflight = new Set<{ cancel(): void }>();
  #refreshWanted = false;
  #refreshing = false;

  constructor(options: DiscoveryClientOptions) {
    this.#opts = options;
    this.#clusterId = options.clusterId;
    this.#affiliateId = options.affiliateId;
    for (const [field, value] of [
      ['clusterId', options.clusterId],
      ['affiliateId', options.affiliateId],
    ] as const) {
      const n = typeof value === 'string' ? Buffer.byteLength(value) : 0;
      if (n < 1 || n > MAX_ID_BYTES) throw new Error(`${field}: "${String(value)}" must be 1..${MAX_ID_BYTES} bytes`);
    }
    this.#cipher = new ClusterCipher(parseClusterSecret(options.clusterSecret), options.cipherRandom);
    this.#target = normaliseEndpoint(options.endpoint ?? DEFAULT_DISCOVERY_ENDPOINT, 'endpoint');
    const ttl = options.ttlMs ?? DEFAULT_TTL_MS;
    if (!(ttl >= 0 && ttl <= MAX_TTL_MS)) throw new Error(`ttlMs: ${ttl} must be 0..${MAX_TTL_MS}`);
    this.#ttlMs = ttl;
    this.#refreshIntervalMs = options.refreshIntervalMs ?? Math.max(1, Math.floor(ttl / 2));
    this.#backoff = new ExponentialBackoff(options.backoff, options.random);
    this.#timers = options.timers ?? systemTimers;
    this.#log = (options.logger ?? pino({ level: 'silent' })).child({ component: 'discovery-client' });
    // fail early on unreadable CA files or a bad proxy URL
    buildChannel(this.#target, this.#transportOptions()).credentials;
  }

  // --- public surface ------------------------------------------------------------------------

  /** Starts the run loop (idempotent). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop = this.#run().catch((err: unknown) => {
      this.#log.error({ err: String(err) }, 'discovery client loop failed');
    });
  }

  /** Stops the loop, cancels the watch and closes the connection. */
  async stop(): Promise<void> {
    this.#running = false;
    this.#session?.end('stopped');
    for (const call of [...this.#inflight]) call.cancel();
    this.#wakeUp();
    await this.#loop;
    this.#loop = undefined;
    this.#closeChannel();
    this.#setState('stopped');
  }

  /** Registers a change listener (called without payload, coalesced); returns an unsubscribe. */
  onChange(cb: () => void): () => void {
    this.#listeners.add(cb);
    return () => this.#listeners.delete(cb);
  }

  /** Decrypted, validated affiliates of the other nodes (frozen objects), sorted by node id. */
  affiliates(): DiscoveredAffiliate[] {
    return [...this.#affiliates.values()].sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  }

  /** Our address as the discovery service saw it (from Hello), if reported. */
  publicIp(): string | undefined {
    return this.#publicIp;
  }

  state(): DiscoveryClientState {
    return this.#state;
  }

  counters(): Readonly<DiscoveryClientCounters> {
    return { ...this.#counters };
  }

  /** Last transport or protocol error, as one clear line (never contains secrets). */
  lastError(): string | undefined {
    return this.#lastError;
  }

  /** The gRPC target currently in use (changes after a redirect). */
  target(): string {
    return this.#target.target;
  }

  /**
   * Sets what this node publishes. Throws (naming the field) on invalid data or a record too
   * large for the server. A change triggers an immediate resend; an identical record does not.
   */
  setLocalAffiliate(affiliate: LocalAffiliate): void {
    if (affiliate.nodeId !== this.#affiliateId) {
      throw new Error(`affiliate.nodeId: "${affiliate.nodeId}" must equal the client's affiliateId "${this.#affiliateId}"`);
    }
    const plain = encodeAffiliate(affiliate);
    const key = Buffer.from(plain).toString('hex');
    if (key === this.#localKey) return;
    this.#localKey = key;
    // fresh nonce every time the data changes, as Talos does
    this.#localBlob = this.#cipher.sealAffiliateData(plain);
    this.#requestRefresh('local data changed');
  }

  /** Sets our own endpoints (already filtered). Throws naming `endpoints[i]` on invalid input. */
  setLocalEndpoints(endpoints: readonly AffiliateEndpoint[]): void {
    const blobs = this.#encryptEndpoints(endpoints, 'endpoints');
    const key = blobsKey(blobs);
    if (key === blobsKey(this.#localEndpointBlobs)) return;
    this.#localEndpointBlobs = blobs;
    this.#requestRefresh('local endpoints changed');
  }

  /**
   * Sets endpoints harvested for other affiliates (affiliate id → endpoints); each is published
   * as an endpoints-only update for that affiliate. Our own id is ignored.
   */
  setHarvestedEndpoints(harvested: ReadonlyMap<string, readonly AffiliateEndpoint[]>): void {
    const next = new Map<string, Uint8Array[]>();
    for (const id of [...harvested.keys()].sort()) {
      if (id === this.#affiliateId) continue;
      const n = Buffer.byteLength(id);
      if (n < 1 || n > MAX_ID_BYTES) throw new Error(`harvested: affiliate id "${id}" must be 1..${MAX_ID_BYTES} bytes`);
      const blobs = this.#encryptEndpoints(harvested.get(id) ?? [], `harvested[${id}]`);
      if (blobs.length > 0) next.set(id, blobs);
    }
    const key = [...next].map(([id, blobs]) => `${id}=${blobsKey(blobs)}`).join(';');
    if (key === this.#harvestedKey) return;
    this.#harvested = next;
    this.#harvestedKey = key;
    this.#requestRefresh('harvested endpoints changed');
  }

  /**
   * Leaves the cluster: sends AffiliateDelete for our id now, and from then on every refresh
   * sends only the delete (the client never re-publishes; call stop() afterwards).
   */
  async leave(): Promise<void> {
    this.#leaving = true;
    const client = this.#ensureClient();
    try {
      await this.#unary(
        client,
        clusterMethods.AffiliateDelete,
        { clusterId: this.#clusterId, affiliateId: this.#affiliateId },
        Date.now() + (this.#opts.helloTimeoutMs ?? HELLO_TIMEOUT_MS),
      );
    } finally {
      if (!this.#running) this.#closeChannel();
    }
    this.#counters.deletesSent++;
    this.#log.info({ affiliateId: this.#affiliateId }, 'left the cluster (AffiliateDelete)');
  }

  // --- run loop ------------------------------------------------------------------------------

  async #run(): Promise<void> {
    while (this.#running) {
      this.#setState('backoff');
      await this.#sleep(this.#backoff.next());
      if (!this.#running) break;
      this.#setState('connecting');

      if (!this.#client && this.#opts.nameservers && this.#opts.nameservers.length > 0 && isIP(this.#target.host) === 0) {
        try {
          this.#resolved = await resolveWith(this.#opts.nameservers, this.#target.host);
        } catch (err) {
          if (!this.#running) break;
          this.#recordError(err, 'resolving the discovery host failed');
          continue;
        }
      }
      const client = this.#ensureClient();
      let hello: HelloResponse;
      try {
        hello = await this.#unary(
          client,
          clusterMethods.Hello,
          { clusterId: this.#clusterId, clientVersion: this.#opts.clientVersion ?? 'kubespand' },
          Date.now() + (this.#opts.helloTimeoutMs ?? HELLO_TIMEOUT_MS),
        );
      } catch (err) {
        if (!this.#running) break;
        this.#counters.helloErrors++;
        this.#recordError(err, 'hello failed');
        // drop the connection so the next attempt starts afresh (and reloads TLS material)
        this.#closeChannel();
        continue;
      }
      if (!this.#running) break;
      this.#counters.hellos++;
      this.#setPublicIp(hello.clientIp);
      if (hello.redirect && hello.redirect.endpoint !== '') {
        try {
          this.#target = parseRedirectTarget(hello.redirect.endpoint, this.#target.tls);
          this.#counters.redirects++;
          this.#log.info({ target: this.#target.target }, 'discovery service redirected us');
        } catch (err) {
          this.#recordError(err, 'ignoring bad redirect');
        }
        this.#closeChannel();
        continue;
      }
      await this.#runSession(client);
    }
  }

  /** Watch + refresh on one connection until the stream fails, a refresh fails, or stop(). */
  #runSession(client: Client): Promise<void> {
    let resolveDone!: () => void;
    const done = new Promise<void>((r) => (resolveDone = r));
    const session: Session = {
      client,
      snapshotPending: true,
      ended: false,
      done,
      end: (reason: string) => {
        if (session.ended) return;
        session.ended = true;
        this.#log.debug({ reason }, 'watch session ended');
        if (this.#refreshTimer !== undefined) this.#timers.clearInterval(this.#refreshTimer);
        this.#refreshTimer = undefined;
        if (this.#session === session) this.#session = undefined;
        session.call?.cancel();
        resolveDone();
      },
    };
    this.#session = session;

    const call = client.makeServerStreamRequest(
      METHOD_PATHS.Watch,
      clusterMethods.Watch.requestSerialize,
      clusterMethods.Watch.responseDeserialize,
      { clusterId: this.#clusterId },
      new Metadata(),
      {},
    );
    session.call = call;
    this.#counters.watchesOpened++;
    call.on('data', (msg: WatchResponse) => {
      if (session.ended) return;
      const snapshot = session.snapshotPending;
      session.snapshotPending = false;
      this.#applyWatch(msg, snapshot);
      if (snapshot) this.#setState('connected');
    });
    call.on('error', (err: ServiceError) => {
      if (session.ended) return;
      if (err.code !== GrpcStatus.CANCELLED) {
        this.#counters.watchErrors++;
        this.#recordError(err, 'watch failed');
      }
      session.end('watch error');
    });
    call.on('end', () => session.end('watch ended'));

    // publish at once, then every refresh interval (the TTL keep-alive)
    this.#refreshTimer = this.#timers.setInterval(() => this.#requestRefresh('periodic', true), this.#refreshIntervalMs);
    this.#requestRefresh('new watch', true);
    return done;
  }

  #requestRefresh(reason: string, force = false): void {
    if (force || this.#localBlob !== undefined || this.#leaving) this.#refreshWanted = true;
    else return;
    this.#log.debug({ reason }, 'refresh requested');
    void this.#refreshLoop();
  }

  async #refreshLoop(): Promise<void> {
    if (this.#refreshing) return;
    this.#refreshing = true;
    try {
      while (this.#refreshWanted) {
        const session = this.#session;
        if (!session || session.ended) return;
        this.#refreshWanted = false;
        try {
          await this.#refresh(session.client);
          this.#backoff.reset();
        } catch (err) {
          if (!this.#running) return;
          this.#counters.updateErrors++;
          this.#recordError(err, 'refresh failed');
          // retry the whole thing: back-off, Hello, new Watch, full resend
          this.#refreshWanted = true;
          session.end('refresh failed');
          return;
        }
      }
    } finally {
      this.#refreshing = false;
    }
  }

  /** One refresh batch (one deadline for all of it). */
  async #refresh(client: Client): Promise<void> {
    const deadline = Date.now() + (this.#opts.refreshTimeoutMs ?? REFRESH_TIMEOUT_MS);
    if (this.#leaving) {
      await this.#unary(client, clusterMethods.AffiliateDelete, { clusterId: this.#clusterId, affiliateId: this.#affiliateId }, deadline);
      this.#counters.deletesSent++;
      return;
    }
    if (this.#localBlob === undefined) return;
    this.#counters.refreshes++;
    const own: AffiliateUpdateRequest = {
      clusterId: this.#clusterId,
      affiliateId: this.#affiliateId,
      affiliateData: this.#localBlob,
      affiliateEndpoints: this.#localEndpointBlobs,
      ttlMs: this.#ttlMs,
    };
    await this.#unary(client, clusterMethods.AffiliateUpdate, own, deadline);
    this.#counters.updatesSent++;
    for (const [id, blobs] of this.#harvested) {
      await this.#unary(
        client,
        clusterMethods.AffiliateUpdate,
        { clusterId: this.#clusterId, affiliateId: id, affiliateEndpoints: blobs, ttlMs: this.#ttlMs },
        deadline,
      );
      this.#counters.updatesSent++;
    }
  }

  // --- watch messages ------------------------------------------------------------------------

  #applyWatch(msg: WatchResponse, snapshot: boolean): void {
    if (snapshot) {
      this.#counters.snapshots++;
      this.#affiliates = new Map();
    } else {
      this.#counters.deltas++;
    }
    const rejected = { count: 0 };
    for (const wire of msg.affiliates) {
      if (wire.id === this.#affiliateId) continue;
      if (msg.deleted) {
        this.#affiliates.delete(wire.id);
        continue;
      }
      const decoded = this.#decodeWire(wire, rejected);
      if (decoded) this.#affiliates.set(wire.id, decoded);
      else this.#affiliates.delete(wire.id);
    }
    if (rejected.count > MAX_LOGGED_REJECTIONS) {
      this.#log.warn({ skipped: rejected.count - MAX_LOGGED_REJECTIONS }, 'skipping more affiliate records (not logged one by one)');
    }
    this.#notify();
  }

  /** Decrypts and validates one affiliate; undefined when it has no data or is unusable (logged). */
  #decodeWire(wire: WireAffiliate, rejected: { count: number }): DiscoveredAffiliate | undefined {
    // an affiliate known only through harvested endpoints has no data yet
    if (wire.data.length === 0) return undefined;
    let record: Omit<DiscoveredAffiliate, 'endpoints'>;
    try {
      record = decodeAffiliate(this.#cipher.openAffiliateData(wire.data));
      if (record.nodeId !== wire.id) throw new Error(`node_id "${record.nodeId}" differs from the affiliate id`);
    } catch (err) {
      this.#counters.rejectedAffiliates++;
      if (++rejected.count <= MAX_LOGGED_REJECTIONS) {
        this.#log.warn({ affiliateId: wire.id.slice(0, 64), reason: (err as Error).message }, 'skipping affiliate record');
      }
      return undefined;
    }
    const endpoints: AffiliateEndpoint[] = [];
    const seen = new Set<string>();
    for (const blob of wire.endpoints) {
      try {
        const ep = this.#cipher.decryptEndpoint(blob);
        const key = `${ep.address}|${ep.port}`;
        if (!seen.has(key)) {
          seen.add(key);
          endpoints.push(ep);
        }
      } catch (err) {
        this.#counters.rejectedEndpoints++;
        this.#log.debug({ affiliateId: wire.id, reason: (err as Error).message }, 'skipping endpoint blob');
      }
    }
    return deepFreeze({ ...record, endpoints });
  }

  // --- helpers -------------------------------------------------------------------------------

  /** One unary call with an absolute deadline; cancelled by stop(). */
  #unary<Req, Res>(
    client: Client,
    method: { path: string; requestSerialize: (v: Req) => Buffer; responseDeserialize: (b: Buffer) => Res },
    request: Req,
    deadline: number,
  ): Promise<Res> {
    return new Promise((resolve, reject) => {
      const call = client.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        new Metadata(),
        { deadline: new Date(deadline) },
        (err: ServiceError | null, value?: Res) => {
          this.#inflight.delete(call);
          if (err) reject(err);
          else resolve(value as Res);
        },
      );
      this.#inflight.add(call);
    });
  }

  #encryptEndpoints(endpoints: readonly AffiliateEndpoint[], field: string): Uint8Array[] {
    if (!Array.isArray(endpoints)) throw new Error(`${field}: must be an array`);
    const blobs: Uint8Array[] = [];
    const seen = new Set<string>();
    endpoints.forEach((ep, i) => {
      checkEndpoint(ep, `${field}[${i}]`);
      const blob = this.#cipher.encryptEndpoint(ep, `${field}[${i}]`);
      const key = Buffer.from(blob).toString('hex');
      if (!seen.has(key)) {
        seen.add(key);
        blobs.push(blob);
      }
    });
    if (blobs.length > MAX_ENDPOINTS_PER_AFFILIATE) {
      throw new Error(`${field}: ${blobs.length} endpoints, the server accepts at most ${MAX_ENDPOINTS_PER_AFFILIATE}`);
    }
    return blobs;
  }

  #transportOptions() {
    const keepalive = this.#opts.keepaliveMs ?? Math.max(MIN_KEEPALIVE_MS, Math.floor(this.#ttlMs / 10));
    return {
      caFiles: this.#opts.caFiles,
      systemCaFile: this.#opts.systemCaFile,
      proxy: this.#opts.proxy,
      env: this.#opts.env,
      keepaliveMs: Math.max(MIN_KEEPALIVE_MS, keepalive),
      ...(this.#resolved ? { resolvedAddresses: this.#resolved } : {}),
    };
  }

  #resolved: string[] | undefined;

  #ensureClient(): Client {
    if (this.#client) return this.#client;
    this.#channel = buildChannel(this.#target, this.#transportOptions());
    this.#log.debug({ target: this.#target.target, tls: this.#target.tls, proxy: this.#channel.proxy.reason }, 'opening channel');
    this.#client = new Client(this.#channel.address, this.#channel.credentials, this.#channel.options);
    return this.#client;
  }

  #closeChannel(): void {
    this.#client?.close();
    this.#client = undefined;
    this.#channel = undefined;
  }

  #recordError(err: unknown, what: string): void {
    const line =
      err && typeof err === 'object' && 'code' in err
        ? describeTransportError(err, this.#target, this.#channel?.proxy)
        : err instanceof Error
          ? err.message
          : String(err);
    this.#lastError = line;
    this.#log.warn({ target: this.#target.target, error: line }, what);
  }

  #setPublicIp(bytes: Uint8Array): void {
    const ip = bytes.length > 0 ? decodeIp(bytes) : undefined;
    if (ip !== this.#publicIp) {
      this.#publicIp = ip;
      this.#notify();
    }
  }

  #setState(state: DiscoveryClientState): void {
    this.#state = state;
  }

  #notify(): void {
    if (this.#notifyQueued) return;
    this.#notifyQueued = true;
    queueMicrotask(() => {
      this.#notifyQueued = false;
      for (const cb of [...this.#listeners]) {
        try {
          cb();
        } catch (err) {
          this.#log.error({ err: String(err) }, 'onChange listener threw');
        }
      }
    });
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = () => {
        if (this.#sleepTimer !== undefined) this.#timers.clearTimeout(this.#sleepTimer);
        this.#sleepTimer = undefined;
        this.#wake = undefined;
        resolve();
      };
      this.#sleepTimer = this.#timers.setTimeout(() => this.#wake?.(), ms);
    });
  }

  #wakeUp(): void {
    this.#wake?.();
  }
}
