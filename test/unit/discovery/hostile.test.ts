/**
 * Limits over real gRPC with the right status codes, and hostile input (garbage protobuf, oversized
 * blobs, wrong-key blobs, floods) that must neither crash the server nor the client.
 */
import { randomBytes } from 'node:crypto';
import { Client, Metadata, Server, ServerCredentials, credentials, status, type ServiceError } from '@grpc/grpc-js';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ClusterCipher,
  METHOD_PATHS,
  clusterMethods,
  encodeAffiliate,
  parseClusterSecret,
  type AffiliateUpdateRequest,
  type WatchResponse,
} from '../../../src/discovery/index.js';
import { cleanup, eventually, localAffiliate, OTHER_SECRET, SECRET, startServer, testClient } from './support.js';

const stoppable: Array<{ stop(): Promise<void> } | undefined> = [];
const raw: Client[] = [];
afterEach(async () => {
  for (const c of raw.splice(0)) c.close();
  await cleanup(...stoppable.splice(0));
});
function track<T extends { stop(): Promise<void> }>(t: T): T {
  stoppable.push(t);
  return t;
}
function rawClient(port: number): Client {
  const c = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  raw.push(c);
  return c;
}

const ident = (b: Buffer) => b;

function callRaw(client: Client, path: string, body: Buffer, deadlineMs = 5000): Promise<ServiceError | null> {
  return new Promise((resolve) =>
    client.makeUnaryRequest(path, ident, ident, body, new Metadata(), { deadline: Date.now() + deadlineMs }, (err) =>
      resolve(err ?? null),
    ),
  );
}

function update(client: Client, req: AffiliateUpdateRequest, deadlineMs = 5000): Promise<ServiceError | null> {
  return callRaw(client, METHOD_PATHS.AffiliateUpdate, clusterMethods.AffiliateUpdate.requestSerialize(req), deadlineMs);
}

const base = { clusterId: 'cluster-1', affiliateId: 'x', affiliateEndpoints: [] as Uint8Array[], ttlMs: 60_000 };

describe('server limits over gRPC', () => {
  it('InvalidArgument for garbage protobuf on every method; the server keeps serving', async () => {
    const server = track(await startServer({ rateLimit: false }));
    const c = rawClient(server.port());
    const garbage = Buffer.from('ffffffffffffffffff01', 'hex');
    for (const path of [METHOD_PATHS.Hello, METHOD_PATHS.AffiliateUpdate, METHOD_PATHS.AffiliateDelete, METHOD_PATHS.List]) {
      const err = await callRaw(c, path, garbage);
      expect(err?.code, path).toBe(status.INVALID_ARGUMENT);
      expect(err?.details).toMatch(/malformed request/);
    }
    const watchErr = await new Promise<ServiceError>((resolve) => {
      const call = c.makeServerStreamRequest(METHOD_PATHS.Watch, ident, ident, garbage, new Metadata(), {});
      call.on('error', resolve);
      call.on('data', () => {});
    });
    expect(watchErr.code).toBe(status.INVALID_ARGUMENT);
    expect(await update(c, { ...base, affiliateData: new Uint8Array(10) })).toBeNull();
  });

  it.each([
    ['cluster_id too long', () => ({ clusterId: 'c'.repeat(257) }), status.INVALID_ARGUMENT, /cluster_id/],
    ['empty affiliate_id', () => ({ affiliateId: '' }), status.INVALID_ARGUMENT, /affiliate_id/],
    ['2049-byte data', () => ({ affiliateData: new Uint8Array(2049) }), status.INVALID_ARGUMENT, /affiliate_data/],
    ['33-byte endpoint', () => ({ affiliateEndpoints: [new Uint8Array(33)] }), status.INVALID_ARGUMENT, /affiliate_endpoints\[0\]/],
    ['ttl 31 min', () => ({ ttlMs: 31 * 60_000 }), status.INVALID_ARGUMENT, /ttl/],
  ])('AffiliateUpdate with %s → code %i', async (_n, patch, code, details) => {
    const server = track(await startServer({ rateLimit: false }));
    const err = await update(rawClient(server.port()), { ...base, ...patch() });
    expect(err?.code).toBe(code);
    expect(err?.details).toMatch(details);
  });

  it('Hello, List, Delete, Watch validate the cluster id', async () => {
    const server = track(await startServer({ rateLimit: false }));
    const c = rawClient(server.port());
    const long = 'c'.repeat(257);
    const hello = await callRaw(c, METHOD_PATHS.Hello, clusterMethods.Hello.requestSerialize({ clusterId: long, clientVersion: 'v1' }));
    expect(hello?.code).toBe(status.INVALID_ARGUMENT);
    const list = await callRaw(c, METHOD_PATHS.List, clusterMethods.List.requestSerialize({ clusterId: '' }));
    expect(list?.code).toBe(status.INVALID_ARGUMENT);
    const del = await callRaw(c, METHOD_PATHS.AffiliateDelete, clusterMethods.AffiliateDelete.requestSerialize({ clusterId: long, affiliateId: 'a' }));
    expect(del?.code).toBe(status.INVALID_ARGUMENT);
    const watch = await new Promise<ServiceError>((resolve) => {
      const call = c.makeServerStreamRequest(METHOD_PATHS.Watch, clusterMethods.Watch.requestSerialize, ident, { clusterId: long }, new Metadata(), {});
      call.on('error', resolve);
      call.on('data', () => {});
    });
    expect(watch.code).toBe(status.INVALID_ARGUMENT);
  });

  it('ResourceExhausted: 1025th affiliate, 65th endpoint, request over 1 MiB', async () => {
    const server = track(await startServer({ rateLimit: false }));
    const c = rawClient(server.port());
    const results = await Promise.all(
      Array.from({ length: 1025 }, (_, i) => update(c, { ...base, affiliateId: `n${i}`, affiliateData: new Uint8Array(4) })),
    );
    const refused = results.filter((e) => e !== null);
    expect(refused).toHaveLength(1);
    expect(refused[0]!.code).toBe(status.RESOURCE_EXHAUSTED);
    const eps = Array.from({ length: 64 }, () => randomBytes(16));
    expect(await update(c, { ...base, clusterId: 'c2', affiliateEndpoints: eps })).toBeNull();
    const err = await update(c, { ...base, clusterId: 'c2', affiliateEndpoints: [randomBytes(16)] });
    expect(err?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err?.details).toMatch(/65 endpoints, limit 64/);
    const huge = await update(c, { ...base, clusterId: 'c3', affiliateEndpoints: Array.from({ length: 40_000 }, () => randomBytes(30)) });
    expect(huge?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(await update(c, { ...base, clusterId: 'c3', affiliateData: new Uint8Array(1) })).toBeNull();
  });

  it('per-IP rate limit: the burst passes, over-rate calls are delayed, or refused when the deadline is too short', async () => {
    // token refill frozen: the burst is exactly 60 however slow the machine is
    const server = track(await startServer({ now: () => 1_000_000 }));
    const c = rawClient(server.port());
    const hello = (deadlineMs: number) =>
      callRaw(c, METHOD_PATHS.Hello, clusterMethods.Hello.requestSerialize({ clusterId: 'c', clientVersion: 'v1.0' }), deadlineMs);
    const burst = await Promise.all(Array.from({ length: 60 }, () => hello(5000)));
    expect(burst.every((e) => e === null)).toBe(true);
    const short = await hello(30);
    expect(short?.code).toBe(status.RESOURCE_EXHAUSTED);
    // the 61st token is due in 1/15 s: a call with a 2 s deadline waits for it
    const t0 = Date.now();
    expect(await hello(2000)).toBeNull();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(60);
    const metrics = await server.metrics.registry.getSingleMetricAsString('discovery_server_rate_limited_total');
    expect(metrics).toMatch(/method="Hello"} 1/);
  });
});

describe('watch buffer overflow', () => {
  it('a subscriber that stops reading is cancelled with Aborted "subscription canceled: lost update"', async () => {
    const server = track(await startServer({ rateLimit: false }));
    const c = rawClient(server.port());
    const call = c.makeServerStreamRequest(
      METHOD_PATHS.Watch,
      clusterMethods.Watch.requestSerialize,
      clusterMethods.Watch.responseDeserialize,
      { clusterId: 'cluster-1' },
      new Metadata(),
      {},
    );
    let messages = 0;
    const ended = new Promise<ServiceError>((resolve) => call.on('error', resolve));
    call.on('data', () => messages++);
    await eventually(() => expect(messages).toBe(1));
    call.pause();
    const writer = rawClient(server.port());
    for (let i = 0; i < 400; i++) {
      expect(await update(writer, { ...base, affiliateId: `n${i % 50}`, affiliateData: randomBytes(2000) })).toBeNull();
    }
    call.resume();
    const err = await ended;
    expect(err.code).toBe(status.ABORTED);
    expect(err.details).toBe('subscription canceled: lost update');
    expect(messages).toBeLessThan(401);
    expect(server.state.stats().subscribers).toBe(0);
  });
});

describe('hostile records reaching the client', () => {
  it('wrong-key, garbage and node-id-mismatched records and bad endpoint blobs are skipped; good ones still show; a 10k flood is survived', async () => {
    const server = track(await startServer({ rateLimit: false }));
    const a = track(testClient(server.port(), 'node-a'));
    a.setLocalAffiliate(localAffiliate('node-a'));
    a.start();
    const b = track(testClient(server.port(), 'node-b'));
    b.setLocalAffiliate(localAffiliate('node-b'));
    b.start();
    // a member of another cluster secret publishing into the same cluster id
    const intruder = track(testClient(server.port(), 'node-x', { clusterSecret: OTHER_SECRET }));
    intruder.setLocalAffiliate(localAffiliate('node-x'));
    intruder.start();
    await eventually(() => expect(server.state.stats().affiliates).toBe(3));

    const c = rawClient(server.port());
    const good = new ClusterCipher(parseClusterSecret(SECRET));
    // garbage data, a record whose node_id differs from its id, and a good record with garbage endpoints
    expect(await update(c, { ...base, affiliateId: 'garbage', affiliateData: randomBytes(300) })).toBeNull();
    const spoof = good.sealAffiliateData(encodeAffiliate(localAffiliate('node-b')));
    expect(await update(c, { ...base, affiliateId: 'spoof', affiliateData: spoof })).toBeNull();
    expect(
      await update(c, {
        ...base,
        affiliateId: 'node-b',
        affiliateEndpoints: [randomBytes(16), randomBytes(32), randomBytes(5), good.encryptEndpoint({ address: '192.0.2.55', port: 51820 })],
      }),
    ).toBeNull();
    await eventually(() => {
      expect(a.affiliates().map((x) => x.nodeId)).toEqual(['node-b']);
      expect(a.affiliates()[0]!.endpoints).toContainEqual({ address: '192.0.2.55', port: 51820 });
      expect(a.counters().rejectedAffiliates).toBeGreaterThanOrEqual(3);
      expect(a.counters().rejectedEndpoints).toBeGreaterThanOrEqual(3);
    });

    // flood: 10k creates from one source (250 in flight); the cluster caps at 1024, the rest are refused
    let refused = 0;
    for (let k = 0; k < 10_000; k += 250) {
      const batch = await Promise.all(
        Array.from({ length: 250 }, (_, i) => update(c, { ...base, affiliateId: `flood-${k + i}`, affiliateData: randomBytes(64) }, 30_000)),
      );
      refused += batch.filter((e) => e?.code === status.RESOURCE_EXHAUSTED).length;
    }
    // node-a, node-b, node-x, garbage and spoof were there before
    expect(refused).toBe(10_000 - (1024 - 5));
    expect(server.state.stats().affiliates).toBe(1024);
    await eventually(() => {
      expect(a.state()).toBe('connected');
      expect(a.affiliates().map((x) => x.nodeId)).toEqual(['node-b']);
      expect(b.affiliates().map((x) => x.nodeId)).toEqual(['node-a']);
    }, 10_000);
    // both still publish after the flood (refresh keeps working)
    b.setLocalAffiliate({ ...localAffiliate('node-b'), hostname: 'after-flood' });
    await eventually(() => expect(a.affiliates()[0]!.hostname).toBe('after-flood'));
  }, 90_000);
});

describe('a hostile server cannot crash the client', () => {
  it('garbage Watch bytes and a 10k wrong-key snapshot are skipped; the loop keeps retrying', async () => {
    let mode: 'garbage' | 'flood' = 'garbage';
    let watches = 0;
    const other = new ClusterCipher(parseClusterSecret(OTHER_SECRET));
    const flood: WatchResponse = {
      deleted: false,
      affiliates: Array.from({ length: 10_000 }, (_, i) => ({
        id: `f${i}`,
        data: other.sealAffiliateData(encodeAffiliate(localAffiliate(`f${i}`))),
        endpoints: [randomBytes(16)],
      })),
    };
    const floodBytes = clusterMethods.Watch.responseSerialize(flood);
    const server = new Server();
    server.addService(
      {
        Hello: { ...clusterMethods.Hello, responseSerialize: ident },
        AffiliateUpdate: clusterMethods.AffiliateUpdate,
        AffiliateDelete: clusterMethods.AffiliateDelete,
        List: clusterMethods.List,
        Watch: { ...clusterMethods.Watch, responseSerialize: ident },
      },
      {
        // Hello answers with a 5-byte client_ip, which is no IP address
        Hello: (_call: unknown, cb: (e: null, v: Buffer) => void) => cb(null, Buffer.from('12050a03000102', 'hex')),
        AffiliateUpdate: (_c: unknown, cb: (e: null, v: object) => void) => cb(null, {}),
        AffiliateDelete: (_c: unknown, cb: (e: null, v: object) => void) => cb(null, {}),
        List: (_c: unknown, cb: (e: null, v: object) => void) => cb(null, { affiliates: [] }),
        Watch: (call: { write(b: Buffer): void; end(): void }) => {
          watches++;
          if (mode === 'garbage') {
            call.write(Buffer.from('ffffffffffff', 'hex'));
            call.end();
          } else {
            call.write(floodBytes);
          }
        },
      },
    );
    const port = await new Promise<number>((res, rej) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
    );
    try {
      const lines: string[] = [];
      const logger = pino({ level: 'debug' }, new Writable({ write: (chunk, _e, cb) => (lines.push(String(chunk)), cb()) }));
      const a = track(testClient(port, 'node-a', { logger }));
      a.setLocalAffiliate(localAffiliate('node-a'));
      a.start();
      await eventually(() => expect(watches).toBeGreaterThanOrEqual(3));
      expect(a.counters().watchErrors).toBeGreaterThanOrEqual(2);
      expect(a.publicIp()).toBeUndefined();
      mode = 'flood';
      await eventually(() => expect(a.counters().rejectedAffiliates).toBeGreaterThanOrEqual(10_000), 20_000);
      expect(a.affiliates()).toEqual([]);
      expect(a.state()).toBe('connected');
      // 10k bad records are summarised in the log, not logged one by one; no secret ever appears
      const text = lines.join('');
      expect(text.split('"skipping affiliate record"').length - 1).toBeLessThanOrEqual(5 * watches);
      expect(text).toMatch(/"skipped":9995,"msg":"skipping more affiliate records/);
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(OTHER_SECRET);
    } finally {
      server.forceShutdown();
    }
  }, 60_000);
});

describe('Hello client_ip', () => {
  it('peer address by default; X-Real-IP / X-Forwarded-For only with trustForwardedHeaders; none when reporting is off', async () => {
    const plain = track(await startServer({ rateLimit: false }));
    const trusting = track(await startServer({ rateLimit: false, trustForwardedHeaders: true }));
    const silent = track(await startServer({ rateLimit: false, reportClientIp: false }));
    const hello = (port: number, headers: Record<string, string>) =>
      new Promise<string>((resolve, reject) => {
        const md = new Metadata();
        for (const [k, v] of Object.entries(headers)) md.set(k, v);
        rawClient(port).makeUnaryRequest(
          METHOD_PATHS.Hello,
          clusterMethods.Hello.requestSerialize,
          clusterMethods.Hello.responseDeserialize,
          { clusterId: 'c', clientVersion: 'v1.11.0' },
          md,
          {},
          (err, res) => (err ? reject(err) : resolve(Buffer.from(res!.clientIp).toString('hex'))),
        );
      });
    const xff = { 'x-forwarded-for': '203.0.113.5, 10.0.0.1' };
    expect(await hello(plain.port(), xff)).toBe('7f000001');
    expect(await hello(trusting.port(), xff)).toBe('cb007105');
    expect(await hello(trusting.port(), { ...xff, 'x-real-ip': '2001:db8::7' })).toBe('20010db8000000000000000000000007');
    expect(await hello(silent.port(), {})).toBe('');
    expect(await trusting.metrics.registry.getSingleMetricAsString('discovery_server_hello_requests_total')).toMatch(
      /client_version="v1.11"} 2/,
    );
  });
});

describe('state file snapshots', () => {
  it('are written periodically, not only at shutdown', async () => {
    const { mkdtempSync, existsSync, rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const { readStateFile } = await import('../../../src/discovery-server/index.js');
    const dir = mkdtempSync(join(tmpdir(), 'ksd-snap-'));
    try {
      const file = join(dir, 'state.binpb');
      const server = track(await startServer({ rateLimit: false, stateFile: file, snapshotIntervalMs: 100 }));
      expect(await update(rawClient(server.port()), { ...base, affiliateData: new Uint8Array([1, 2]) })).toBeNull();
      await eventually(() => {
        expect(existsSync(file)).toBe(true);
        expect(readStateFile(file)?.state.clusters[0]?.affiliates[0]?.id).toBe('x');
      });
    } finally {
      await cleanup(...stoppable.splice(0));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
