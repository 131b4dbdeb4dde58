/**
 * The soak: two KubeSpan nodes and a discovery server in network namespaces, steady traffic between
 * the nodes (iperf3 at a fixed rate plus a ping every 200 ms), and peer churn every N seconds (an
 * affiliate joins, another leaves: bench/soak/churn.ts), optionally with one discovery outage. Both
 * daemons are sampled from /proc (RSS, open fds, CPU) and the least-squares slope of RSS and fds per
 * minute is reported, after a warm-up.
 *
 *     n1 (10.242.0.1) ── br0 (hub, 10.242.0.254: discovery :3000, churn) ── n2 (10.242.0.2)
 *        iperf3 -c, ping  ───────────── KubeSpan tunnel (ULA) ─────────────▶  iperf3 -s
 *
 * Used by test/netns/hardening-soak.test.ts (about a minute) and bench/soak.ts (30 minutes).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { controlRequest } from '../../src/kubespan/control.js';
import { kubespanPrefix } from '../../src/kubespan/identity.js';
import { meshNodeConfig } from '../../src/netns/mesh-config.js';
import { eventually, sleep, Topology, type Spawned } from '../../src/netns/topology.js';
import { cpuFraction, sampleProc, slope, type ProcSample } from './proc-stats.js';

/** The repository root, from src (vitest) or dist (compiled) alike: the folder holding package.json. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bin', 'kubespand'))) return dir;
    dir = dirname(dir);
  }
  throw new Error(`soak: cannot find the repository root above ${fileURLToPath(import.meta.url)}`);
}

export interface SoakOptions {
  /** Namespace/interface name prefix (the caller's: `ksh`). */
  prefix: string;
  durationMs: number;
  /** One affiliate joins and one leaves this often. */
  churnEveryMs: number;
  sampleEveryMs: number;
  /** Samples before this are warm-up: not used for slopes and growth. */
  warmupMs: number;
  /** iperf3 TCP rate n1→n2, Mbit/s. */
  trafficMbit: number;
  /** Stop discovery once, `atMs` into the run, for `forMs`. */
  outage?: { atMs: number; forMs: number };
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /** Ends the run early (Ctrl-C): the report covers what ran, and everything is cleaned up. */
  signal?: AbortSignal;
}

export interface NodeSeries {
  name: string;
  samples: ProcSample[];
  /** After warm-up. */
  rssSlopeKiBPerMin: number;
  fdSlopePerMin: number;
  rssGrowthKiB: number;
  fdsRange: [number, number];
  /**
   * The fd floor (minimum over 5 consecutive samples) right after warm-up and at the end: the `ip`/`nft`
   * children a reconcile pass runs hold pipes for a moment, a leak raises the floor.
   */
  fdsFirst: number;
  fdsLast: number;
  /** Open fds by kind after warm-up and at the end: where growth would come from. */
  fdKindsAfterWarmup: Record<string, number>;
  fdKindsAtEnd: Record<string, number>;
  cpuCores: number;
  peakRssKiB: number;
  /** V8 heap in use (nodejs_heap_size_used_bytes from the daemon's metrics), per sample, KiB. */
  heapKiB: number[];
  /** After warm-up: a leak in JavaScript objects shows here before RSS settles. */
  heapSlopeKiBPerMin: number;
}

export interface SoakReport {
  durationS: number;
  nodes: NodeSeries[];
  ping: { sent: number; received: number };
  iperf: { receivedMbit: number; bytes: number; retransmits: number | null; error?: string };
  churn: { joined: number; left: number };
  /** Distinct WireGuard peer counts seen on n1, and how many distinct peers it ever had. */
  peerCounts: number[];
  distinctPeers: number;
  outage?: { forMs: number; reconnectMs: Record<string, number> };
  /** Both nodes had every real peer up at the end. */
  meshUpAtEnd: boolean;
}

interface SoakNode {
  name: string;
  ns: string;
  ip: string;
  config: string;
  socket: string;
  stateDir: string;
  ifname: string;
  proc?: Spawned;
}

const HUB = '10.242.0.254';

export async function runSoak(opts: SoakOptions): Promise<SoakReport> {
  const log = opts.log ?? (() => undefined);
  const root = repoRoot();
  const bin = join(root, 'bin', 'kubespand');
  const churnJs = join(root, 'dist', 'bench', 'soak', 'churn.js');
  if (!existsSync(churnJs)) throw new Error(`${churnJs} is missing: run npm run build:ts`);
  const topo = new Topology(opts.prefix);
  const work = mkdtempSync(join(tmpdir(), `${opts.prefix}-soak-`));
  topo.onDestroy(() => rmSync(work, { recursive: true, force: true }));
  try {
    const clusterId = randomBytes(32).toString('base64');
    const secretFile = join(work, 'cluster.secret');
    const clusterSecret = randomBytes(32).toString('base64');
    writeFileSync(secretFile, clusterSecret, { mode: 0o600 });
    const hub = topo.netns('shub');
    topo.exec(hub, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
    topo.exec(hub, 'ip', ['addr', 'add', `${HUB}/24`, 'dev', 'br0']);
    topo.exec(hub, 'ip', ['link', 'set', 'br0', 'up']);
    const nodes: SoakNode[] = ['n1', 'n2'].map((name, i) => {
      const ns = topo.netns(`s${name}`);
      const ip = `10.242.0.${i + 1}`;
      const { ifB } = topo.veth(ns, [`${ip}/24`], hub, []);
      topo.exec(hub, 'ip', ['link', 'set', ifB, 'master', 'br0']);
      const dir = join(work, name);
      mkdirSync(dir);
      return { name, ns, ip, config: join(dir, 'node.yaml'), socket: join(dir, 'control.sock'), stateDir: join(dir, 'state'), ifname: `${topo.tag}s${name}`.slice(0, 15) };
    });
    const serverArgs = ['discovery', 'serve', '--listen', `${HUB}:3000`, '--state-file', join(work, 'discovery.state')];
    let server = topo.spawn(hub, bin, serverArgs);
    await server.waitFor(/listening|serving/i, 15_000);
    for (const n of nodes) {
      writeFileSync(
        n.config,
        meshNodeConfig({
          clusterId,
          clusterSecret,
          discoveryEndpoint: `http://${HUB}:3000/`,
          nodeName: n.name,
          stateDir: n.stateDir,
          controlSocket: n.socket,
          interface: n.ifname,
          logLevel: 'info',
          metricsListen: '127.0.0.1:9109',
        }),
        { mode: 0o600 },
      );
      n.proc = topo.spawn(n.ns, bin, ['run', '--config', n.config]);
    }
    for (const n of nodes) await n.proc!.waitFor(/kubespand is running/, 30_000);
    const ula = async (n: SoakNode): Promise<string> => {
      const rows = (await controlRequest(n.socket, { op: 'get', kind: 'kubespanidentities' })).items as { address: string }[];
      return rows[0]!.address.split('/')[0]!;
    };
    const realUp = async (n: SoakNode): Promise<boolean> => {
      const rows = (await controlRequest(n.socket, { op: 'get', kind: 'kubespanpeerstatuses' })).items as { label: string; state: string }[];
      const real = rows.filter((r) => r.label === 'n1' || r.label === 'n2');
      return real.length === 1 && real[0]!.state === 'up';
    };
    for (const n of nodes) await eventually(() => realUp(n), 60_000, 250);
    const [n1, n2] = nodes as [SoakNode, SoakNode];
    const target = await ula(n2);
    log(`soak: mesh up; ${opts.durationMs / 1000} s of traffic n1→n2 (${target}) at ${opts.trafficMbit} Mbit/s with churn every ${opts.churnEveryMs / 1000} s`);

    // traffic, churn, sampling
    const seconds = Math.ceil(opts.durationMs / 1000);
    const iperfServer = topo.spawn(n2.ns, 'iperf3', ['-s', '-1', '-B', target, '--forceflush']);
    await iperfServer.waitFor(/listening/i, 10_000);
    const iperf = topo.spawn(n1.ns, 'iperf3', ['-c', target, '-t', String(seconds), '-b', `${opts.trafficMbit}M`, '-i', '0', '--json']);
    const ping = topo.spawn(n1.ns, 'ping', ['-n', '-i', '0.2', '-W', '1', target]);
    const churn = topo.spawn(hub, process.execPath, [churnJs, '--endpoint', `http://${HUB}:3000/`, '--cluster-id', clusterId, '--cluster-secret-file', secretFile, '--prefix', kubespanPrefix(clusterId), '--every-ms', String(opts.churnEveryMs), '--live', '2']);
    const started = performance.now();
    const series = new Map<string, ProcSample[]>(nodes.map((n) => [n.name, []]));
    const heaps = new Map<string, { at: number; kib: number }[]>(nodes.map((n) => [n.name, []]));
    const heapOf = (n: SoakNode): number => {
      try {
        const text = topo.exec(n.ns, process.execPath, ['-e', "fetch('http://127.0.0.1:9109/metrics', { signal: AbortSignal.timeout(2000) }).then((r) => r.text()).then((t) => process.stdout.write(t), (e) => { console.error(String(e)); process.exit(1); })"]);
        return Number(/^nodejs_heap_size_used_bytes (\d+)/m.exec(text)?.[1] ?? NaN) / 1024;
      } catch {
        return NaN;
      }
    };
    const peerCounts = new Set<number>();
    const kindsAfterWarmup = new Map<string, Record<string, number>>();
    const peersSeen = new Set<string>();
    let outage: SoakReport['outage'];
    let outageDone = opts.outage === undefined;
    let outageTask: Promise<void> = Promise.resolve();
    let nextSample = 0;
    while (performance.now() - started < opts.durationMs && !opts.signal?.aborted) {
      const t = performance.now() - started;
      if (t >= nextSample) {
        nextSample += opts.sampleEveryMs;
        for (const n of nodes) {
          series.get(n.name)!.push(sampleProc(n.proc!.child.pid!));
          heaps.get(n.name)!.push({ at: performance.now(), kib: heapOf(n) });
        }
        if (t >= opts.warmupMs && kindsAfterWarmup.size === 0) for (const n of nodes) kindsAfterWarmup.set(n.name, fdKinds(n.proc!.child.pid!));
        const peers = topo.exec(n1.ns, 'wg', ['show', n1.ifname, 'peers']).split('\n').filter(Boolean);
        peerCounts.add(peers.length);
        for (const p of peers) peersSeen.add(p);
        const last = series.get('n1')!.at(-1)!;
        if (series.get('n1')!.length % Math.max(1, Math.round(60_000 / opts.sampleEveryMs)) === 0) {
          log(`soak: ${Math.round(t / 1000)} s: n1 rss ${(last.rssKiB / 1024).toFixed(1)} MiB, fds ${last.fds}, peers ${peers.length}`);
        }
      }
      if (!outageDone && opts.outage && t >= opts.outage.atMs) {
        // in the background, so sampling goes on through the outage
        outageDone = true;
        const forMs = opts.outage.forMs;
        outageTask = (async () => {
          log(`soak: discovery down for ${forMs / 1000} s`);
          await server.stop('SIGTERM');
          await sleep(forMs);
          server = topo.spawn(hub, bin, serverArgs);
          const back = performance.now();
          await server.waitFor(/listening|serving/i, 15_000);
          const reconnectMs: Record<string, number> = {};
          await Promise.all(
            nodes.map(async (n) => {
              await eventually(async () => ((await controlRequest(n.socket, { op: 'status' })).status as { discovery: { state: string } }).discovery.state === 'connected', 120_000, 500);
              reconnectMs[n.name] = Math.round(performance.now() - back);
            }),
          );
          outage = { forMs, reconnectMs };
          log(`soak: discovery back; reconnected after ${JSON.stringify(reconnectMs)} ms`);
        })();
      }
      await sleep(200);
    }
    await outageTask;
    const kindsAtEnd = new Map(nodes.map((n) => [n.name, fdKinds(n.proc!.child.pid!)]));
    await churn.stop('SIGTERM', 20_000);
    if (opts.signal?.aborted) await iperf.stop('SIGINT');
    await iperf.exited();
    await ping.stop('SIGINT');
    const meshUpAtEnd = (await Promise.all(nodes.map((n) => realUp(n)))).every(Boolean);

    // results
    const churnSummary = JSON.parse(churn.output().trim().split('\n').pop() ?? '{}') as { joined?: number; left?: number };
    const pingSummary = /(\d+) packets transmitted, (\d+) received/.exec(ping.output());
    let iperfResult: SoakReport['iperf'];
    try {
      const j = JSON.parse(iperf.output()) as { end?: { sum_received?: { bits_per_second: number; bytes: number }; sum_sent?: { retransmits?: number } }; error?: string };
      iperfResult = {
        receivedMbit: +((j.end?.sum_received?.bits_per_second ?? 0) / 1e6).toFixed(1),
        bytes: j.end?.sum_received?.bytes ?? 0,
        retransmits: j.end?.sum_sent?.retransmits ?? null,
        ...(j.error ? { error: j.error } : {}),
      };
    } catch {
      iperfResult = { receivedMbit: 0, bytes: 0, retransmits: null, error: `unreadable iperf3 output: ${iperf.output().slice(-300)}` };
    }
    const nodeSeries: NodeSeries[] = nodes.map((n) => {
      const samples = series.get(n.name)!;
      const t0 = samples[0]!.at;
      const steady = samples.filter((s) => s.at - t0 >= opts.warmupMs);
      const use = steady.length >= 2 ? steady : samples;
      const minutes = (s: ProcSample): number => (s.at - t0) / 60_000;
      const head = use.slice(0, 3);
      const tail = use.slice(-3);
      const mean = (xs: ProcSample[], f: (s: ProcSample) => number): number => xs.reduce((a, s) => a + f(s), 0) / xs.length;
      return {
        name: n.name,
        samples,
        rssSlopeKiBPerMin: +slope(use.map((s) => ({ x: minutes(s), y: s.rssKiB }))).toFixed(1),
        fdSlopePerMin: +slope(use.map((s, i) => ({ x: minutes(s), y: Math.min(...use.slice(Math.max(0, i - 4), i + 1).map((u) => u.fds)) }))).toFixed(3),
        rssGrowthKiB: Math.round(mean(tail, (s) => s.rssKiB) - mean(head, (s) => s.rssKiB)),
        fdsRange: [Math.min(...use.map((s) => s.fds)), Math.max(...use.map((s) => s.fds))],
        fdsFirst: Math.min(...use.slice(0, 5).map((s) => s.fds)),
        fdsLast: Math.min(...use.slice(-5).map((s) => s.fds)),
        fdKindsAfterWarmup: kindsAfterWarmup.get(n.name) ?? {},
        fdKindsAtEnd: kindsAtEnd.get(n.name) ?? {},
        cpuCores: +cpuFraction(samples[0]!, samples.at(-1)!).toFixed(3),
        peakRssKiB: Math.max(...samples.map((s) => s.hwmKiB)),
        heapKiB: heaps.get(n.name)!.map((h) => Math.round(h.kib)),
        heapSlopeKiBPerMin: +slope(heaps.get(n.name)!.filter((h) => h.at - t0 >= opts.warmupMs && Number.isFinite(h.kib)).map((h) => ({ x: (h.at - t0) / 60_000, y: h.kib }))).toFixed(1),
      };
    });
    return {
      durationS: Math.round((performance.now() - started) / 1000),
      nodes: nodeSeries,
      ping: { sent: Number(pingSummary?.[1] ?? 0), received: Number(pingSummary?.[2] ?? 0) },
      iperf: iperfResult,
      churn: { joined: churnSummary.joined ?? 0, left: churnSummary.left ?? 0 },
      peerCounts: [...peerCounts].sort((a, b) => a - b),
      distinctPeers: peersSeen.size,
      ...(outage ? { outage } : {}),
      meshUpAtEnd,
    };
  } finally {
    await topo.destroy();
  }
}

/** Open fds of `pid` by what they point at (`socket`, `pipe`, `anon_inode`, `/dev/net/tun`, `file`), for reports. */
export function fdKinds(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let kind = 'gone';
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      kind = /^([a-z_]+):/.exec(target)?.[1] ?? (target.startsWith('/dev/') ? target : 'file');
    } catch {
      /* closed meanwhile */
    }
    out[kind] = (out[kind] ?? 0) + 1;
  }
  return out;
}
