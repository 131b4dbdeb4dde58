/**
 * Prometheus metrics of the discovery server, on their own prom-client Registry (never the global
 * one), served by an opt-in HTTP listener (`--metrics-listen`) at /metrics.
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import type { DiscoveryState } from './state.js';

export class DiscoveryMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'method' | 'code'>;
  readonly hellos: Counter<'client_version'>;
  readonly rateLimited: Counter<'method'>;
  readonly watchLostUpdates: Counter;
  readonly gcExpiredAffiliates: Counter;
  readonly gcExpiredEndpoints: Counter;
  readonly gcRuns: Counter;
  readonly snapshotWrites: Counter<'result'>;

  constructor(state: DiscoveryState) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'discovery_server_requests_total',
      help: 'gRPC calls by method and status code',
      labelNames: ['method', 'code'],
      registers,
    });
    this.hellos = new Counter({
      name: 'discovery_server_hello_requests_total',
      help: 'Hello calls by client version (vX.Y, or unknown)',
      labelNames: ['client_version'],
      registers,
    });
    this.rateLimited = new Counter({
      name: 'discovery_server_rate_limited_total',
      help: 'calls refused by the per-IP rate limit',
      labelNames: ['method'],
      registers,
    });
    this.watchLostUpdates = new Counter({
      name: 'discovery_server_watch_lost_updates_total',
      help: 'watch streams cancelled because their buffer overflowed',
      registers,
    });
    this.gcRuns = new Counter({ name: 'discovery_server_gc_runs_total', help: 'garbage collection passes', registers });
    this.gcExpiredAffiliates = new Counter({
      name: 'discovery_server_gc_expired_affiliates_total',
      help: 'affiliates removed by expiry',
      registers,
    });
    this.gcExpiredEndpoints = new Counter({
      name: 'discovery_server_gc_expired_endpoints_total',
      help: 'endpoints removed by expiry',
      registers,
    });
    this.snapshotWrites = new Counter({
      name: 'discovery_server_snapshot_writes_total',
      help: 'state file writes by result',
      labelNames: ['result'],
      registers,
    });
    const gauge = (name: string, help: string, pick: (s: ReturnType<DiscoveryState['stats']>) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(pick(state.stats()));
        },
      });
    gauge('discovery_server_clusters', 'clusters in memory', (s) => s.clusters);
    gauge('discovery_server_affiliates', 'affiliates in memory', (s) => s.affiliates);
    gauge('discovery_server_endpoints', 'endpoint blobs in memory', (s) => s.endpoints);
    gauge('discovery_server_subscriptions', 'open watch streams', (s) => s.subscribers);
  }
}

/** `vX.Y…` → `vX.Y`; anything else → `unknown` (bounded label values). */
export function versionLabel(clientVersion: string): string {
  const m = /^v(\d{1,4})\.(\d{1,4})(?:[.\-+].*)?$/.exec(clientVersion);
  return m ? `v${m[1]}.${m[2]}` : 'unknown';
}

/** Starts the /metrics HTTP listener. */
export async function serveMetrics(registry: Registry, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) {
      registry
        .metrics()
        .then((body) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(body);
        })
        .catch((err: unknown) => {
          res.writeHead(500);
          res.end(String(err));
        });
      return;
    }
    res.writeHead(404);
    res.end('not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
