/** Helpers shared by the discovery tests (loopback only, random ports). */
import { randomBytes } from 'node:crypto';
import { DiscoveryClient, type DiscoveryClientOptions } from '../../../src/discovery-client/index.js';
import { DiscoveryServer, type DiscoveryServerOptions } from '../../../src/discovery-server/index.js';
import type { LocalAffiliate } from '../../../src/discovery/index.js';

export const SECRET = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';
export const OTHER_SECRET = Buffer.alloc(32, 9).toString('base64');

/** Polls `check` until it returns without throwing (or times out with its last error). */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 5000, stepMs = 20): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw last;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

export function wgKey(): string {
  return randomBytes(32).toString('base64');
}

export function localAffiliate(nodeId: string, extra: Partial<LocalAffiliate> = {}): LocalAffiliate {
  return {
    nodeId,
    addresses: ['192.168.50.' + (nodeId.length % 200), 'fd7f:175a:b97c:5602::' + (nodeId.length % 100).toString(16)],
    hostname: `${nodeId}.example`,
    nodename: nodeId,
    machineType: 'worker',
    operatingSystem: 'kubespand (v0.1.0)',
    kubespan: {
      publicKey: wgKey(),
      address: 'fd7f:175a:b97c:5602::1',
      additionalAddresses: [],
      excludeAdvertisedAddresses: [],
    },
    ...extra,
  };
}

/** Fast client settings for tests: tiny back-off, plaintext loopback unless overridden. */
export function testClient(
  port: number,
  affiliateId: string,
  extra: Partial<DiscoveryClientOptions> = {},
): DiscoveryClient {
  return new DiscoveryClient({
    endpoint: `http://127.0.0.1:${port}`,
    clusterId: 'cluster-1',
    clusterSecret: SECRET,
    affiliateId,
    backoff: { initialIntervalMs: 20, maxIntervalMs: 200 },
    env: {},
    ...extra,
  });
}

export async function startServer(extra: Partial<DiscoveryServerOptions> = {}): Promise<DiscoveryServer> {
  const server = new DiscoveryServer({ listen: '127.0.0.1:0', gcIntervalMs: 100, ...extra });
  await server.start();
  return server;
}

/** Stops everything given, ignoring errors (for afterEach/finally). */
export async function cleanup(...things: Array<{ stop(): Promise<void> } | undefined>): Promise<void> {
  await Promise.all(things.map((t) => t?.stop().catch(() => {})));
}
