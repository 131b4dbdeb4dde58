import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import {
  DiscoveryError,
  DiscoveryState,
  RateLimiter,
  SubscriberQueue,
  decodeStateFile,
  encodeStateFile,
  clientIp,
  peerIp,
  versionLabel,
  type Notification,
} from '../../../src/discovery-server/index.js';
import { Metadata } from '@grpc/grpc-js';

const MIN = 60_000;
const b = (...xs: number[]) => Uint8Array.from(xs);

function setup() {
  let now = 1_000_000;
  const clock = { now: () => now, advance: (ms: number) => (now += ms) };
  const state = new DiscoveryState({ now: clock.now });
  const seen: Notification[] = [];
  return { state, clock, seen, sink: (n: Notification) => seen.push(n) };
}

function codeOf(fn: () => void): number | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DiscoveryError);
    return (err as DiscoveryError).code;
  }
  return undefined;
}

describe('DiscoveryState limits (§1.8) with gRPC status codes', () => {
  const base = { clusterId: 'c', affiliateId: 'a', affiliateEndpoints: [] as Uint8Array[], ttlMs: MIN };
  it.each([
    ['cluster_id empty', { clusterId: '' }, status.INVALID_ARGUMENT],
    ['cluster_id 257 bytes', { clusterId: 'x'.repeat(257) }, status.INVALID_ARGUMENT],
    ['affiliate_id empty', { affiliateId: '' }, status.INVALID_ARGUMENT],
    ['affiliate_id 257 bytes (multi-byte chars count as bytes)', { affiliateId: 'é'.repeat(129) }, status.INVALID_ARGUMENT],
    ['data 2049 bytes', { affiliateData: new Uint8Array(2049) }, status.INVALID_ARGUMENT],
    ['endpoint 33 bytes', { affiliateEndpoints: [new Uint8Array(33)] }, status.INVALID_ARGUMENT],
    ['ttl 30m1s', { ttlMs: 30 * MIN + 1000 }, status.INVALID_ARGUMENT],
    ['ttl negative', { ttlMs: -1000 }, status.INVALID_ARGUMENT],
  ])('%s → InvalidArgument', (_name, patch, code) => {
    const { state } = setup();
    expect(codeOf(() => state.update({ ...base, ...patch }))).toBe(code);
    expect(state.stats().affiliates).toBe(0);
  });
  it('accepts the maxima: 256-byte ids, 2048-byte data, 32-byte endpoints, 30 min TTL, no TTL', () => {
    const { state } = setup();
    state.update({
      clusterId: 'c'.repeat(256),
      affiliateId: 'a'.repeat(256),
      affiliateData: new Uint8Array(2048),
      affiliateEndpoints: [new Uint8Array(32)],
      ttlMs: 30 * MIN,
    });
    state.update({ clusterId: 'c', affiliateId: 'no-ttl', affiliateEndpoints: [] });
    expect(state.stats().affiliates).toBe(2);
  });
  it('1024 affiliates per cluster → ResourceExhausted for a new id only', () => {
    const { state } = setup();
    for (let i = 0; i < 1024; i++) state.update({ ...base, affiliateId: `n${i}`, affiliateData: b(1) });
    expect(codeOf(() => state.update({ ...base, affiliateId: 'one-more', affiliateData: b(1) }))).toBe(status.RESOURCE_EXHAUSTED);
    // existing ids still update; other clusters are independent
    expect(codeOf(() => state.update({ ...base, affiliateId: 'n5', affiliateData: b(2) }))).toBeUndefined();
    expect(codeOf(() => state.update({ ...base, clusterId: 'other', affiliateData: b(2) }))).toBeUndefined();
  });
  it('64 accumulated endpoints per affiliate → ResourceExhausted, and the update is not applied', () => {
    const { state } = setup();
    const eps = Array.from({ length: 60 }, (_, i) => b(i));
    state.update({ ...base, affiliateData: b(1), affiliateEndpoints: eps });
    // resending known endpoints is fine
    state.update({ ...base, affiliateEndpoints: eps.slice(0, 10) });
    state.update({ ...base, affiliateEndpoints: [b(100), b(101), b(102), b(103)] });
    expect(state.list('c')[0]!.endpoints).toHaveLength(64);
    expect(codeOf(() => state.update({ ...base, affiliateData: b(9), affiliateEndpoints: [b(200)] }))).toBe(
      status.RESOURCE_EXHAUSTED,
    );
    expect(state.list('c')[0]!.data).toEqual(b(1));
  });
  it('List and Watch validate the cluster id', () => {
    const { state, sink } = setup();
    expect(codeOf(() => state.list(''))).toBe(status.INVALID_ARGUMENT);
    expect(codeOf(() => state.subscribe('x'.repeat(300), sink))).toBe(status.INVALID_ARGUMENT);
    expect(codeOf(() => state.delete('c', ''))).toBe(status.INVALID_ARGUMENT);
  });
});

describe('DiscoveryState update semantics and notifications', () => {
  it('snapshot then deltas; data always notifies, new endpoints notify, pure TTL extension does not', () => {
    const { state, seen, sink } = setup();
    state.update({ clusterId: 'c', affiliateId: 'a', affiliateData: b(1), affiliateEndpoints: [b(7)], ttlMs: MIN });
    const { snapshot } = state.subscribe('c', sink);
    expect(snapshot).toEqual([{ id: 'a', data: b(1), endpoints: [b(7)] }]);
    state.update({ clusterId: 'c', affiliateId: 'a', affiliateData: b(1), affiliateEndpoints: [], ttlMs: MIN }); // identical data: notifies
    state.update({ clusterId: 'c', affiliateId: 'a', affiliateEndpoints: [b(7)], ttlMs: 2 * MIN }); // ttl only: silent
    state.update({ clusterId: 'c', affiliateId: 'a', affiliateEndpoints: [b(8)], ttlMs: MIN }); // new endpoint
    state.update({ clusterId: 'c', affiliateId: 'z', affiliateEndpoints: [b(9)], ttlMs: MIN }); // endpoints-only create
    state.delete('c', 'a');
    state.delete('c', 'unknown');
    expect(seen).toEqual([
      { kind: 'update', affiliate: { id: 'a', data: b(1), endpoints: [b(7)] } },
      { kind: 'update', affiliate: { id: 'a', data: b(1), endpoints: [b(7), b(8)] } },
      { kind: 'update', affiliate: { id: 'z', data: new Uint8Array(0), endpoints: [b(9)] } },
      { kind: 'deleted', id: 'a' },
    ]);
  });
  it('expiry: data sets it exactly, endpoints-only updates raise it, endpoints expire on their own', () => {
    const { state, clock, seen, sink } = setup();
    state.subscribe('c', sink);
    state.update({ clusterId: 'c', affiliateId: 'a', affiliateData: b(1), affiliateEndpoints: [b(1)], ttlMs: 10 * MIN });
    // a shorter data update shortens the affiliate (exactly now+ttl) but never the endpoint
    state.update({ clusterId: 'c', affiliateId: 'a', affiliateData: b(2), affiliateEndpoints: [], ttlMs: 2 * MIN });
    // another node's endpoints-only update keeps it alive to 5 min
    state.update({ clusterId: 'c', affiliateId: 'a', affiliateEndpoints: [b(2)], ttlMs: 5 * MIN });
    seen.length = 0;
    clock.advance(4 * MIN);
    state.gc();
    expect(state.list('c')).toHaveLength(1);
    clock.advance(2 * MIN); // t = 6 min: affiliate expired at 5 min
    expect(state.gc()).toMatchObject({ expiredAffiliates: 1 });
    expect(seen).toEqual([{ kind: 'deleted', id: 'a' }]);
  });
  it('partly expired endpoints: watchers get the updated affiliate (not the upstream delete quirk)', () => {
    const { state, clock, seen, sink } = setup();
    state.update({ clusterId: 'c', affiliateId: 'a', affiliateData: b(1), affiliateEndpoints: [b(1)], ttlMs: MIN });
    state.update({ clusterId: 'c', affiliateId: 'a', affiliateData: b(1), affiliateEndpoints: [b(2)], ttlMs: 10 * MIN });
    state.subscribe('c', sink);
    clock.advance(2 * MIN);
    expect(state.gc()).toEqual({ expiredAffiliates: 0, expiredEndpoints: 1, removedClusters: 0 });
    expect(seen).toEqual([{ kind: 'update', affiliate: { id: 'a', data: b(1), endpoints: [b(2)] } }]);
  });
  it('missing TTL expires at the next GC; empty clusters without watchers are dropped', () => {
    const { state, clock, sink } = setup();
    state.update({ clusterId: 'c', affiliateId: 'a', affiliateData: b(1), affiliateEndpoints: [] });
    const sub = state.subscribe('watched', sink);
    clock.advance(1);
    expect(state.gc()).toEqual({ expiredAffiliates: 1, expiredEndpoints: 0, removedClusters: 1 });
    expect(state.stats().clusters).toBe(1);
    sub.unsubscribe();
    state.gc();
    expect(state.stats()).toEqual({ clusters: 0, affiliates: 0, endpoints: 0, subscribers: 0 });
  });
  it('stored blobs are copies: mutating the request buffer later changes nothing', () => {
    const { state } = setup();
    const data = b(1, 2, 3);
    state.update({ clusterId: 'c', affiliateId: 'a', affiliateData: data, affiliateEndpoints: [], ttlMs: MIN });
    data[0] = 99;
    expect(state.list('c')[0]!.data).toEqual(b(1, 2, 3));
  });
});

describe('state file', () => {
  it('round-trips through the protobuf snapshot with remaining TTLs, minus downtime', () => {
    const { state, clock } = setup();
    state.update({ clusterId: 'c', affiliateId: 'a', affiliateData: b(1), affiliateEndpoints: [b(5)], ttlMs: 10 * MIN });
    state.update({ clusterId: 'c', affiliateId: 'short', affiliateData: b(2), affiliateEndpoints: [], ttlMs: MIN });
    state.update({ clusterId: 'd', affiliateId: 'x', affiliateData: b(3), affiliateEndpoints: [], ttlMs: 5 * MIN });
    clock.advance(30_000);
    const file = encodeStateFile(state.export(), 1_700_000_000_000);
    const content = decodeStateFile(file);
    expect(content.takenAtMs).toBe(1_700_000_000_000);
    const fresh = setup();
    // down for two minutes: 'short' (30 s left) is gone, the others keep their remainder
    expect(fresh.state.import(content.state, 2 * MIN)).toEqual({ affiliates: 2, skipped: 1 });
    expect(fresh.state.list('c').map((a) => a.id)).toEqual(['a']);
    expect(fresh.state.list('c')[0]!.endpoints).toEqual([b(5)]);
    fresh.clock.advance(7 * MIN); // 10 - 0.5 - 2 = 7.5 min left
    fresh.state.gc();
    expect(fresh.state.list('c')).toHaveLength(1);
    fresh.clock.advance(MIN);
    fresh.state.gc();
    expect(fresh.state.list('c')).toHaveLength(0);
  });
  it('a corrupt file is refused with an error', () => {
    expect(() => decodeStateFile(b(0xff, 0xff, 0xff))).toThrow();
  });
});

describe('RateLimiter (15/s, burst 60)', () => {
  it('allows the burst, then delays, then refuses past the deadline', () => {
    let now = 0;
    const rl = new RateLimiter({ perSecond: 15, burst: 60, now: () => now });
    for (let i = 0; i < 60; i++) expect(rl.take('1.2.3.4', 0)).toEqual({ ok: true, delayMs: 0 });
    // 61st: due in 1/15 s
    expect(rl.take('1.2.3.4', 0)).toEqual({ ok: false, delayMs: 67 });
    expect(rl.take('1.2.3.4', 100)).toEqual({ ok: true, delayMs: 67 });
    expect(rl.take('1.2.3.4', 100)).toEqual({ ok: false, delayMs: 134 });
    // other IPs have their own bucket
    expect(rl.take('5.6.7.8', 0).ok).toBe(true);
    now += 10_000;
    expect(rl.take('1.2.3.4', 0)).toEqual({ ok: true, delayMs: 0 });
    expect(rl.prune()).toBe(1); // 5.6.7.8 is full again
  });
});

describe('SubscriberQueue (bounded buffer)', () => {
  it('passes through while the stream accepts, buffers up to capacity while blocked, then overflows once', () => {
    const written: number[] = [];
    let accept = true;
    let overflows = 0;
    const q = new SubscriberQueue<number>(3, (n) => (written.push(n), accept), () => overflows++);
    q.push(1);
    accept = false;
    q.push(2); // written, stream now backed up
    q.push(3);
    q.push(4);
    q.push(5);
    expect(written).toEqual([1, 2]);
    expect(q.length).toBe(3);
    accept = true;
    q.drained();
    expect(written).toEqual([1, 2, 3, 4, 5]);
    accept = false;
    q.push(6);
    for (let i = 7; i <= 10; i++) q.push(i);
    expect(overflows).toBe(1);
    expect(q.closed).toBe(true);
    q.push(11);
    q.drained();
    expect(written).toEqual([1, 2, 3, 4, 5, 6]);
  });
});

describe('client IP', () => {
  it('peer forms from grpc-js getPeer', () => {
    expect(peerIp('127.0.0.1:5000')).toBe('127.0.0.1');
    expect(peerIp('::1:5000')).toBe('::1');
    expect(peerIp('::ffff:10.0.0.1:5000')).toBe('10.0.0.1');
    expect(peerIp('[2001:db8::1]:443')).toBe('2001:db8::1');
    expect(peerIp('unknown')).toBeUndefined();
  });
  it('forwarded headers only when trusted: X-Real-IP, then first X-Forwarded-For', () => {
    const md = new Metadata();
    md.set('x-forwarded-for', '203.0.113.5, 10.0.0.1');
    expect(clientIp('127.0.0.1:1', md, false)).toBe('127.0.0.1');
    expect(clientIp('127.0.0.1:1', md, true)).toBe('203.0.113.5');
    md.set('x-real-ip', '198.51.100.1');
    expect(clientIp('127.0.0.1:1', md, true)).toBe('198.51.100.1');
    md.set('x-real-ip', 'garbage');
    expect(clientIp('127.0.0.1:1', md, true)).toBe('203.0.113.5');
  });
  it('version labels are bounded', () => {
    expect(versionLabel('v1.11.3')).toBe('v1.11');
    expect(versionLabel('v1.12.0-alpha.1')).toBe('v1.12');
    expect(versionLabel('kubespand')).toBe('unknown');
  });
});
