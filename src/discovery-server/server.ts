/**
 * Open discovery server speaking Sidero's `sidero.discovery.server.Cluster` gRPC API
 * (kubespan.md §1.8): a thin grpc-js shell around DiscoveryState. It never decrypts anything —
 * it stores and forwards the encrypted blobs clients send.
 *
 * Per call: decode (malformed → InvalidArgument) → per-IP rate limit (delay, or ResourceExhausted
 * when the delay passes the deadline) → state operation (limit violations carry their gRPC code).
 * Watch: snapshot first, then one message per change through a bounded buffer (overflow →
 * Aborted "subscription canceled: lost update"). Background: GC every minute, state file
 * snapshots (periodic and on shutdown), Prometheus metrics on an opt-in listener.
 */
import { readFileSync, renameSync } from 'node:fs';
import type { Server as HttpServer } from 'node:http';
import {
  Server,
  ServerCredentials,
  status,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type StatusObject,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import { encodeIp } from '../discovery/ip-bytes.js';
import {
  GC_INTERVAL_MS,
  RATE_LIMIT_BURST,
  RATE_LIMIT_MAX_DELAY_MS,
  RATE_LIMIT_PER_SECOND,
  SERVER_MAX_RECEIVE_BYTES,
  SNAPSHOT_INTERVAL_MS,
  WATCH_BUFFER_SIZE,
} from '../discovery/limits.js';
import {
  clusterServiceDefinition,
  encodeWatchResponse,
  isMalformed,
  type MalformedRequest,
  type MethodName,
} from '../discovery/service.js';
import type {
  AffiliateDeleteRequest,
  AffiliateUpdateRequest,
  ClusterRequest,
  Empty,
  HelloRequest,
  HelloResponse,
  ListResponse,
  WatchResponse,
} from '../discovery/wire.js';
import { clientIp } from './client-ip.js';
import { DiscoveryMetrics, serveMetrics, versionLabel } from './metrics.js';
import { RateLimiter } from './rate-limiter.js';
import { DiscoveryError, DiscoveryState, type Notification, type StateLimits } from './state.js';
import { encodeStateFile, readStateFile, writeFileAtomic } from './state-file.js';
import { SubscriberQueue } from './subscriber-queue.js';

export interface DiscoveryServerOptions {
  /** `host:port` to listen on (port 0: pick a free one; see `port()` after start). */
  listen: string;
  /** PEM certificate chain and key files: TLS when both are given, plaintext HTTP/2 otherwise. */
  tlsCert?: string;
  tlsKey?: string;
  /** State file: reloaded at start, written periodically and on shutdown. */
  stateFile?: string;
  /** When set, every Hello answers with this redirect (`host:port`). */
  redirectEndpoint?: string;
  /** Take the client IP from X-Real-IP / X-Forwarded-For (only behind a trusted reverse proxy). */
  trustForwardedHeaders?: boolean;
  /** Report client_ip in Hello (default true). */
  reportClientIp?: boolean;
  gcIntervalMs?: number;
  snapshotIntervalMs?: number;
  /** Per-IP token bucket; false disables it (benchmarks, tests). */
  rateLimit?: { perSecond: number; burst: number } | false;
  limits?: Partial<StateLimits>;
  watchBufferSize?: number;
  /** `host:port` for the Prometheus /metrics listener (off when absent). */
  metricsListen?: string;
  logger?: Logger;
  /** Monotonic-enough millisecond clock for expiries and the rate limiter (default Date.now). */
  now?: () => number;
  /** Wall clock for state file timestamps (default Date.now). */
  wallNow?: () => number;
}

/** Splits `host:port` / `[v6]:port`; throws naming `field` and the value. */
export function parseHostPort(value: string, field: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value.trim());
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || host === undefined || !(port >= 0 && port <= 65535)) {
    throw new Error(`${field}: "${value}" is not host:port`);
  }
  return { host: host === '' ? '0.0.0.0' : host, port };
}

function readPem(path: string, field: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`${field}: cannot read "${path}": ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

type Call = ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>;

type WatchCall = ServerWritableStream<ClusterRequest | MalformedRequest, WatchResponse | Buffer>;

interface ActiveWatch {
  call: WatchCall;
  queue: SubscriberQueue<Buffer>;
  cleanup(): void;
}

function toStatus(err: unknown): Partial<StatusObject> {
  if (err instanceof DiscoveryError) return { code: err.code, details: err.message };
  return { code: status.INTERNAL, details: 'internal error' };
}

/** One notification is encoded once, whatever the number of watchers it goes to. */
const encodedNotifications = new WeakMap<Notification, Buffer>();

function notificationBytes(n: Notification): Buffer {
  let bytes = encodedNotifications.get(n);
  if (!bytes) {
    const msg: WatchResponse =
      n.kind === 'update'
        ? { affiliates: [n.affiliate], deleted: false }
        : { affiliates: [{ id: n.id, data: new Uint8Array(0), endpoints: [] }], deleted: true };
    bytes = encodeWatchResponse(msg);
    encodedNotifications.set(n, bytes);
  }
  return bytes;
}

/** The discovery server: `start()`, `stop()`, and the state/metrics for inspection. */
export class DiscoveryServer {
  readonly state: DiscoveryState;
  readonly metrics: DiscoveryMetrics;
  readonly #opts: DiscoveryServerOptions;
  readonly #log: Logger;
  readonly #limiter: RateLimiter | undefined;
  readonly #wallNow: () => number;
  #server: Server | undefined;
  #metricsServer: HttpServer | undefined;
  #port = 0;
  #gcTimer: NodeJS.Timeout | undefined;
  #snapshotTimer: NodeJS.Timeout | undefined;
  #watches = new Set<ActiveWatch>();
  /** Encoded watch snapshot per cluster, valid while the cluster's version is unchanged. */
  #snapshots = new Map<string, { version: number; bytes: Buffer }>();
  #delayed = new Set<NodeJS.Timeout>();
  #stopping = false;

  constructor(options: DiscoveryServerOptions) {
    this.#opts = options;
    parseHostPort(options.listen, 'listen');
    if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) {
      throw new Error('tls: --tls-cert and --tls-key must be given together');
    }
    if (options.redirectEndpoint !== undefined) parseHostPort(options.redirectEndpoint, 'redirect-endpoint');
    if (options.metricsListen !== undefined) parseHostPort(options.metricsListen, 'metrics-listen');
    const now = options.now ?? Date.now;
    this.#wallNow = options.wallNow ?? Date.now;
    this.state = new DiscoveryState({ now, limits: options.limits });
    this.metrics = new DiscoveryMetrics(this.state);
    const rate = options.rateLimit ?? { perSecond: RATE_LIMIT_PER_SECOND, burst: RATE_LIMIT_BURST };
    this.#limiter = rate === false ? undefined : new RateLimiter({ ...rate, now });
    this.#log = (options.logger ?? pino({ level: 'silent' })).child({ component: 'discovery-server' });
  }

  /** Loads the state file, binds the gRPC (and metrics) listeners, starts GC and snapshots. */
  async start(): Promise<{ port: number; metricsPort?: number }> {
    this.#loadState();
    const { host, port } = parseHostPort(this.#opts.listen, 'listen');
    const creds =
      this.#opts.tlsCert !== undefined && this.#opts.tlsKey !== undefined
        ? ServerCredentials.createSsl(
            null,
            [{ cert_chain: readPem(this.#opts.tlsCert, 'tls-cert'), private_key: readPem(this.#opts.tlsKey, 'tls-key') }],
            false,
          )
        : ServerCredentials.createInsecure();
    const server = new Server({ 'grpc.max_receive_message_length': SERVER_MAX_RECEIVE_BYTES });
    server.addService(clusterServiceDefinition, this.#handlers());
    const address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    this.#port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(address, creds, (err, bound) => (err ? reject(new Error(`listen: cannot bind ${address}: ${err.message}`)) : resolve(bound))),
    );
    this.#server = server;
    let metricsPort: number | undefined;
    if (this.#opts.metricsListen !== undefined) {
      const m = parseHostPort(this.#opts.metricsListen, 'metrics-listen');
      this.#metricsServer = await serveMetrics(this.metrics.registry, m.host, m.port);
      const a = this.#metricsServer.address();
      metricsPort = typeof a === 'object' && a ? a.port : m.port;
    }
    this.#gcTimer = setInterval(() => this.gc(), this.#opts.gcIntervalMs ?? GC_INTERVAL_MS);
    this.#gcTimer.unref();
    if (this.#opts.stateFile !== undefined) {
      this.#snapshotTimer = setInterval(() => this.saveState(), this.#opts.snapshotIntervalMs ?? SNAPSHOT_INTERVAL_MS);
      this.#snapshotTimer.unref();
    }
    this.#log.info(
      { listen: address, port: this.#port, tls: this.#opts.tlsCert !== undefined, metricsPort, stateFile: this.#opts.stateFile },
      'discovery server listening',
    );
    return metricsPort === undefined ? { port: this.#port } : { port: this.#port, metricsPort };
  }

  /** Bound gRPC port. */
  port(): number {
    return this.#port;
  }

  /** Ends every watch (Unavailable, clients reconnect), shuts the listeners, saves the state file. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    clearInterval(this.#gcTimer);
    clearInterval(this.#snapshotTimer);
    for (const t of this.#delayed) clearTimeout(t);
    this.#delayed.clear();
    for (const w of [...this.#watches]) {
      w.cleanup();
      w.call.emit('error', { code: status.UNAVAILABLE, details: 'discovery server shutting down' });
    }
    const server = this.#server;
    if (server) {
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    }
    this.#server = undefined;
    if (this.#metricsServer) {
      const m = this.#metricsServer;
      await new Promise<void>((resolve) => m.close(() => resolve()));
      m.closeAllConnections?.();
      this.#metricsServer = undefined;
    }
    this.saveState();
    this.#log.info('discovery server stopped');
  }

  /** One garbage collection pass (also run by the interval timer). */
  gc(): void {
    const r = this.state.gc();
    this.#limiter?.prune();
    for (const id of this.#snapshots.keys()) if (this.state.subscriberCount(id) === 0) this.#snapshots.delete(id);
    this.metrics.gcRuns.inc();
    this.metrics.gcExpiredAffiliates.inc(r.expiredAffiliates);
    this.metrics.gcExpiredEndpoints.inc(r.expiredEndpoints);
    if (r.expiredAffiliates + r.expiredEndpoints + r.removedClusters > 0) this.#log.debug(r, 'gc');
  }

  /** Writes the state file now (no-op without one). Errors are logged, never thrown. */
  saveState(): void {
    const file = this.#opts.stateFile;
    if (file === undefined) return;
    try {
      writeFileAtomic(file, encodeStateFile(this.state.export(), this.#wallNow()));
      this.metrics.snapshotWrites.inc({ result: 'ok' });
    } catch (err) {
      this.metrics.snapshotWrites.inc({ result: 'error' });
      this.#log.error({ stateFile: file, error: String(err) }, 'cannot write state file');
    }
  }

  #loadState(): void {
    const file = this.#opts.stateFile;
    if (file === undefined) return;
    try {
      const content = readStateFile(file);
      if (!content) return;
      const downMs = content.takenAtMs > 0 ? Math.max(0, this.#wallNow() - content.takenAtMs) : 0;
      const r = this.state.import(content.state, downMs);
      this.#log.info({ stateFile: file, loaded: r.affiliates, skipped: r.skipped, downMs }, 'state file loaded');
    } catch (err) {
      const aside = `${file}.corrupt-${this.#wallNow()}`;
      try {
        renameSync(file, aside);
      } catch {
        // keep going without it
      }
      this.#log.error({ stateFile: file, movedTo: aside, error: String(err) }, 'state file unreadable; starting empty');
    }
  }

  // --- gRPC handlers -------------------------------------------------------------------------

  /**
   * Rate-limit gate: runs `go` now or after the token's delay, or refuses with ResourceExhausted
   * when the delay would pass the call's deadline.
   */
  #admit(call: Call, method: MethodName, go: () => void, refuse: (s: Partial<StatusObject>) => void): void {
    if (!this.#limiter) return go();
    const ip = clientIp(call.getPeer(), call.metadata, this.#opts.trustForwardedHeaders ?? false) ?? 'unknown';
    const deadline = call.getDeadline();
    const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
    const maxDelay = Math.min(RATE_LIMIT_MAX_DELAY_MS, Number.isFinite(deadlineMs) ? deadlineMs - Date.now() : Infinity);
    const d = this.#limiter.take(ip, maxDelay);
    if (!d.ok) {
      this.metrics.rateLimited.inc({ method });
      return refuse({ code: status.RESOURCE_EXHAUSTED, details: `rate limit exceeded for ${ip}` });
    }
    if (d.delayMs <= 0) return go();
    const t = setTimeout(() => {
      this.#delayed.delete(t);
      go();
    }, d.delayMs);
    this.#delayed.add(t);
  }

  #unary<Req, Res>(method: MethodName, fn: (req: Req, call: ServerUnaryCall<Req | MalformedRequest, Res>) => Res) {
    return (call: ServerUnaryCall<Req | MalformedRequest, Res>, callback: sendUnaryData<Res>) => {
      const finish = (err: Partial<StatusObject> | null, value?: Res) => {
        this.metrics.requests.inc({ method, code: status[err?.code ?? status.OK] ?? String(err?.code) });
        callback(err, value);
      };
      const req = call.request;
      if (isMalformed(req)) return finish({ code: status.INVALID_ARGUMENT, details: `malformed request: ${req.malformed}` });
      this.#admit(
        call as Call,
        method,
        () => {
          if (call.cancelled) return;
          let res: Res;
          try {
            res = fn(req, call);
          } catch (err) {
            if (!(err instanceof DiscoveryError)) this.#log.error({ method, error: String(err) }, 'handler failed');
            return finish(toStatus(err));
          }
          finish(null, res);
        },
        (s) => finish(s),
      );
    };
  }

  #handlers(): UntypedServiceImplementation {
    const hello = this.#unary<HelloRequest, HelloResponse>('Hello', (req, call) => {
      this.state.checkClusterId(req.clusterId);
      this.metrics.hellos.inc({ client_version: versionLabel(req.clientVersion) });
      const res: HelloResponse = { clientIp: new Uint8Array(0) };
      if (this.#opts.reportClientIp ?? true) {
        const ip = clientIp(call.getPeer(), call.metadata, this.#opts.trustForwardedHeaders ?? false);
        if (ip !== undefined) res.clientIp = encodeIp(ip, 'client ip');
      }
      if (this.#opts.redirectEndpoint !== undefined) res.redirect = { endpoint: this.#opts.redirectEndpoint };
      return res;
    });
    const update = this.#unary<AffiliateUpdateRequest, Empty>('AffiliateUpdate', (req) => {
      this.state.update(req);
      return {};
    });
    const del = this.#unary<AffiliateDeleteRequest, Empty>('AffiliateDelete', (req) => {
      this.state.delete(req.clusterId, req.affiliateId);
      return {};
    });
    const list = this.#unary<ClusterRequest, ListResponse>('List', (req) => ({ affiliates: this.state.list(req.clusterId) }));
    return {
      Hello: hello,
      AffiliateUpdate: update,
      AffiliateDelete: del,
      List: list,
      Watch: (call: WatchCall) => this.#watch(call),
    };
  }

  #watch(call: WatchCall): void {
    const fail = (s: Partial<StatusObject>) => {
      this.metrics.requests.inc({ method: 'Watch', code: status[s.code ?? status.UNKNOWN] ?? String(s.code) });
      call.emit('error', s);
    };
    const req = call.request;
    if (isMalformed(req)) return fail({ code: status.INVALID_ARGUMENT, details: `malformed request: ${req.malformed}` });
    this.#admit(
      call as Call,
      'Watch',
      () => {
        if (call.cancelled || this.#stopping) return;
        let unsubscribe = () => {};
        let done = false;
        const watch: ActiveWatch = {
          call,
          queue: new SubscriberQueue<Buffer>(
            this.#opts.watchBufferSize ?? WATCH_BUFFER_SIZE,
            (msg) => call.write(msg),
            () => {
              this.metrics.watchLostUpdates.inc();
              watch.cleanup();
              fail({ code: status.ABORTED, details: 'subscription canceled: lost update' });
            },
          ),
          cleanup: () => {
            if (done) return;
            done = true;
            unsubscribe();
            watch.queue.close();
            this.#watches.delete(watch);
          },
        };
        let snapshot: Buffer;
        try {
          const sub = this.state.subscribe(req.clusterId, (n) => watch.queue.push(notificationBytes(n)));
          unsubscribe = sub.unsubscribe;
          let cached = this.#snapshots.get(req.clusterId);
          if (!cached || cached.version !== sub.version) {
            cached = { version: sub.version, bytes: encodeWatchResponse({ affiliates: sub.snapshot, deleted: false }) };
            this.#snapshots.set(req.clusterId, cached);
          }
          snapshot = cached.bytes;
        } catch (err) {
          unsubscribe();
          return fail(toStatus(err));
        }
        this.#watches.add(watch);
        call.on('drain', () => watch.queue.drained());
        call.on('cancelled', () => watch.cleanup());
        call.on('close', () => watch.cleanup());
        this.metrics.requests.inc({ method: 'Watch', code: 'OK' });
        watch.queue.push(snapshot);
      },
      fail,
    );
  }
}
