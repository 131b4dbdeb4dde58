import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DiscoveryClient } from '../../../src/discovery-client/index.js';
import type { DiscoveryServer } from '../../../src/discovery-server/index.js';
import { cleanup, eventually, localAffiliate, startServer, testClient } from './support.js';

const stoppable: Array<{ stop(): Promise<void> } | undefined> = [];
const dirs: string[] = [];
afterEach(async () => {
  await cleanup(...stoppable.splice(0));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function track<T extends { stop(): Promise<void> }>(t: T): T {
  stoppable.push(t);
  return t;
}

async function pair(server: DiscoveryServer, extra = {}): Promise<[DiscoveryClient, DiscoveryClient]> {
  const a = track(testClient(server.port(), 'node-a', extra));
  const b = track(testClient(server.port(), 'node-b', extra));
  a.setLocalAffiliate(localAffiliate('node-a'));
  a.setLocalEndpoints([{ address: '192.0.2.1', port: 51820 }]);
  b.setLocalAffiliate(localAffiliate('node-b'));
  b.setLocalEndpoints([{ address: '2001:db8::b', port: 51820 }]);
  a.start();
  b.start();
  await eventually(() => {
    expect(a.affiliates().map((x) => x.nodeId)).toEqual(['node-b']);
    expect(b.affiliates().map((x) => x.nodeId)).toEqual(['node-a']);
    expect(a.counters().updatesSent).toBe(1);
    expect(b.counters().updatesSent).toBe(1);
  });
  return [a, b];
}

describe('discovery client ↔ server over plaintext gRPC', () => {
  it('two clients see each other, decrypted, never themselves; publicIp comes from Hello', async () => {
    const server = track(await startServer());
    const [a, b] = await pair(server);
    const seenByA = a.affiliates()[0]!;
    expect(seenByA.hostname).toBe('node-b.example');
    expect(seenByA.endpoints).toEqual([{ address: '2001:db8::b', port: 51820 }]);
    expect(seenByA.kubespan?.publicKey).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(b.affiliates()[0]!.endpoints).toEqual([{ address: '192.0.2.1', port: 51820 }]);
    expect(a.publicIp()).toBe('127.0.0.1');
    expect(a.state()).toBe('connected');
    // the server holds only ciphertext
    const stored = server.state.list('cluster-1');
    expect(stored).toHaveLength(2);
    for (const s of stored) expect(Buffer.from(s.data).includes(Buffer.from('node-'))).toBe(false);
  });

  it('delivers deltas and fires onChange; an unchanged record is not re-sent', async () => {
    const server = track(await startServer());
    const [a, b] = await pair(server);
    let changes = 0;
    a.onChange(() => changes++);
    const sentBefore = b.counters().updatesSent;
    b.setLocalAffiliate({ ...localAffiliate('node-b'), hostname: 'renamed.example', kubespan: a.affiliates()[0]!.kubespan });
    await eventually(() => expect(a.affiliates()[0]!.hostname).toBe('renamed.example'));
    expect(changes).toBeGreaterThan(0);
    await eventually(() => expect(b.counters().updatesSent).toBe(sentBefore + 1));
    // same record again: nothing sent
    b.setLocalAffiliate({ ...localAffiliate('node-b'), hostname: 'renamed.example', kubespan: a.affiliates()[0]!.kubespan });
    b.setLocalEndpoints([{ address: '2001:db8::b', port: 51820 }]);
    await new Promise((r) => setTimeout(r, 100));
    expect(b.counters().updatesSent).toBe(sentBefore + 1);
    // new endpoint: sent, merged with the old one on the server (merge, never replace)
    b.setLocalEndpoints([{ address: '198.51.100.7', port: 51820 }]);
    await eventually(() =>
      expect(a.affiliates()[0]!.endpoints).toEqual([
        { address: '2001:db8::b', port: 51820 },
        { address: '198.51.100.7', port: 51820 },
      ]),
    );
  });

  it('leave() deletes at once and the other side drops the affiliate', async () => {
    const server = track(await startServer());
    const [a, b] = await pair(server);
    await b.leave();
    await eventually(() => expect(a.affiliates()).toEqual([]));
    expect(server.state.list('cluster-1').map((x) => x.id)).toEqual(['node-a']);
    // the next refresh of the leaving client only deletes again; it never re-publishes
    await new Promise((r) => setTimeout(r, 100));
    expect(server.state.list('cluster-1').map((x) => x.id)).toEqual(['node-a']);
  });

  it('TTL expiry: a node that stops refreshing disappears after its TTL', async () => {
    const server = track(await startServer({ gcIntervalMs: 50 }));
    const [a, b] = await pair(server, { ttlMs: 400, refreshIntervalMs: 150 });
    // while both refresh, they stay (several TTLs long)
    await new Promise((r) => setTimeout(r, 1000));
    expect(a.affiliates().map((x) => x.nodeId)).toEqual(['node-b']);
    await b.stop();
    await eventually(() => expect(a.affiliates()).toEqual([]), 3000);
    expect(server.state.stats().affiliates).toBe(1);
  });

  it('periodic refresh re-sends every refresh interval', async () => {
    const server = track(await startServer());
    const a = track(testClient(server.port(), 'node-a', { refreshIntervalMs: 100 }));
    a.setLocalAffiliate(localAffiliate('node-a'));
    a.start();
    await eventually(() => expect(a.counters().updatesSent).toBeGreaterThanOrEqual(4), 3000);
  });

  it('harvested endpoints are sent as endpoints-only updates for the other affiliate', async () => {
    const server = track(await startServer());
    const [a, b] = await pair(server);
    a.setHarvestedEndpoints(new Map([['node-b', [{ address: '203.0.113.9', port: 40000 }]], ['node-a', [{ address: '1.1.1.1', port: 1 }]]]));
    await eventually(() =>
      expect(b.affiliates().length === 1 && a.affiliates()[0]!.endpoints).toEqual([
        { address: '2001:db8::b', port: 51820 },
        { address: '203.0.113.9', port: 40000 },
      ]),
    );
    // node-b's data was not touched by the endpoints-only update
    expect(a.affiliates()[0]!.hostname).toBe('node-b.example');
  });

  it('follows a redirect from Hello to another server', async () => {
    const target = track(await startServer());
    const redirector = track(await startServer({ redirectEndpoint: `127.0.0.1:${target.port()}` }));
    const a = track(testClient(redirector.port(), 'node-a'));
    a.setLocalAffiliate(localAffiliate('node-a'));
    a.start();
    await eventually(() => expect(target.state.list('cluster-1').map((x) => x.id)).toEqual(['node-a']));
    expect(redirector.state.stats().affiliates).toBe(0);
    expect(a.counters().redirects).toBe(1);
    expect(a.target()).toBe(`127.0.0.1:${target.port()}`);
  });

  it('reconnects after the server was down and republishes', async () => {
    let server = track(await startServer());
    const port = server.port();
    const [a, b] = await pair(server);
    await server.stop();
    await eventually(() => expect(a.state()).not.toBe('connected'));
    // the last view is kept while the service is away (existing tunnels keep working)
    expect(a.affiliates().map((x) => x.nodeId)).toEqual(['node-b']);
    await new Promise((r) => setTimeout(r, 300));
    server = track(await startServer({ listen: `127.0.0.1:${port}` }));
    await eventually(() => {
      expect(server.state.list('cluster-1').map((x) => x.id).sort()).toEqual(['node-a', 'node-b']);
      expect(a.state()).toBe('connected');
      expect(b.affiliates().map((x) => x.nodeId)).toEqual(['node-a']);
    }, 10_000);
    expect(a.counters().watchErrors + a.counters().helloErrors).toBeGreaterThan(0);
  });

  it('restart with a state file loses no cluster', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ksd-state-'));
    dirs.push(dir);
    const stateFile = join(dir, 'state.binpb');
    let server = track(await startServer({ stateFile }));
    const port = server.port();
    const [a, b] = await pair(server);
    await a.stop();
    await b.stop();
    const before = server.state.list('cluster-1');
    await server.stop();
    expect(statSync(stateFile).mode & 0o777).toBe(0o600);
    server = track(await startServer({ stateFile, listen: `127.0.0.1:${port}` }));
    const after = server.state.list('cluster-1');
    expect(after.map((x) => x.id).sort()).toEqual(['node-a', 'node-b']);
    expect(after.map((x) => Buffer.from(x.data).toString('hex')).sort()).toEqual(
      before.map((x) => Buffer.from(x.data).toString('hex')).sort(),
    );
    // a fresh watcher (no publishing of its own) sees both, decrypted
    const c = track(testClient(port, 'node-c'));
    c.start();
    await eventually(() => expect(c.affiliates().map((x) => x.nodeId)).toEqual(['node-a', 'node-b']));
  });
});

describe('watch snapshots encoded once per cluster version', () => {
  it('a watcher that subscribes after a change gets the new snapshot, not a cached old one', async () => {
    const server = track(await startServer({ rateLimit: false }));
    const names = async () => {
      const c = track(testClient(server.port(), `w-${Math.random()}`));
      c.start();
      await eventually(() => expect(c.state()).toBe('connected'));
      const ids = c.affiliates().map((x) => x.nodeId);
      await c.stop();
      return ids;
    };
    const a = track(testClient(server.port(), 'node-a'));
    a.setLocalAffiliate(localAffiliate('node-a'));
    a.start();
    await eventually(() => expect(server.state.stats().affiliates).toBe(1));
    expect(await names()).toEqual(['node-a']);
    expect(await names()).toEqual(['node-a']);
    const b = track(testClient(server.port(), 'node-b'));
    b.setLocalAffiliate(localAffiliate('node-b'));
    b.start();
    await eventually(() => expect(server.state.stats().affiliates).toBe(2));
    expect(await names()).toEqual(['node-a', 'node-b']);
    await a.leave();
    expect(await names()).toEqual(['node-b']);
  });
});
