/**
 * The throughput/latency/cost harness behind `npm run bench`. For each pair it builds two fresh
 * network namespaces joined by a veth, starts one WireGuard daemon per side exactly as the interop
 * bed does (`wireguard-go -f IF` / `kubespand device IF`, configured with `wg` and `ip`), and measures:
 *
 *   - time from spawning the daemons to the first echo reply through the fresh tunnel, and the first
 *     echo's own round trip (which carries the handshake);
 *   - ping RTT min/avg/max over N pings at 20 ms intervals (idle tunnel);
 *   - iperf3 TCP 1 stream a→b, 1 stream b→a (-R), 4 streams a→b, and UDP a→b at an offered rate above
 *     capacity (delivered rate and loss), each for `durationS`;
 *   - around each iperf3 run, each daemon's CPU seconds (utime+stime of all its threads from
 *     /proc/<pid>/stat) per GB the receiver got, and the host's busy share;
 *   - each daemon's peak RSS (VmHWM) after the run.
 *
 *        ns a (<tag>-a<n>)                                 ns b (<tag>-b<n>)
 *   [<tag>A<n>] 10.242.0.1/24  (tunnel, MTU 1420)     [<tag>B<n>] 10.242.0.2/24
 *        | UDP 51851                                        | UDP 51852
 *   [veth] 10.241.0.1/24   <------------------------>   [veth] 10.241.0.2/24
 *
 * Side a always initiates (only it has an endpoint for its peer) and is the iperf3 client, so
 * "a→b" is the direction a's daemon encrypts. Nothing here fails on a number: a step that cannot be
 * measured is recorded as null with a note, and the run goes on.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Topology, sleep, type Spawned } from '../../src/netns/topology.js';
import { parseIperfReport, parsePing, type IperfResult, type PingSummary } from './iperf.js';
import { KUBESPAND_BIN, PROFILED_MAIN, UAPI_DIR, CLI_MAIN } from './paths.js';
import { busyShare, hostCpu, processCpuSeconds, processMemory, processName, type ProcessMemory } from './proc.js';
import { summarizeProfile, type ProfileSummary } from './cpu-profile.js';

/** `kubespand-other` is a second kubespand build (`--other-build DIR`), for before/after figures from one run. */
export type Impl = 'wireguard-go' | 'kubespand' | 'kubespand-other';

export const PAIR_IDS = ['veth', 'wg-wg', 'ks-ks', 'other', 'ks-wg', 'wg-ks'] as const;
export type PairId = (typeof PAIR_IDS)[number];

export const PAIRS: Record<PairId, { label: string; a: Impl | null; b: Impl | null }> = {
  veth: { label: 'bare veth', a: null, b: null },
  'wg-wg': { label: 'wireguard-go↔wireguard-go', a: 'wireguard-go', b: 'wireguard-go' },
  'ks-ks': { label: 'kubespand↔kubespand', a: 'kubespand', b: 'kubespand' },
  other: { label: 'kubespand[other]↔kubespand[other]', a: 'kubespand-other', b: 'kubespand-other' },
  'ks-wg': { label: 'kubespand↔wireguard-go', a: 'kubespand', b: 'wireguard-go' },
  'wg-ks': { label: 'wireguard-go↔kubespand', a: 'wireguard-go', b: 'kubespand' },
};

/** The row every ratio is taken against. */
export const BASELINE: PairId = 'wg-wg';

export const TEST_IDS = ['tcp1', 'tcp1r', 'tcp4', 'udp'] as const;
export type TestId = (typeof TEST_IDS)[number];

export const TEST_LABELS: Record<TestId, string> = {
  tcp1: 'TCP 1 stream a→b',
  tcp1r: 'TCP 1 stream b→a',
  tcp4: 'TCP 4 streams a→b',
  udp: 'UDP a→b, offered above capacity',
};

export const ADDR = {
  outerA: '10.241.0.1',
  outerB: '10.241.0.2',
  tunnelA: '10.242.0.1',
  tunnelB: '10.242.0.2',
  portA: 51851,
  portB: 52852,
  mtu: 1420,
  iperfPort: 5201,
  /** UDP payload: 1372 + 8 (UDP) + 20 (IPv4) = 1400 bytes inside the 1420 MTU. */
  udpLength: 1372,
} as const;

export interface NetnsBenchOptions {
  durationS: number;
  /** Runs of each iperf3 figure; the best (highest receiver rate) is kept, all rates are recorded. */
  repeat: number;
  pingCount: number;
  /** iperf3 `-b` for the UDP test, e.g. "2G". */
  udpRate: string;
  pairs: PairId[];
  /** Also run a kubespand↔kubespand TCP 1-stream load with `node --cpu-prof` on both daemons. */
  profile: boolean;
  /** Where profiles are copied (`<stamp>-profile-{sender,receiver}.cpuprofile`); null = not kept. */
  profileOut: string | null;
  profileStamp: string;
  /** A second kubespand checkout (built) for the `other` pair, and its name in the tables. */
  otherBuild: { dir: string; label: string } | null;
  log: (line: string) => void;
}

/** The row label; the `other` pair carries the other build's name. */
export function pairLabel(id: PairId, otherLabel: string | null): string {
  return id === 'other' ? `kubespand[${otherLabel ?? 'other'}]↔kubespand[${otherLabel ?? 'other'}]` : PAIRS[id].label;
}

/** The entry script of a built kubespand checkout. */
export function otherBin(dir: string): string {
  return join(dir, 'bin', 'kubespand');
}

export interface CostFigure {
  cpuSeconds: number | null;
  cpuSecondsPerGB: number | null;
}

export interface TestFigure {
  test: TestId;
  iperf: IperfResult | null;
  /** Receiver's rate, Mbit/s (null when the test failed). */
  mbps: number | null;
  /** With --repeat N: every attempt's rate, in order; the figure is the attempt with the highest. */
  attemptsMbps: (number | null)[];
  a: CostFigure;
  b: CostFigure;
  /** Share of all host CPUs busy during the test, 0..1. */
  hostBusy: number | null;
  error: string | null;
}

export interface PairResult {
  id: PairId;
  label: string;
  implA: Impl | null;
  implB: Impl | null;
  /** Why a figure is missing (daemon did not start, no first reply, …); null when all went well. */
  notes: string[];
  /** Spawn → UAPI socket answering, ms, per daemon. */
  readyMs: { a: number | null; b: number | null };
  /** The first echo through the fresh tunnel: its round trip as ping saw it (includes the handshake). */
  firstReplyMs: number | null;
  /** Spawning both daemons → that first echo reply back (includes start-up and configuration). */
  startToReplyMs: number | null;
  ping: PingSummary | null;
  tests: Partial<Record<TestId, TestFigure>>;
  memory: { a: ProcessMemory | null; b: ProcessMemory | null };
}

export interface ProfileResult {
  notes: string[];
  mbps: number | null;
  /** Side a: kubespand encrypting (TUN → UDP). */
  sender: ProfileSummary | null;
  /** Side b: kubespand decrypting (UDP → TUN). */
  receiver: ProfileSummary | null;
  files: { sender: string | null; receiver: string | null };
}

// ---------------------------------------------------------------------------------------------- processes

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `cmd` inside `ns` to completion without blocking the event loop; never throws. */
function runIn(ns: string, cmd: string, args: string[], timeoutMs: number): Promise<RunResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', ns, cmd, ...args], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null) : 0;
      const extra = err && code === null ? `${err.message}\n` : '';
      resolve({ code, stdout: String(stdout), stderr: extra + String(stderr), ms: performance.now() - started });
    });
  });
}

function lastChars(s: string, n = 400): string {
  return s.slice(-n).replace(/\s+/g, ' ').trim();
}

interface Daemon {
  impl: Impl;
  ifname: string;
  proc: Spawned;
  /** The daemon's own pid (`ip netns exec` execs it, so this is the spawned pid once exec happened). */
  pid: number;
  /** performance.now() when its UAPI socket first answered. */
  readyAt: number;
}

function daemonCommand(impl: Impl, ifname: string, profileDir: string | null, other: string | null): { cmd: string; args: string[]; env: NodeJS.ProcessEnv } {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (impl === 'wireguard-go') return { cmd: 'wireguard-go', args: ['-f', ifname], env: { ...env, WG_PROCESS_FOREGROUND: '1' } };
  if (impl === 'kubespand-other') {
    if (other === null) throw new Error('the "other" pair needs --other-build DIR');
    return { cmd: otherBin(other), args: ['device', ifname], env };
  }
  if (profileDir !== null) {
    return { cmd: process.execPath, args: ['--cpu-prof', '--cpu-prof-dir', profileDir, PROFILED_MAIN, 'device', ifname], env };
  }
  return { cmd: KUBESPAND_BIN, args: ['device', ifname], env };
}

/** Spawns the daemon and resolves once its UAPI socket answers `wg show`; rejects with its output otherwise. */
async function startDaemon(topo: Topology, ns: string, ifname: string, impl: Impl, profileDir: string | null, other: string | null = null): Promise<Daemon> {
  const sock = join(UAPI_DIR, `${ifname}.sock`);
  if (existsSync(sock)) throw new Error(`${sock} already exists: another run uses interface name ${ifname}`);
  if (impl === 'kubespand' && !existsSync(CLI_MAIN) && !process.env.KSN_KUBESPAND_BIN) {
    throw new Error(`kubespand is not built (${CLI_MAIN} is missing); run "npm run build"`);
  }
  if (impl === 'kubespand-other' && other !== null && !existsSync(join(other, 'dist', 'src', 'cli', 'main.js'))) {
    throw new Error(`the other build is not built (${join(other, 'dist', 'src', 'cli', 'main.js')} is missing)`);
  }
  const { cmd, args, env } = daemonCommand(impl, ifname, profileDir, other);
  const proc = topo.spawn(ns, cmd, args, { env });
  topo.onDestroy(() => rmSync(sock, { force: true }));
  const pid = proc.child.pid;
  if (pid === undefined) throw new Error(`${impl}: spawn failed: ${proc.output()}`);
  let exitCode: number | null | undefined;
  void proc.exited().then((c) => (exitCode = c));
  const deadline = performance.now() + 20_000;
  for (;;) {
    if (exitCode !== undefined) throw new Error(`${impl} exited (code ${exitCode}) before serving ${sock}: ${lastChars(proc.output())}`);
    if (existsSync(sock)) {
      const r = await runIn(ns, 'wg', ['show', ifname], 5_000);
      if (r.code === 0 && processName(pid) !== 'ip') return { impl, ifname, proc, pid, readyAt: performance.now() };
    }
    if (performance.now() > deadline) throw new Error(`${impl} did not serve ${sock} within 20 s: ${lastChars(proc.output())}`);
    await sleep(20);
  }
}

export async function stopDaemon(d: Daemon, timeoutMs: number): Promise<void> {
  await d.proc.stop('SIGTERM', timeoutMs);
}

// ---------------------------------------------------------------------------------------------- configuration

interface Keys {
  privateA: string;
  publicA: string;
  privateB: string;
  publicB: string;
}

async function genKeys(): Promise<Keys> {
  const gen = (): Promise<string> => new Promise((res, rej) => execFile('wg', ['genkey'], (e, out) => (e ? rej(e) : res(String(out).trim()))));
  const pub = (priv: string): Promise<string> =>
    new Promise((res, rej) => {
      const c = execFile('wg', ['pubkey'], (e, out) => (e ? rej(e) : res(String(out).trim())));
      c.stdin?.end(priv + '\n');
    });
  const privateA = await gen();
  const privateB = await gen();
  return { privateA, publicA: await pub(privateA), privateB, publicB: await pub(privateB) };
}

/** `wg set` (private key through a 0600 file in a private directory, removed at once) and `ip` addresses. */
async function configure(topo: Topology, ns: string, ifname: string, privateKey: string, port: number, peer: string, peerTunnel: string, endpoint: string | null, tunnelAddr: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ksb-key-'));
  try {
    const keyFile = join(dir, 'key');
    writeFileSync(keyFile, privateKey + '\n', { mode: 0o600 });
    const args = ['set', ifname, 'private-key', keyFile, 'listen-port', String(port), 'peer', peer, 'allowed-ips', `${peerTunnel}/32`];
    if (endpoint) args.push('endpoint', endpoint);
    const r = await runIn(ns, 'wg', args, 10_000);
    if (r.code !== 0) throw new Error(`wg set ${ifname} failed: ${lastChars(r.stderr + r.stdout)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  topo.exec(ns, 'ip', ['addr', 'add', `${tunnelAddr}/24`, 'dev', ifname]);
  topo.exec(ns, 'ip', ['link', 'set', ifname, 'mtu', String(ADDR.mtu)]);
  topo.exec(ns, 'ip', ['link', 'set', ifname, 'up']);
}

// ---------------------------------------------------------------------------------------------- measurements

async function waitListening(ns: string, port: number, server: Spawned): Promise<void> {
  const deadline = performance.now() + 5_000;
  while (performance.now() < deadline) {
    const r = await runIn(ns, 'ss', ['-Htln', `sport = :${port}`], 3_000);
    if (r.stdout.trim() !== '') return;
    await sleep(30);
  }
  throw new Error(`iperf3 server did not listen on ${port}: ${lastChars(server.output())}`);
}

function cpuOf(pid: number | null): number | null {
  if (pid === null) return null;
  try {
    return processCpuSeconds(pid);
  } catch {
    return null;
  }
}

function cost(before: number | null, after: number | null, bytes: number | null): CostFigure {
  if (before === null || after === null) return { cpuSeconds: null, cpuSecondsPerGB: null };
  const cpuSeconds = after - before;
  return { cpuSeconds, cpuSecondsPerGB: bytes && bytes > 0 ? cpuSeconds / (bytes / 1e9) : null };
}

interface IperfTarget {
  clientNs: string;
  serverNs: string;
  address: string;
  pidA: number | null;
  pidB: number | null;
}

/**
 * One iperf3 figure, run `opts.repeat` times: the attempt with the highest receiver rate is kept (on a
 * shared host, the least disturbed one), every attempt's rate is recorded.
 */
async function iperfTest(topo: Topology, t: IperfTarget, test: TestId, opts: NetnsBenchOptions): Promise<TestFigure> {
  let best: TestFigure | null = null;
  const attempts: (number | null)[] = [];
  for (let i = 0; i < opts.repeat; i++) {
    const f = await iperfOnce(topo, t, test, opts);
    attempts.push(f.mbps);
    if (best === null || (f.mbps !== null && (best.mbps === null || f.mbps > best.mbps))) best = f;
  }
  best!.attemptsMbps = attempts;
  return best!;
}

async function iperfOnce(topo: Topology, t: IperfTarget, test: TestId, opts: NetnsBenchOptions): Promise<TestFigure> {
  const figure: TestFigure = { test, iperf: null, mbps: null, attemptsMbps: [], a: { cpuSeconds: null, cpuSecondsPerGB: null }, b: { cpuSeconds: null, cpuSecondsPerGB: null }, hostBusy: null, error: null };
  const port = ADDR.iperfPort;
  const server = topo.spawn(t.serverNs, 'iperf3', ['-s', '-1', '-B', t.address, '-p', String(port)]);
  try {
    await waitListening(t.serverNs, port, server);
    const args = ['-c', t.address, '-p', String(port), '-t', String(opts.durationS), '-J', '--connect-timeout', '3000'];
    if (test === 'tcp4') args.push('-P', '4');
    if (test === 'tcp1r') args.push('-R');
    if (test === 'udp') args.push('-u', '-b', opts.udpRate, '-l', String(ADDR.udpLength));
    const cpuA0 = cpuOf(t.pidA);
    const cpuB0 = cpuOf(t.pidB);
    const host0 = hostCpu();
    const r = await runIn(t.clientNs, 'iperf3', args, (opts.durationS + 25) * 1000);
    const host1 = hostCpu();
    const cpuA1 = cpuOf(t.pidA);
    const cpuB1 = cpuOf(t.pidB);
    figure.hostBusy = busyShare(host0, host1);
    try {
      const result = parseIperfReport(r.stdout);
      figure.iperf = result;
      figure.mbps = result.receivedBitsPerSecond / 1e6;
      figure.a = cost(cpuA0, cpuA1, result.receivedBytes);
      figure.b = cost(cpuB0, cpuB1, result.receivedBytes);
    } catch (err) {
      figure.error = `${(err as Error).message}${r.code !== 0 ? ` (exit ${r.code}${r.stderr ? `: ${lastChars(r.stderr, 200)}` : ''})` : ''}`;
    }
  } catch (err) {
    figure.error = (err as Error).message;
  } finally {
    await server.stop('SIGTERM', 2_000);
  }
  return figure;
}

export async function pingSummary(ns: string, address: string, count: number, intervalS: number, waitS: number): Promise<PingSummary> {
  const r = await runIn(ns, 'ping', ['-n', '-q', '-c', String(count), '-i', String(intervalS), '-W', String(waitS), address], (count * intervalS + waitS + 10) * 1000);
  return parsePing(r.stdout + r.stderr);
}

/** One echo with a long wait: the reply's time= includes the handshake the echo triggered. */
async function firstReply(ns: string, address: string): Promise<{ rttMs: number; at: number } | null> {
  const r = await runIn(ns, 'ping', ['-n', '-c', '1', '-W', '6', address], 15_000);
  const at = performance.now();
  const p = parsePing(r.stdout + r.stderr);
  const rtt = p.replies[0];
  return p.received > 0 && rtt !== undefined ? { rttMs: rtt, at } : null;
}

function safeMemory(d: Daemon | null): ProcessMemory | null {
  if (!d) return null;
  try {
    return processMemory(d.pid);
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------- one pair

export function emptyResult(id: PairId, otherLabel: string | null = null): PairResult {
  const p = PAIRS[id];
  return { id, label: pairLabel(id, otherLabel), implA: p.a, implB: p.b, notes: [], readyMs: { a: null, b: null }, firstReplyMs: null, startToReplyMs: null, ping: null, tests: {}, memory: { a: null, b: null } };
}

async function runVeth(topo: Topology, n: number, opts: NetnsBenchOptions): Promise<PairResult> {
  const result = emptyResult('veth');
  const nsA = topo.netns(`a${n}`);
  const nsB = topo.netns(`b${n}`);
  topo.veth(nsA, [`${ADDR.outerA}/24`], nsB, [`${ADDR.outerB}/24`]);
  result.ping = await pingSummary(nsA, ADDR.outerB, opts.pingCount, 0.02, 2).catch((err) => (result.notes.push(`ping: ${(err as Error).message}`), null));
  for (const test of TEST_IDS) {
    opts.log(`  ${result.label}: ${TEST_LABELS[test]} …`);
    const f = await iperfTest(topo, { clientNs: nsA, serverNs: nsB, address: ADDR.outerB, pidA: null, pidB: null }, test, opts);
    if (f.error) result.notes.push(`${test}: ${f.error}`);
    result.tests[test] = f;
  }
  return result;
}

export interface Tunnel {
  nsA: string;
  nsB: string;
  a: Daemon;
  b: Daemon;
}

/** Fresh namespaces, both daemons, keys, addresses; measures ready times and the first reply. */
/** Tunnel n's two namespaces joined by a veth with the outer addresses, and its interface names. */
export function tunnelHosts(topo: Topology, n: number): { nsA: string; nsB: string; ifA: string; ifB: string } {
  const nsA = topo.netns(`a${n}`);
  const nsB = topo.netns(`b${n}`);
  topo.veth(nsA, [`${ADDR.outerA}/24`], nsB, [`${ADDR.outerB}/24`]);
  return { nsA, nsB, ifA: `${topo.tag}A${n}`, ifB: `${topo.tag}B${n}` };
}

export async function buildTunnel(topo: Topology, n: number, implA: Impl, implB: Impl, result: PairResult, profileDir: string | null, other: string | null): Promise<Tunnel | null> {
  const { nsA, nsB, ifA, ifB } = tunnelHosts(topo, n);
  const keys = await genKeys();
  const t0 = performance.now();
  const [ra, rb] = await Promise.allSettled([startDaemon(topo, nsA, ifA, implA, profileDir, other), startDaemon(topo, nsB, ifB, implB, profileDir, other)]);
  if (ra.status === 'rejected' || rb.status === 'rejected') {
    for (const r of [ra, rb]) if (r.status === 'rejected') result.notes.push(`start: ${(r.reason as Error).message}`);
    for (const r of [ra, rb]) if (r.status === 'fulfilled') await stopDaemon(r.value, 5_000);
    return null;
  }
  const a = ra.value;
  const b = rb.value;
  result.readyMs = { a: a.readyAt - t0, b: b.readyAt - t0 };
  await configure(topo, nsA, ifA, keys.privateA, ADDR.portA, keys.publicB, ADDR.tunnelB, `${ADDR.outerB}:${ADDR.portB}`, ADDR.tunnelA);
  await configure(topo, nsB, ifB, keys.privateB, ADDR.portB, keys.publicA, ADDR.tunnelA, null, ADDR.tunnelB);
  const first = await firstReply(nsA, ADDR.tunnelB);
  if (first) {
    result.firstReplyMs = first.rttMs;
    result.startToReplyMs = first.at - t0;
  } else {
    result.notes.push('no reply to the first ping through the fresh tunnel within 6 s');
    // one more chance, so the rest of the row can still be measured
    if (!(await firstReply(nsA, ADDR.tunnelB))) {
      result.notes.push('tunnel never carried a ping: row skipped');
      await Promise.all([stopDaemon(a, 5_000), stopDaemon(b, 5_000)]);
      return null;
    }
  }
  return { nsA, nsB, a, b };
}

async function runTunnelPair(topo: Topology, id: PairId, n: number, opts: NetnsBenchOptions): Promise<PairResult> {
  const result = emptyResult(id, opts.otherBuild?.label ?? null);
  const { a: implA, b: implB } = PAIRS[id];
  if (!implA || !implB) throw new Error(`pair ${id} has no daemons`);
  const tunnel = await buildTunnel(topo, n, implA, implB, result, null, opts.otherBuild?.dir ?? null);
  if (!tunnel) return result;
  result.ping = await pingSummary(tunnel.nsA, ADDR.tunnelB, opts.pingCount, 0.02, 2).catch((err) => (result.notes.push(`ping: ${(err as Error).message}`), null));
  for (const test of TEST_IDS) {
    opts.log(`  ${result.label}: ${TEST_LABELS[test]} …`);
    const f = await iperfTest(topo, { clientNs: tunnel.nsA, serverNs: tunnel.nsB, address: ADDR.tunnelB, pidA: tunnel.a.pid, pidB: tunnel.b.pid }, test, opts);
    if (f.error) result.notes.push(`${test}: ${f.error}`);
    result.tests[test] = f;
  }
  result.memory = { a: safeMemory(tunnel.a), b: safeMemory(tunnel.b) };
  await Promise.all([stopDaemon(tunnel.a, 5_000), stopDaemon(tunnel.b, 5_000)]);
  return result;
}

/** kubespand↔kubespand under `node --cpu-prof`, TCP 1 stream a→b, then the top self-time functions of each side. */
async function runProfile(topo: Topology, n: number, opts: NetnsBenchOptions): Promise<ProfileResult> {
  const out: ProfileResult = { notes: [], mbps: null, sender: null, receiver: null, files: { sender: null, receiver: null } };
  if (!existsSync(PROFILED_MAIN)) {
    out.notes.push(`${PROFILED_MAIN} is missing; run "npm run build:ts"`);
    return out;
  }
  if (process.env.KSN_KUBESPAND_BIN) out.notes.push(`the profile runs this checkout's build (${CLI_MAIN}), not KSN_KUBESPAND_BIN`);
  const dirA = mkdtempSync(join(tmpdir(), 'ksb-prof-a-'));
  const dirB = mkdtempSync(join(tmpdir(), 'ksb-prof-b-'));
  topo.onDestroy(() => {
    rmSync(dirA, { recursive: true, force: true });
    rmSync(dirB, { recursive: true, force: true });
  });
  const nsA = topo.netns(`a${n}`);
  const nsB = topo.netns(`b${n}`);
  topo.veth(nsA, [`${ADDR.outerA}/24`], nsB, [`${ADDR.outerB}/24`]);
  const ifA = `${topo.tag}A${n}`;
  const ifB = `${topo.tag}B${n}`;
  let a: Daemon | null = null;
  let b: Daemon | null = null;
  try {
    const keys = await genKeys();
    [a, b] = await Promise.all([startDaemon(topo, nsA, ifA, 'kubespand', dirA), startDaemon(topo, nsB, ifB, 'kubespand', dirB)]);
    await configure(topo, nsA, ifA, keys.privateA, ADDR.portA, keys.publicB, ADDR.tunnelB, `${ADDR.outerB}:${ADDR.portB}`, ADDR.tunnelA);
    await configure(topo, nsB, ifB, keys.privateB, ADDR.portB, keys.publicA, ADDR.tunnelA, null, ADDR.tunnelB);
    if (!(await firstReply(nsA, ADDR.tunnelB))) throw new Error('no ping through the profiled tunnel');
    opts.log('  profile: kubespand↔kubespand, TCP 1 stream a→b under node --cpu-prof …');
    const f = await iperfTest(topo, { clientNs: nsA, serverNs: nsB, address: ADDR.tunnelB, pidA: a.pid, pidB: b.pid }, 'tcp1', opts);
    if (f.error) out.notes.push(`tcp1: ${f.error}`);
    out.mbps = f.mbps;
  } catch (err) {
    out.notes.push((err as Error).message);
  }
  // a clean exit writes the profile: SIGTERM, then the wrapper calls process.exit
  await Promise.all([a ? stopDaemon(a, 20_000) : null, b ? stopDaemon(b, 20_000) : null]);
  for (const [side, dir] of [['sender', dirA], ['receiver', dirB]] as const) {
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) {
      out.notes.push(`${side}: no .cpuprofile written in ${dir}`);
      continue;
    }
    const text = readFileSync(join(dir, file), 'utf8');
    try {
      out[side] = summarizeProfile(JSON.parse(text));
    } catch (err) {
      out.notes.push(`${side}: profile unreadable: ${(err as Error).message}`);
    }
    if (opts.profileOut) {
      const dest = join(opts.profileOut, `${opts.profileStamp}-profile-${side}.cpuprofile`);
      writeFileSync(dest, text);
      out.files[side] = dest;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------- the run

export interface NetnsBenchResult {
  /** The namespace/interface tag of this run (`ksb<pid>`): nothing with it survives the run. */
  tag: string;
  pairs: PairResult[];
  profile: ProfileResult | null;
}

/**
 * Runs every requested pair in order, each in its own namespaces, and the optional profile. The
 * topology is destroyed at the end, on error, and (via `onSignal`) on SIGINT/SIGTERM.
 */
export async function runNetnsBench(opts: NetnsBenchOptions): Promise<NetnsBenchResult> {
  const topo = new Topology('ksb');
  const onSignal = (signal: NodeJS.Signals): void => {
    opts.log(`bench: ${signal}, cleaning up`);
    void topo.destroy().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const result: NetnsBenchResult = { tag: topo.tag, pairs: [], profile: null };
  try {
    let n = 0;
    for (const id of opts.pairs) {
      n++;
      opts.log(`${pairLabel(id, opts.otherBuild?.label ?? null)} …`);
      try {
        result.pairs.push(id === 'veth' ? await runVeth(topo, n, opts) : await runTunnelPair(topo, id, n, opts));
      } catch (err) {
        const r = emptyResult(id, opts.otherBuild?.label ?? null);
        r.notes.push(`harness error: ${(err as Error).message}`);
        result.pairs.push(r);
      }
    }
    if (opts.profile) {
      n++;
      result.profile = await runProfile(topo, n, opts).catch((err) => ({ notes: [`harness error: ${(err as Error).message}`], mbps: null, sender: null, receiver: null, files: { sender: null, receiver: null } }));
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await topo.destroy();
  }
  return result;
}
