/**
 * Scale figures.
 *
 * 1. One device with N configured peers (default 1000), per implementation (kubespand, wireguard-go),
 *    in a network namespace of its own: the hub daemon is started as in the interop bed; N in-process
 *    peers (bench/scale-peers.ts, one DeviceCore and one UDP socket each, on N distinct loopback
 *    addresses) run in a second process in the same namespace. Measured: the hub's RSS before and
 *    after the configuration and after the handshakes, and its peak; the time to apply the N-peer
 *    configuration through the UAPI socket (one `set=1` request, as `wg setconf` sends it); the
 *    time from turning on persistent keepalive for every peer (which makes the hub initiate at
 *    once, as wireguard-go does) until every peer has decrypted the hub's confirming keepalive;
 *    the hub's CPU seconds for each phase; and a full UAPI `get` with N peers.
 * 2. In process, no root: applying N peers through the DeviceCore API; N handshakes between a hub
 *    core and N peer cores on an in-memory wire with a simulated clock (CPU time, and the simulated
 *    time the protocol's rules take: under-load cookies, retransmits); the peer controller's
 *    buildPeerSpecs + reconcilePeers with N affiliates (first pass and steady state).
 *
 *   npm run build:ts && node dist/bench/scale.js [--peers 1000] [--impl kubespand,wireguard-go]
 *       [--timeout 90] [--quick] [--no-netns] [--out DIR] [--json]
 *
 * Writes `<out>/<stamp>-scale.json` (default bench/results). Never fails on a number.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Topology, sleep, type Spawned } from '../src/netns/topology.js';
import { nodeCrypto } from '../src/noise/crypto-node.js';
import { parsePrefix } from '../src/noise/allowed-ips.js';
import { generatePrivateKey, keyToBase64, keyToHex } from '../src/noise/keys.js';
import { systemRandom } from '../src/device/system.js';
import type { Peer } from '../src/noise/device.js';
import { buildPeerSpecs } from '../src/peer/peer-spec.js';
import { reconcilePeers } from '../src/peer/peer-controller.js';
import type { DevicePeerSnapshot, PeerStatus } from '../src/peer/types.js';
import type { DiscoveredAffiliate } from '../src/discovery/types.js';
import { SimNetwork, type SimNode } from './lib/core-sim.js';
import { medianMs } from './lib/measure.js';
import { CLI_MAIN, fileStamp, gitHead, KUBESPAND_BIN, RESULTS_DIR, SCALE_PEERS, UAPI_DIR } from './lib/paths.js';
import { describeMachine, machineInfo, processCpuSeconds, processMemory, processName, type ProcessMemory } from './lib/proc.js';
import { HUB_PORT, HUB_TUNNEL, MAX_SCALE_PEERS, PEER_OUTER_ROUTE, PEER_PORT, peerOuter, peerTunnel, type PeersMessage } from './lib/scale-net.js';

type Impl = 'kubespand' | 'wireguard-go';

// ---------------------------------------------------------------------------------------------- UAPI client

/** Sends one UAPI request to the socket and resolves with the full reply (up to the blank line after errno). */
function uapiRequest(path: string, request: string, timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let reply = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`UAPI ${path}: no complete reply within ${timeoutMs} ms (got ${reply.length} bytes)`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      reply += d;
      if (/(^|\n)errno=-?\d+\n\n$/.test(reply)) {
        clearTimeout(timer);
        sock.end();
        resolve(reply);
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`UAPI ${path}: ${err.message}`));
    });
    sock.write(request);
  });
}

function uapiErrno(reply: string): number {
  const m = /errno=(-?\d+)\n\n$/.exec(reply);
  return m ? Number(m[1]) : NaN;
}

// ---------------------------------------------------------------------------------------------- netns part

export interface HubFigure {
  impl: Impl;
  peers: number;
  notes: string[];
  memory: { started: ProcessMemory | null; configured: ProcessMemory | null; afterHandshakes: ProcessMemory | null };
  /** One `set=1` request with every peer (key, endpoint, allowed IP), connect → errno=0. */
  applyMs: number | null;
  applyCpuSeconds: number | null;
  /** The `set=1` that turns on persistent keepalive for every peer (the hub initiates to each). */
  triggerApplyMs: number | null;
  /** Trigger sent → the k-th peer confirmed, ms. */
  handshakes: { completed: number; p50Ms: number | null; p90Ms: number | null; lastMs: number | null; initiationsSeen: number | null };
  handshakeCpuSeconds: number | null;
  /** `get=1` with every peer: time and how many peers show a handshake. */
  getMs: number | null;
  getBytes: number | null;
  getPeersWithHandshake: number | null;
  peersProcess: { cpuSeconds: number | null; rss: number | null };
}

function parseMessages(output: string): PeersMessage[] {
  const out: PeersMessage[] = [];
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as PeersMessage);
    } catch {
      /* a partial line: the next poll sees it whole */
    }
  }
  return out;
}

async function nextMessage<K extends PeersMessage['kind']>(proc: Spawned, kind: K, after: number, timeoutMs: number): Promise<{ msg: Extract<PeersMessage, { kind: K }>; index: number }> {
  const deadline = performance.now() + timeoutMs;
  let exited = false;
  void proc.exited().then(() => (exited = true));
  for (;;) {
    const msgs = parseMessages(proc.output());
    for (let i = after; i < msgs.length; i++) {
      const m = msgs[i]!;
      if (m.kind === 'error') throw new Error(`scale peers: ${m.message}`);
      if (m.kind === kind) return { msg: m as Extract<PeersMessage, { kind: K }>, index: i + 1 };
    }
    if (exited) throw new Error(`scale peers exited: ${proc.output().slice(-500)}`);
    if (performance.now() > deadline) throw new Error(`scale peers: no "${kind}" message within ${timeoutMs} ms`);
    await sleep(25);
  }
}

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

function memoryOf(pid: number): ProcessMemory | null {
  try {
    return processMemory(pid);
  } catch {
    return null;
  }
}

function cpuOf(pid: number): number | null {
  try {
    return processCpuSeconds(pid);
  } catch {
    return null;
  }
}

async function runHub(impl: Impl, peers: number, timeoutS: number, log: (l: string) => void): Promise<HubFigure> {
  const fig: HubFigure = {
    impl,
    peers,
    notes: [],
    memory: { started: null, configured: null, afterHandshakes: null },
    applyMs: null,
    applyCpuSeconds: null,
    triggerApplyMs: null,
    handshakes: { completed: 0, p50Ms: null, p90Ms: null, lastMs: null, initiationsSeen: null },
    handshakeCpuSeconds: null,
    getMs: null,
    getBytes: null,
    getPeersWithHandshake: null,
    peersProcess: { cpuSeconds: null, rss: null },
  };
  const topo = new Topology('ksb');
  const onSignal = (): void => void topo.destroy().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const ns = topo.netns(`s${impl === 'kubespand' ? 'k' : 'w'}`);
    topo.exec(ns, 'ip', ['route', 'add', 'local', PEER_OUTER_ROUTE, 'dev', 'lo']);
    const ifname = `${topo.tag}H${impl === 'kubespand' ? 'k' : 'w'}`;
    const sock = join(UAPI_DIR, `${ifname}.sock`);
    if (existsSync(sock)) throw new Error(`${sock} already exists: another run uses interface name ${ifname}`);
    topo.onDestroy(() => rmSync(sock, { force: true }));
    if (impl === 'kubespand' && !existsSync(CLI_MAIN) && !process.env.KSN_KUBESPAND_BIN) throw new Error(`kubespand is not built (${CLI_MAIN} is missing)`);
    const hub = impl === 'kubespand' ? topo.spawn(ns, KUBESPAND_BIN, ['device', ifname]) : topo.spawn(ns, 'wireguard-go', ['-f', ifname], { env: { ...process.env, WG_PROCESS_FOREGROUND: '1' } });
    const pid = hub.child.pid!;
    const deadline = performance.now() + 20_000;
    while (!(existsSync(sock) && processName(pid) !== 'ip')) {
      if (performance.now() > deadline) throw new Error(`${impl} did not create ${sock}: ${hub.output().slice(-500)}`);
      await sleep(20);
    }
    await sleep(100);
    topo.exec(ns, 'ip', ['addr', 'add', `${HUB_TUNNEL}/16`, 'dev', ifname]);
    topo.exec(ns, 'ip', ['link', 'set', ifname, 'up']);
    fig.memory.started = memoryOf(pid);

    log(`  ${impl}: starting ${peers} in-process peers …`);
    const hubKey = generatePrivateKey(systemRandom);
    const hubPublic = nodeCrypto.publicKey(hubKey);
    const peersProc = topo.spawn(ns, process.execPath, [SCALE_PEERS, '--count', String(peers), '--hub-public', keyToBase64(hubPublic)], { stdio: ['pipe', 'pipe', 'pipe'] });
    const { msg: ready, index } = await nextMessage(peersProc, 'ready', 0, 120_000);
    let cursor = index;

    // apply: one set with every peer
    const lines = ['set=1', `private_key=${keyToHex(hubKey)}`, `listen_port=${HUB_PORT}`, 'replace_peers=true'];
    ready.publicKeys.forEach((pk, i) => {
      lines.push(`public_key=${Buffer.from(pk, 'base64').toString('hex')}`, `endpoint=${peerOuter(i)}:${PEER_PORT}`, 'replace_allowed_ips=true', `allowed_ip=${peerTunnel(i)}/32`);
    });
    log(`  ${impl}: applying ${peers} peers through the UAPI …`);
    const cpu0 = cpuOf(pid);
    let t = performance.now();
    const applyReply = await uapiRequest(sock, lines.join('\n') + '\n\n');
    fig.applyMs = performance.now() - t;
    const cpu1 = cpuOf(pid);
    fig.applyCpuSeconds = cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : null;
    if (uapiErrno(applyReply) !== 0) fig.notes.push(`apply: UAPI answered ${applyReply.trim()}`);
    await sleep(500);
    fig.memory.configured = memoryOf(pid);

    // trigger: persistent keepalive on for every peer → the hub initiates to each at once
    const trigger = ['set=1', ...ready.publicKeys.flatMap((pk) => [`public_key=${Buffer.from(pk, 'base64').toString('hex')}`, 'persistent_keepalive_interval=25'])];
    log(`  ${impl}: ${peers} handshakes …`);
    const triggerAt = performance.timeOrigin + performance.now();
    t = performance.now();
    const triggerReply = await uapiRequest(sock, trigger.join('\n') + '\n\n');
    fig.triggerApplyMs = performance.now() - t;
    if (uapiErrno(triggerReply) !== 0) fig.notes.push(`trigger: UAPI answered ${triggerReply.trim()}`);
    const until = performance.now() + timeoutS * 1000;
    let report: Extract<PeersMessage, { kind: 'report' }> | null = null;
    for (;;) {
      await sleep(250);
      peersProc.child.stdin?.write('report\n');
      const r = await nextMessage(peersProc, 'report', cursor, 30_000);
      cursor = r.index;
      report = r.msg;
      const done = report.completions.filter((c) => c !== null).length;
      if (done === peers || performance.now() > until) break;
    }
    const cpu2 = cpuOf(pid);
    fig.handshakeCpuSeconds = cpu1 !== null && cpu2 !== null ? cpu2 - cpu1 : null;
    const times = report.completions.filter((c): c is number => c !== null).map((c) => c - triggerAt).sort((a, b) => a - b);
    fig.handshakes = { completed: times.length, p50Ms: percentile(times, 0.5), p90Ms: percentile(times, 0.9), lastMs: times.length === peers ? times[times.length - 1]! : null, initiationsSeen: report.initiationsSeen };
    if (times.length < peers) fig.notes.push(`only ${times.length} of ${peers} handshakes completed within ${timeoutS} s`);
    fig.peersProcess = { cpuSeconds: report.cpuSeconds, rss: report.rss };
    fig.memory.afterHandshakes = memoryOf(pid);

    t = performance.now();
    const got = await uapiRequest(sock, 'get=1\n\n');
    fig.getMs = performance.now() - t;
    fig.getBytes = Buffer.byteLength(got);
    fig.getPeersWithHandshake = (got.match(/^last_handshake_time_sec=[1-9]/gm) ?? []).length;

    peersProc.child.stdin?.write('exit\n');
    await peersProc.stop('SIGTERM', 5_000);
    await hub.stop('SIGTERM', 5_000);
  } catch (err) {
    fig.notes.push(`harness error: ${(err as Error).message}`);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await topo.destroy();
  }
  return fig;
}

// ---------------------------------------------------------------------------------------------- in-process part

export interface InProcessFigure {
  peers: number;
  /** addPeer + setEndpoint + allowed IP for every peer on one DeviceCore (static-static DH included). */
  coreApplyMs: number;
  /** Wall time until every peer confirmed (the hub's and the peers' crypto, all on this thread). */
  handshakeWallMs: number | null;
  /** Simulated protocol time until every peer confirmed (250 ms ticks while the wire is idle). */
  handshakeSimulatedMs: number | null;
  completed: number;
  /** Initiations the hub sent (retransmits included). */
  initiationsSent: number;
  /** Cookie replies the hub sent because it was under load. */
  cookieReplies: number;
}

function inProcessHandshakes(peers: number): InProcessFigure {
  const net = new SimNetwork();
  const hub = net.add(nodeCrypto, { address: '10.76.0.1', port: HUB_PORT });
  const nodes: SimNode[] = [];
  for (let i = 0; i < peers; i++) nodes.push(net.add(nodeCrypto, { address: peerOuter(i), port: PEER_PORT }));
  // core API apply, timed on the hub only
  const t0 = performance.now();
  const hubPeers: Peer[] = nodes.map((n, i) => {
    const p = hub.core.addPeer(n.core.getPublicKey()!);
    hub.core.setEndpoint(p, n.endpoint);
    hub.core.allowedIps.insert(parsePrefix(`${peerTunnel(i)}/32`), p);
    return p;
  });
  const coreApplyMs = performance.now() - t0;
  // the peers' side: they know the hub's key, not its endpoint
  for (const n of nodes) {
    const p = n.core.addPeer(hub.core.getPublicKey()!);
    n.core.allowedIps.insert(parsePrefix(`${HUB_TUNNEL}/32`), p);
  }
  let completed = 0;
  for (const n of nodes) {
    let done = false;
    n.onEvent = (e) => {
      if (e.kind === 'handshake-complete' && !done) {
        done = true;
        completed++;
      }
    };
  }
  let initiationsSent = 0;
  hub.onEvent = (e) => {
    if (e.kind === 'handshake-initiated') initiationsSent++;
  };
  const simStart = net.clock.now();
  const w0 = performance.now();
  for (const p of hubPeers) hub.core.setPersistentKeepalive(p, 25);
  while (completed < peers && net.clock.now() - simStart < 120_000) {
    net.pump();
    if (completed === peers) break;
    net.clock.advance(250);
    net.tickAll();
  }
  const wall = performance.now() - w0;
  const ok = completed === peers;
  return {
    peers,
    coreApplyMs,
    handshakeWallMs: ok ? wall : null,
    handshakeSimulatedMs: ok ? net.clock.now() - simStart : null,
    completed,
    initiationsSent,
    cookieReplies: hub.core.drops.get('under-load-cookie-sent') ?? 0,
  };
}

export interface ReconcileFigure {
  affiliates: number;
  buildPeerSpecs: ReturnType<typeof medianMs>;
  reconcileFirst: ReturnType<typeof medianMs>;
  reconcileSteady: ReturnType<typeof medianMs>;
  specs: number;
  devicePeers: number;
}

function affiliates(n: number): DiscoveredAffiliate[] {
  const out: DiscoveredAffiliate[] = [];
  for (let i = 0; i < n; i++) {
    const key = Buffer.alloc(32);
    key.writeUInt32BE(i + 1, 0);
    key.writeUInt32BE(0x6b736200, 4);
    const ula = `fd7a:1b2c:3d4e:02:${(i >> 8).toString(16)}:${(i & 255).toString(16)}:0:1`;
    out.push({
      nodeId: `node-${String(i).padStart(5, '0')}`,
      addresses: [`10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, ula],
      hostname: `node-${i}.example`,
      nodename: `node-${i}`,
      machineType: 'worker',
      operatingSystem: 'Talos (v1.11.0)',
      endpoints: [{ address: `192.0.${(i >> 8) & 255}.${i & 255}`, port: 51820 }, { address: `2001:db8::${i.toString(16)}`, port: 51820 }],
      kubespan: { publicKey: key.toString('base64'), address: ula, additionalAddresses: [`10.244.${(i >> 8) & 255}.${i & 255}/32`, `10.${200 + (i >> 16)}.${(i >> 8) & 255}.0/24`], excludeAdvertisedAddresses: [] },
    });
  }
  return out;
}

function reconcile(n: number, runs: number): ReconcileFigure {
  const affs = affiliates(n);
  const local = Buffer.alloc(32, 0xee).toString('base64');
  let specs = buildPeerSpecs(affs, local).specs;
  const build = medianMs(() => {
    specs = buildPeerSpecs(affs, local).specs;
  }, runs);
  const now = Date.now();
  const psk = Buffer.alloc(32, 7).toString('base64');
  const empty = new Map<string, PeerStatus>();
  const noDevice = new Map<string, DevicePeerSnapshot>();
  let first = reconcilePeers({ now, specs, previous: empty, device: noDevice, presharedKey: psk, allowDownPeerBypass: false, harvestExtraEndpoints: true });
  const reconcileFirst = medianMs(() => {
    first = reconcilePeers({ now, specs, previous: empty, device: noDevice, presharedKey: psk, allowDownPeerBypass: false, harvestExtraEndpoints: true });
  }, runs);
  // steady state 30 s later: every peer handshook (1 s after the first pass chose its endpoint) and is up
  const previous = new Map(first.statuses.map((s) => [s.publicKey, s]));
  const device = new Map<string, DevicePeerSnapshot>(
    first.statuses.map((s) => [s.publicKey, { publicKey: s.publicKey, endpoint: s.lastUsedEndpoint, lastHandshakeTime: now + 1_000, receiveBytes: 1000, transmitBytes: 1000 }]),
  );
  let steady = first;
  const reconcileSteady = medianMs(() => {
    steady = reconcilePeers({ now: now + 30_000, specs, previous, device, presharedKey: psk, allowDownPeerBypass: false, harvestExtraEndpoints: true });
  }, runs);
  if (steady.statuses.some((s) => s.state !== 'up')) throw new Error('reconcile bench: steady state has peers that are not up');
  return { affiliates: n, buildPeerSpecs: build, reconcileFirst, reconcileSteady, specs: specs.length, devicePeers: steady.devicePeers.length };
}

// ---------------------------------------------------------------------------------------------- main

export interface ScaleReport {
  kind: 'kubespand-scale-bench';
  started: string;
  commit: string | null;
  machine: ReturnType<typeof machineInfo>;
  peers: number;
  hubs: HubFigure[];
  inProcess: InProcessFigure;
  reconcile: ReconcileFigure;
}

const mib = (m: ProcessMemory | null | undefined, f: 'rss' | 'peakRss' = 'rss'): string => (m ? `${(m[f] / 1048576).toFixed(1)}` : '–');
const ms = (v: number | null | undefined, d = 0): string => (v === null || v === undefined ? '–' : v.toFixed(d));

export function formatScale(r: ScaleReport): string {
  const lines: string[] = [];
  for (const h of r.hubs) {
    lines.push(`${h.impl} hub with ${h.peers} peers (netns, real UDP; peers in one node process)`);
    lines.push(`  RSS MiB: started ${mib(h.memory.started)}, configured ${mib(h.memory.configured)}, after handshakes ${mib(h.memory.afterHandshakes)}, peak ${mib(h.memory.afterHandshakes, 'peakRss')}`);
    lines.push(`  apply ${h.peers} peers via UAPI: ${ms(h.applyMs)} ms (hub CPU ${ms(h.applyCpuSeconds, 2)} s); keepalive-on set: ${ms(h.triggerApplyMs)} ms`);
    lines.push(`  handshakes confirmed: ${h.handshakes.completed}/${h.peers}; p50 ${ms(h.handshakes.p50Ms)} ms, p90 ${ms(h.handshakes.p90Ms)} ms, all ${ms(h.handshakes.lastMs)} ms; initiations the peers saw ${h.handshakes.initiationsSeen ?? '–'}; hub CPU ${ms(h.handshakeCpuSeconds, 2)} s`);
    lines.push(`  UAPI get with ${h.peers} peers: ${ms(h.getMs, 1)} ms, ${h.getBytes ?? '–'} bytes, ${h.getPeersWithHandshake ?? '–'} peers with a handshake`);
    for (const n of h.notes) lines.push(`  note: ${n}`);
  }
  const p = r.inProcess;
  lines.push(`in process: DeviceCore API apply of ${p.peers} peers ${ms(p.coreApplyMs, 1)} ms; ${p.completed}/${p.peers} in-memory handshakes in ${ms(p.handshakeWallMs)} ms CPU, ${ms(p.handshakeSimulatedMs)} ms simulated (${p.initiationsSent} initiations, ${p.cookieReplies} under-load cookie replies)`);
  const c = r.reconcile;
  lines.push(`peer controller, ${c.affiliates} affiliates: buildPeerSpecs ${ms(c.buildPeerSpecs.medianMs, 1)} ms, reconcilePeers first pass ${ms(c.reconcileFirst.medianMs, 1)} ms, steady state ${ms(c.reconcileSteady.medianMs, 1)} ms (medians)`);
  return lines.join('\n');
}


async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      peers: { type: 'string' },
      impl: { type: 'string', default: 'kubespand,wireguard-go' },
      timeout: { type: 'string' },
      quick: { type: 'boolean', default: false },
      'no-netns': { type: 'boolean', default: false },
      out: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const fail = (m: string): never => {
    process.stderr.write(`scale: ${m}\n`);
    process.exit(2);
  };
  const peers = values.peers !== undefined ? Number(values.peers) : values.quick ? 100 : 1000;
  if (!Number.isInteger(peers) || peers < 1 || peers > MAX_SCALE_PEERS) fail(`--peers: expected a whole number in 1..${MAX_SCALE_PEERS}, got ${JSON.stringify(values.peers)}`);
  const timeoutS = values.timeout !== undefined ? Number(values.timeout) : values.quick ? 30 : 90;
  if (!Number.isFinite(timeoutS) || timeoutS <= 0) fail(`--timeout: expected seconds > 0, got ${JSON.stringify(values.timeout)}`);
  const impls = values.impl.split(',').map((s) => s.trim()).filter(Boolean);
  for (const i of impls) if (i !== 'kubespand' && i !== 'wireguard-go') fail(`--impl: unknown implementation ${JSON.stringify(i)} (kubespand, wireguard-go)`);
  const log = (l: string): void => void process.stderr.write(l + '\n');
  const machine = machineInfo();
  log(`scale: ${peers} peers; ${describeMachine(machine)}`);
  const report: ScaleReport = { kind: 'kubespand-scale-bench', started: new Date().toISOString(), commit: gitHead(), machine, peers, hubs: [], inProcess: null as unknown as InProcessFigure, reconcile: null as unknown as ReconcileFigure };
  if (!values['no-netns']) {
    if (typeof process.getuid === 'function' && process.getuid() !== 0) fail('the netns part needs root; use --no-netns for the in-process figures only');
    if (!existsSync(SCALE_PEERS)) fail(`${SCALE_PEERS} is missing; run "npm run build:ts"`);
    for (const impl of impls as Impl[]) {
      log(`${impl} hub …`);
      report.hubs.push(await runHub(impl, peers, timeoutS, log));
    }
  }
  log('in process: DeviceCore apply and in-memory handshakes …');
  report.inProcess = inProcessHandshakes(peers);
  log('peer controller reconcile …');
  report.reconcile = reconcile(peers, values.quick ? 5 : 21);
  const out = values.out ?? RESULTS_DIR;
  mkdirSync(out, { recursive: true });
  const path = join(out, `${fileStamp()}-scale.json`);
  writeFileSync(path, JSON.stringify(report, null, 2) + '\n');
  if (values.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  else process.stdout.write(`${formatScale(report)}\nwrote ${path}\n`);
}

main().catch((err) => {
  process.stderr.write(`scale: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
