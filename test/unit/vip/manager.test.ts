/**
 * The VIP election on the in-memory etcd twin: one owner at a time (checked on every address change
 * across all nodes), clean handover on stop, takeover after a crashed owner's lease expires, nobody
 * owns while etcd is down, the owner comes back with etcd, and the address is never added before
 * etcd has answered.
 */
import { afterEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { MemoryElectionStore, VipManager, campaignKey, type VipAddress } from '../../../src/vip/index.js';

const log = pino({ level: 'silent' });
const TTL = 0.6; // seconds: keep-alive every 200 ms, release after 400 ms without one
const KEY = campaignKey('10.5.0.100');

/** The segment: which nodes carry the VIP now, and a history of violations. */
class Segment {
  readonly holders = new Set<string>();
  readonly violations: string[] = [];
  readonly log: string[] = [];
  address(node: string, opts: { failAdd?: boolean } = {}): VipAddress & { adds: number } {
    const seg = this;
    return {
      adds: 0,
      async add() {
        if (opts.failAdd) throw new Error('link is gone');
        this.adds++;
        if (seg.holders.size > 0 && !seg.holders.has(node)) seg.violations.push(`${node} added while ${[...seg.holders].join(',')} held it`);
        seg.holders.add(node);
        seg.log.push(`+${node}`);
      },
      async remove() {
        if (seg.holders.delete(node)) seg.log.push(`-${node}`);
      },
      async present() {
        return seg.holders.has(node);
      },
    };
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms = 5_000): Promise<number> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('condition not met in time');
    await sleep(10);
  }
  return Date.now() - t0;
}

let store: MemoryElectionStore;
const managers: VipManager[] = [];
afterEach(async () => {
  for (const m of managers.splice(0)) await m.stop();
  store?.dispose();
});

function node(name: string, seg: Segment, opts: { failAdd?: boolean } = {}): VipManager {
  const m = new VipManager({ ip: '10.5.0.100', link: 'eth0', self: name, leaseTtlSec: TTL, store, address: seg.address(name, opts), log });
  managers.push(m);
  return m;
}

describe('VipManager on the in-memory etcd', () => {
  it('elects exactly one owner; the others follow and name it', async () => {
    store = new MemoryElectionStore();
    const seg = new Segment();
    const [a, b, c] = [node('a', seg), node('b', seg), node('c', seg)];
    await a.start();
    await until(() => a.state.state === 'owner');
    await b.start();
    await c.start();
    await until(() => b.state.state === 'follower' && c.state.state === 'follower');
    await sleep(TTL * 2000); // several keep-alive rounds
    expect([...seg.holders]).toEqual(['a']);
    expect(b.state).toMatchObject({ state: 'follower', owner: 'a', self: 'b' });
    expect(a.state).toMatchObject({ state: 'owner', owner: 'a', acquisitions: 1 });
    expect(store.holder(KEY)).toBe('a');
    expect(seg.violations).toEqual([]);
  });

  it('a clean stop hands over at once (lease revoked, watchers woken), the address first removed', async () => {
    store = new MemoryElectionStore();
    const seg = new Segment();
    const a = node('a', seg);
    const b = node('b', seg);
    await a.start();
    await until(() => a.state.state === 'owner');
    await b.start();
    await until(() => b.state.state === 'follower');
    const t0 = Date.now();
    await a.stop();
    expect(a.state.state).toBe('stopped');
    await until(() => b.state.state === 'owner');
    const handover = Date.now() - t0;
    expect(handover).toBeLessThan(TTL * 1000); // far less than a lease expiry
    expect(seg.log).toEqual(['+a', '-a', '+b']);
    expect(seg.violations).toEqual([]);
  });

  it('a crashed owner (no revoke, address gone with the node) is replaced after its lease expires', async () => {
    store = new MemoryElectionStore();
    const seg = new Segment();
    const crashStore = store;
    // "a" talks to etcd through a store we can cut off alone, as if the node vanished
    let aAlive = true;
    const aStore = new Proxy(crashStore, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          if (!aAlive && prop !== 'close' && prop !== 'dispose') return Promise.reject(new Error('node a is dead'));
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const a = new VipManager({ ip: '10.5.0.100', link: 'eth0', self: 'a', leaseTtlSec: TTL, store: aStore, address: seg.address('a'), log });
    managers.push(a);
    const b = node('b', seg);
    await a.start();
    await until(() => a.state.state === 'owner');
    await b.start();
    await until(() => b.state.state === 'follower');
    aAlive = false;
    seg.holders.delete('a'); // the node and its link are gone
    const takeover = await until(() => b.state.state === 'owner');
    // the lease outlives the last keep-alive by TTL: not before ~TTL/3, not much after TTL + a watch round
    expect(takeover).toBeGreaterThan(100);
    expect(takeover).toBeLessThan(TTL * 1000 + 500);
    expect(seg.violations).toEqual([]);
  });

  it('nobody owns while etcd is down; the owner releases within 2/3 TTL and comes back with etcd', async () => {
    store = new MemoryElectionStore();
    const seg = new Segment();
    const a = node('a', seg);
    const b = node('b', seg);
    await a.start();
    await until(() => a.state.state === 'owner');
    await b.start();
    await until(() => b.state.state === 'follower');
    store.setAvailable(false);
    const released = await until(() => seg.holders.size === 0);
    expect(released).toBeLessThan(TTL * 1000); // before the lease could expire and someone else win
    expect(a.state).toMatchObject({ state: 'etcd-unreachable', owner: undefined });
    await until(() => b.state.state === 'etcd-unreachable');
    await sleep(TTL * 1500);
    expect(seg.holders.size).toBe(0);
    expect(seg.violations).toEqual([]);
    store.setAvailable(true);
    await until(() => seg.holders.size === 1);
    await sleep(TTL * 1000);
    expect(seg.holders.size).toBe(1);
    expect(seg.violations).toEqual([]);
  });

  it('never adds the address before etcd answers, and removes a leftover address at start', async () => {
    store = new MemoryElectionStore();
    store.setAvailable(false);
    const seg = new Segment();
    seg.holders.add('a'); // left by a crashed earlier run
    const a = node('a', seg);
    await a.start();
    expect(seg.holders.size).toBe(0);
    await sleep(TTL * 1500);
    expect(a.state.state).toBe('waiting-for-etcd');
    expect(a.state.lastError).toMatch(/unreachable/);
    expect(seg.holders.size).toBe(0);
    store.setAvailable(true);
    await until(() => a.state.state === 'owner');
    expect([...seg.holders]).toEqual(['a']);
  });

  it('a node that cannot add the address gives the key up so another takes it', async () => {
    store = new MemoryElectionStore();
    const seg = new Segment();
    const bad = node('bad', seg, { failAdd: true });
    await bad.start();
    await until(() => bad.state.state === 'follower' && bad.state.lastError === 'link is gone');
    const good = node('good', seg);
    await good.start();
    await until(() => good.state.state === 'owner');
    expect(store.holder(KEY)).toBe('good');
  });

  it('random stop/start churn never yields two holders', async () => {
    store = new MemoryElectionStore();
    const seg = new Segment();
    const names = ['a', 'b', 'c'];
    const live = new Map<string, VipManager>();
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 30; i++) {
      const n = names[Math.floor(rnd() * names.length)]!;
      const m = live.get(n);
      if (m) {
        await m.stop();
        live.delete(n);
      } else {
        const fresh = node(n, seg);
        live.set(n, fresh);
        await fresh.start();
      }
      await sleep(rnd() * 150);
      expect(seg.holders.size).toBeLessThanOrEqual(1);
    }
    if (live.size > 0) await until(() => seg.holders.size === 1);
    expect(seg.violations).toEqual([]);
  });
});
