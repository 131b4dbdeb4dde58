/**
 * The opt-in metrics listener (`kubespand.metricsListen`): plain HTTP, read-only.
 *
 *   GET /metrics    Prometheus text format from the registry
 *   GET /healthz    200 "ok" while the daemon runs (a liveness probe for the sidecar)
 *   anything else   404; methods other than GET/HEAD: 405
 *
 * `host` '' listens on every address (IPv6 and IPv4). Only public data is served.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface MetricsListen {
  host: string;
  port: number;
}

export interface MetricsServer {
  /** The address actually bound (port 0 resolves to the kernel's choice). */
  address: MetricsListen;
  /** `http://host:port/metrics`, with IPv6 hosts in brackets. */
  url: string;
  close(): Promise<void>;
}

export function formatListen(l: MetricsListen): string {
  const host = l.host === '' ? '' : l.host.includes(':') ? `[${l.host}]` : l.host;
  return `${host}:${l.port}`;
}

function reply(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8', head = false): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(head ? undefined : body);
}

/** Binds the listener; rejects with a message naming the address when it cannot (in use, not local, …). */
export async function startMetricsServer(listen: MetricsListen, registry: Registry): Promise<MetricsServer> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      res.setHeader('allow', 'GET, HEAD');
      reply(res, 405, 'method not allowed\n');
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => reply(res, 200, text, registry.contentType, head),
        (err: unknown) => reply(res, 500, `collecting metrics failed: ${err instanceof Error ? err.message : String(err)}\n`),
      );
      return;
    }
    if (path === '/healthz') return reply(res, 200, 'ok\n', undefined, head);
    if (path === '/') return reply(res, 200, 'kubespand: metrics at /metrics, liveness at /healthz\n', undefined, head);
    reply(res, 404, 'not found: try /metrics\n', undefined, head);
  });
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? 'the address is in use' : err.code === 'EADDRNOTAVAIL' ? 'the address is not on this host' : err.message;
      reject(new Error(`kubespand.metricsListen ${formatListen(listen)}: cannot listen: ${why}`));
    });
    server.listen({ host: listen.host === '' ? undefined : listen.host, port: listen.port }, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  const address = { host: listen.host, port: bound.port };
  const urlHost = listen.host === '' ? 'localhost' : listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  return {
    address,
    url: `http://${urlHost}:${bound.port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
