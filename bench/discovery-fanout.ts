/**
 * Discovery server fan-out benchmark: one server (its own process, so its RSS is its own), N
 * affiliates and M watchers in one cluster. Updates are sent one at a time; for each, the time
 * from sending the AffiliateUpdate until each watcher receives the notification is recorded.
 *
 *   node dist/bench/discovery-fanout.js [--affiliates 1000] [--watchers 500] [--updates 200] [--channels 25]
 *
 * Watchers are raw Watch streams (no decoding: the server's work is what is measured) spread over
 * `--channels` HTTP/2 connections. The per-IP rate limit is off (all traffic comes from 127.0.0.1).
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client, Metadata, credentials, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { encodeAffiliate } from '../src/discovery/affiliate-codec.js';
import { ClusterCipher } from '../src/discovery/cluster-cipher.js';
import { METHOD_PATHS, clusterMethods } from '../src/discovery/service.js';
import { DiscoveryServer } from '../src/discovery-server/server.js';

const CLUSTER = 'bench-cluster';

type ServerMessage = { kind: 'port'; port: number } | { kind: 'mem'; rss: number; heapUsed: number; external: number };

async function runServer(): Promise<void> {
  const server = new DiscoveryServer({ listen: '127.0.0.1:0', rateLimit: false });
  const { port } = await server.start();
  process.send?.({ kind: 'port', port } satisfies ServerMessage);
  process.on('message', (msg: string) => {
    if (msg === 'mem') {
      global.gc?.();
      const m = process.memoryUsage();
      process.send?.({ kind: 'mem', rss: m.rss, heapUsed: m.heapUsed, external: m.external } satisfies ServerMessage);
    } else if (msg === 'stop') {
      void server.stop().then(() => process.exit(0));
    }
  });
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      server: { type: 'boolean' },
      affiliates: { type: 'string', default: '1000' },
      watchers: { type: 'string', default: '500' },
      updates: { type: 'string', default: '200' },
      channels: { type: 'string', default: '25' },
    },
  });
  if (values.server) return runServer();
  const affiliates = Number(values.affiliates);
  const watchers = Number(values.watchers);
  const updates = Number(values.updates);
  const channels = Number(values.channels);

  const child = fork(fileURLToPath(import.meta.url), ['--server'], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: ['--expose-gc'],
  });
  const next = <K extends ServerMessage['kind']>(kind: K) =>
    new Promise<Extract<ServerMessage, { kind: K }>>((resolve) => {
      const on = (m: ServerMessage) => {
        if (m.kind === kind) {
          child.off('message', on);
          resolve(m as Extract<ServerMessage, { kind: K }>);
        }
      };
      child.on('message', on);
    });
  const mem = async () => {
    const p = next('mem');
    child.send('mem');
    return p;
  };
  const { port } = await next('port');
  const target = `127.0.0.1:${port}`;
  const idle = await mem();

  // realistic records: a sealed Talos-like affiliate (~250 B) and two endpoint blobs each
  const cipher = new ClusterCipher(randomBytes(32));
  const blob = (i: number) =>
    cipher.sealAffiliateData(
      encodeAffiliate({
        nodeId: `node-${i}`,
        addresses: [`10.${(i >> 8) & 255}.${i & 255}.1`, `fd7f:175a:b97c:5602::${i.toString(16)}`],
        hostname: `node-${i}.bench.example`,
        nodename: `node-${i}`,
        machineType: 'worker',
        operatingSystem: 'kubespand (v0.1.0)',
        kubespan: {
          publicKey: randomBytes(32).toString('base64'),
          address: `fd7f:175a:b97c:5602::${i.toString(16)}`,
          additionalAddresses: [`10.244.${i & 255}.0/24`],
          excludeAdvertisedAddresses: [],
        },
      }),
    );
  const endpoints = (i: number) => [
    cipher.encryptEndpoint({ address: `192.0.2.${i & 255}`, port: 51820 }),
    cipher.encryptEndpoint({ address: `2001:db8::${i.toString(16)}`, port: 51820 }),
  ];

  const pool = Array.from({ length: channels }, () => new Client(target, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
  const update = (client: Client, i: number) =>
    new Promise<void>((resolve, reject) =>
      client.makeUnaryRequest(
        METHOD_PATHS.AffiliateUpdate,
        clusterMethods.AffiliateUpdate.requestSerialize,
        (b: Buffer) => b,
        { clusterId: CLUSTER, affiliateId: `node-${i}`, affiliateData: blob(i), affiliateEndpoints: endpoints(i), ttlMs: 30 * 60_000 },
        new Metadata(),
        { deadline: Date.now() + 30_000 },
        (err: ServiceError | null) => (err ? reject(err) : resolve()),
      ),
    );

  let t = performance.now();
  for (let k = 0; k < affiliates; k += 100) {
    await Promise.all(Array.from({ length: Math.min(100, affiliates - k) }, (_, j) => update(pool[(k + j) % channels]!, k + j)));
  }
  const loadMs = performance.now() - t;
  const loaded = await mem();

  // watchers: count messages; the first is the snapshot
  const received = new Array<number>(watchers).fill(0);
  let expected = 1;
  let sentAt = 0;
  let pendingRound: { left: number; done: () => void } | undefined;
  const latencies: number[] = [];
  const completion: number[] = [];
  let snapshotsLeft = watchers;
  let snapshotsDone!: () => void;
  const allSnapshots = new Promise<void>((r) => (snapshotsDone = r));
  const streams: ClientReadableStream<Buffer>[] = [];
  t = performance.now();
  for (let w = 0; w < watchers; w++) {
    const call = pool[w % channels]!.makeServerStreamRequest(
      METHOD_PATHS.Watch,
      clusterMethods.Watch.requestSerialize,
      (b: Buffer) => b,
      { clusterId: CLUSTER },
      new Metadata(),
      {},
    ) as ClientReadableStream<Buffer>;
    call.on('data', () => {
      received[w]!++;
      if (received[w] === 1) {
        if (--snapshotsLeft === 0) snapshotsDone();
        return;
      }
      if (received[w] === expected && pendingRound) {
        latencies.push(performance.now() - sentAt);
        if (--pendingRound.left === 0) {
          completion.push(performance.now() - sentAt);
          pendingRound.done();
        }
      }
    });
    call.on('error', (err: ServiceError) => {
      if (err.code !== 1) process.stderr.write(`watcher ${w}: ${err.details}\n`);
    });
    streams.push(call);
  }
  await allSnapshots;
  const subscribeMs = performance.now() - t;
  const watching = await mem();

  // fan-out rounds: one update at a time
  for (let u = 0; u < updates; u++) {
    expected++;
    await new Promise<void>((done) => {
      pendingRound = { left: watchers, done };
      sentAt = performance.now();
      void update(pool[u % channels]!, u % affiliates);
    });
  }
  pendingRound = undefined;
  const after = await mem();

  for (const s of streams) s.cancel();
  for (const c of pool) c.close();
  child.send('stop');
  await new Promise((r) => child.once('exit', r));

  latencies.sort((a, b) => a - b);
  completion.sort((a, b) => a - b);
  const result = {
    affiliates,
    watchers,
    updates,
    channels,
    loadAffiliatesMs: Math.round(loadMs),
    subscribeAllMs: Math.round(subscribeMs),
    deliveryLatencyMs: { p50: +percentile(latencies, 50).toFixed(2), p99: +percentile(latencies, 99).toFixed(2), samples: latencies.length },
    fanoutCompleteMs: { p50: +percentile(completion, 50).toFixed(2), p99: +percentile(completion, 99).toFixed(2) },
    serverRss: { idle: idle.rss, withAffiliates: loaded.rss, withWatchers: watching.rss, afterUpdates: after.rss },
    serverHeapUsed: { idle: idle.heapUsed, withWatchers: watching.heapUsed, afterUpdates: after.heapUsed },
    serverExternal: { idle: idle.external, withWatchers: watching.external, afterUpdates: after.external },
  };
  process.stdout.write(
    [
      `discovery fan-out: ${affiliates} affiliates, ${watchers} watchers over ${channels} connections, ${updates} sequential updates (node ${process.version})`,
      `  load ${affiliates} affiliates: ${result.loadAffiliatesMs} ms; ${watchers} watch snapshots: ${result.subscribeAllMs} ms`,
      `  per-watcher delivery latency: p50 ${result.deliveryLatencyMs.p50} ms, p99 ${result.deliveryLatencyMs.p99} ms (${latencies.length} samples)`,
      `  update reaches all ${watchers} watchers: p50 ${result.fanoutCompleteMs.p50} ms, p99 ${result.fanoutCompleteMs.p99} ms`,
      `  server RSS: idle ${mib(idle.rss)}, +affiliates ${mib(loaded.rss)}, +watchers ${mib(watching.rss)}, after updates ${mib(after.rss)}`,
      `  server JS heap after updates ${mib(after.heapUsed)}, external ${mib(after.external)} (RSS above that is allocator high-water from the ${watchers} simultaneous snapshots)`,
      JSON.stringify(result),
      '',
    ].join('\n'),
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`discovery-fanout: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
