/**
 * WireGuard implementations under test, started and configured the way wireguard-go's tests/netns.sh does
 * it: the daemon in the foreground inside a namespace, then `wg set` over the UAPI socket and `ip` for the
 * addresses. kubespand is driven with exactly the same commands as wireguard-go, so one test body runs
 * over any pairing of the two.
 *
 * The UAPI socket directory (/var/run/wireguard) is on the host filesystem, not per namespace, so
 * interface names must be unique across every namespace of a run: use `ifName()`, which carries the
 * topology's tag.
 *
 * Keys reach `wg` through a 0600 file in a private 0700 directory that is removed right after the call
 * (node's child stdin is a socket, which `wg` cannot fopen as /dev/stdin); they never appear on a command
 * line or in an error message.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sh, sleep, type Spawned, type Topology } from './netns.js';

export type WgImpl = 'wireguard-go' | 'kubespand';

export const WG_IMPLS: readonly WgImpl[] = ['wireguard-go', 'kubespand'] as const;

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The kubespand executable; KSN_KUBESPAND_BIN points the bed at another build (e.g. a second checkout). */
export const KUBESPAND_BIN = process.env.KSN_KUBESPAND_BIN || join(REPO_ROOT, 'bin', 'kubespand');
/** Where the UAPI sockets live (host filesystem, shared by all namespaces). */
export const UAPI_DIR = '/var/run/wireguard';

export function uapiSocketPath(ifname: string): string {
  return join(UAPI_DIR, `${ifname}.sock`);
}

/**
 * True when the compiled `kubespand device` command exists. Tests do not skip on false: the kubespand
 * cases run and fail with startWg's message; the bench uses this to print a "not built" row instead.
 */
export function kubespandBuilt(): boolean {
  if (process.env.KSN_KUBESPAND_BIN) return existsSync(process.env.KSN_KUBESPAND_BIN);
  return existsSync(join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js')) && existsSync(join(REPO_ROOT, 'dist', 'src', 'cli', 'device.js'));
}

/**
 * The Node.js a running daemon executes on: the binary behind `/proc/PID/exe` (`ip netns exec` and
 * `#!/usr/bin/env node` both exec in place, so the spawned pid is the daemon's) and that binary's `-v`.
 * The LTS step of scripts/test.sh relies on this to show the daemon really ran on the Node it put first in PATH.
 */
export function nodeVersionOf(pid: number): { exe: string; version: string } {
  const exe = readlinkSync(`/proc/${pid}/exe`);
  const r = spawnSync(`/proc/${pid}/exe`, ['-v'], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`${exe} -v (pid ${pid}) failed: ${r.error?.message ?? r.stderr}`);
  return { exe, version: r.stdout.trim() };
}

/**
 * An interface name unique to this run: `<topology tag><role><n>`, e.g. `ksn4242A1`. Linux limits names to
 * 15 bytes; the name is checked here rather than failing later inside `ip`.
 */
export function ifName(topo: Topology, role: string, n: number): string {
  const name = `${topo.tag}${role}${n}`;
  if (name.length > 15) throw new Error(`interface name "${name}" is longer than 15 bytes (tag ${topo.tag}, role ${role}, n ${n})`);
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new Error(`interface name "${name}" has characters other than [A-Za-z0-9_.-]`);
  return name;
}

/** The command line that runs `impl` in the foreground for `ifname`. */
export function implCommand(impl: WgImpl, ifname: string): { cmd: string; args: string[]; env: Record<string, string> } {
  switch (impl) {
    case 'wireguard-go':
      return { cmd: 'wireguard-go', args: ['-f', ifname], env: { WG_PROCESS_FOREGROUND: '1' } };
    case 'kubespand':
      return { cmd: KUBESPAND_BIN, args: ['device', ifname], env: {} };
    default: {
      const never: never = impl;
      throw new Error(`impl: unknown WireGuard implementation "${String(never)}"`);
    }
  }
}

export interface StartOptions {
  /** LOG_LEVEL for the daemon (both implementations accept `debug`); default: the runner's LOG_LEVEL, else unset. */
  logLevel?: string;
  /** How long to wait for the UAPI socket and a `wg show` answer. */
  timeoutMs?: number;
}

/**
 * Starts `impl` for `ifname` inside `ns` and resolves once `/var/run/wireguard/<ifname>.sock` exists and
 * `wg show <ifname>` answers from inside the namespace. The process belongs to `topo` (killed by destroy);
 * a stale socket left by a killed daemon is removed by destroy too. Rejects with the daemon's output if it
 * exits first or does not become ready in time.
 */
export async function startWg(topo: Topology, ns: string, ifname: string, impl: WgImpl, opts: StartOptions = {}): Promise<Spawned> {
  const sock = uapiSocketPath(ifname);
  if (existsSync(sock)) throw new Error(`startWg: ${sock} already exists; another run uses interface name ${ifname}`);
  const { cmd, args, env } = implCommand(impl, ifname);
  const logLevel = opts.logLevel ?? process.env.LOG_LEVEL;
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  if (logLevel) childEnv.LOG_LEVEL = logLevel;
  else delete childEnv.LOG_LEVEL;
  const proc = topo.spawn(ns, cmd, args, { env: childEnv });
  topo.onDestroy(() => rmSync(sock, { force: true }));
  await waitForUapi(topo, ns, ifname, proc, impl, opts.timeoutMs ?? 15_000);
  return proc;
}

/**
 * Resolves once `proc` serves `/var/run/wireguard/<ifname>.sock` and `wg show <ifname>` answers inside
 * `ns`; rejects with the process output if it exits first or is not ready within `timeoutMs`.
 */
export async function waitForUapi(topo: Topology, ns: string, ifname: string, proc: Spawned, what: string, timeoutMs = 15_000): Promise<void> {
  const sock = uapiSocketPath(ifname);
  let exitCode: number | null | undefined;
  void proc.exited().then((c) => (exitCode = c));
  const started = Date.now();
  let lastErr = '';
  for (;;) {
    if (exitCode !== undefined) {
      throw new Error(`${what} for ${ifname} in ${ns} exited (code ${exitCode}) before serving ${sock}: ${proc.output().slice(-2000).trim() || '(no output)'}`);
    }
    if (existsSync(sock)) {
      try {
        topo.exec(ns, 'wg', ['show', ifname], { timeoutMs: 5_000 });
        return;
      } catch (err) {
        lastErr = (err as Error).message;
      }
    }
    if (Date.now() - started > timeoutMs) {
      throw new Error(
        `${what} for ${ifname} in ${ns} not ready after ${timeoutMs} ms (socket ${existsSync(sock) ? 'present' : 'missing'}` +
          `${lastErr ? `, last wg error: ${lastErr}` : ''}): ${proc.output().slice(-2000).trim() || '(no output)'}`,
      );
    }
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------------------------- keys

/** A Curve25519 key pair as `wg` prints it (standard base64, 44 characters). */
export interface WgKeyPair {
  privateKey: string;
  publicKey: string;
}

export function genKeyPair(): WgKeyPair {
  const privateKey = sh('wg', ['genkey']).trim();
  const publicKey = sh('wg', ['pubkey'], { input: privateKey + '\n' }).trim();
  return { privateKey, publicKey };
}

export function genPsk(): string {
  return sh('wg', ['genpsk']).trim();
}

// ---------------------------------------------------------------------------------------------- configuration

export interface WgPeerConfig {
  publicKey: string;
  presharedKey?: string;
  /** `a.b.c.d:port` or `[v6]:port`; omit to make this side a pure responder for the peer. */
  endpoint?: string;
  allowedIPs: string[];
  /** Seconds; 0 or undefined = off. */
  persistentKeepalive?: number;
}

export interface WgDeviceConfig {
  privateKey: string;
  listenPort?: number;
  fwmark?: number;
  peers: WgPeerConfig[];
}

/** Runs `fn` with the path of a 0600 file holding `secret`; the file and its directory are gone afterwards. */
export function withSecretFile<T>(secret: string, fn: (path: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'ksn-key-'));
  try {
    const path = join(dir, 'key');
    writeFileSync(path, secret + '\n', { mode: 0o600 });
    return fn(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `wg set IF private-key F [listen-port P] [fwmark M]`, then one `wg set IF peer …` per peer. */
export function wgSet(topo: Topology, ns: string, ifname: string, cfg: WgDeviceConfig): void {
  withSecretFile(cfg.privateKey, (keyFile) => {
    const args = ['set', ifname, 'private-key', keyFile];
    if (cfg.listenPort !== undefined) args.push('listen-port', String(cfg.listenPort));
    if (cfg.fwmark !== undefined) args.push('fwmark', String(cfg.fwmark));
    topo.exec(ns, 'wg', args);
  });
  for (const peer of cfg.peers) wgSetPeer(topo, ns, ifname, peer);
}

/** Adds or updates one peer at run time (`wg set IF peer PUB …`). */
export function wgSetPeer(topo: Topology, ns: string, ifname: string, peer: WgPeerConfig): void {
  const run = (pskFile?: string): void => {
    const args = ['set', ifname, 'peer', peer.publicKey];
    if (pskFile !== undefined) args.push('preshared-key', pskFile);
    if (peer.endpoint !== undefined) args.push('endpoint', peer.endpoint);
    if (peer.persistentKeepalive !== undefined) args.push('persistent-keepalive', String(peer.persistentKeepalive));
    args.push('allowed-ips', peer.allowedIPs.join(','));
    topo.exec(ns, 'wg', args);
  };
  if (peer.presharedKey !== undefined) withSecretFile(peer.presharedKey, run);
  else run();
}

/** `wg set IF listen-port P` alone (the private key and peers stay as they are). */
export function wgSetListenPort(topo: Topology, ns: string, ifname: string, port: number): void {
  topo.exec(ns, 'wg', ['set', ifname, 'listen-port', String(port)]);
}

export function wgRemovePeer(topo: Topology, ns: string, ifname: string, publicKey: string): void {
  topo.exec(ns, 'wg', ['set', ifname, 'peer', publicKey, 'remove']);
}

/** `ip addr add` for each CIDR (IPv6 with nodad, so it is usable at once), optional MTU, then link up. */
export function ipUp(topo: Topology, ns: string, ifname: string, addrs: string[], opts: { mtu?: number } = {}): void {
  for (const a of addrs) topo.exec(ns, 'ip', ['addr', 'add', a, 'dev', ifname, ...(a.includes(':') ? ['nodad'] : [])]);
  if (opts.mtu !== undefined) topo.exec(ns, 'ip', ['link', 'set', ifname, 'mtu', String(opts.mtu)]);
  topo.exec(ns, 'ip', ['link', 'set', ifname, 'up']);
}

// ---------------------------------------------------------------------------------------------- wg show dump

export interface WgDumpPeer {
  publicKey: string;
  /** True when a preshared key is set (the dump prints it; the key itself is not kept here). */
  hasPresharedKey: boolean;
  /** `a.b.c.d:port` / `[v6]:port`, or null when the peer has no endpoint yet. */
  endpoint: string | null;
  allowedIPs: string[];
  /** Unix seconds of the latest handshake; 0 = never. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  /** Seconds, or null when off. */
  persistentKeepalive: number | null;
}

export interface WgDump {
  /** The interface's public key; the private key in the dump's first line is deliberately not kept. */
  publicKey: string | null;
  hasPrivateKey: boolean;
  listenPort: number;
  /** null when off. */
  fwmark: number | null;
  peers: WgDumpPeer[];
}

function dumpInt(field: string, value: string | undefined, line: number): number {
  if (value === undefined || !/^\d+$/.test(value)) throw new Error(`wg dump line ${line}: ${field} "${value ?? '(missing)'}" is not a decimal number`);
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new Error(`wg dump line ${line}: ${field} ${value} is not a safe integer`);
  return n;
}

/** Parses the output of `wg show IF dump` (wg(8) "dump" format, TAB separated). */
export function parseWgDump(text: string): WgDump {
  const lines = text.split('\n').filter((l) => l.length > 0);
  const head = lines[0]?.split('\t');
  if (!head || head.length !== 4) throw new Error(`wg dump line 1: expected 4 TAB-separated fields, got ${head?.length ?? 0}`);
  const [priv, pub, port, mark] = head as [string, string, string, string];
  let fwmark: number | null = null;
  if (mark !== 'off') {
    if (!/^0x[0-9a-f]+$/i.test(mark)) throw new Error(`wg dump line 1: fwmark "${mark}" is neither "off" nor hex`);
    fwmark = Number.parseInt(mark.slice(2), 16);
  }
  const dump: WgDump = {
    publicKey: pub === '(none)' ? null : pub,
    hasPrivateKey: priv !== '(none)',
    listenPort: dumpInt('listen-port', port, 1),
    fwmark,
    peers: [],
  };
  lines.slice(1).forEach((line, i) => {
    const n = i + 2;
    const f = line.split('\t');
    if (f.length !== 8) throw new Error(`wg dump line ${n}: expected 8 TAB-separated peer fields, got ${f.length}`);
    const [pk, psk, endpoint, allowed, hs, rx, tx, ka] = f as [string, string, string, string, string, string, string, string];
    dump.peers.push({
      publicKey: pk,
      hasPresharedKey: psk !== '(none)',
      endpoint: endpoint === '(none)' ? null : endpoint,
      allowedIPs: allowed === '(none)' ? [] : allowed.split(','),
      latestHandshake: dumpInt('latest-handshake', hs, n),
      rxBytes: dumpInt('transfer-rx', rx, n),
      txBytes: dumpInt('transfer-tx', tx, n),
      persistentKeepalive: ka === 'off' ? null : dumpInt('persistent-keepalive', ka, n),
    });
  });
  return dump;
}

export function wgDump(topo: Topology, ns: string, ifname: string): WgDump {
  return parseWgDump(topo.exec(ns, 'wg', ['show', ifname, 'dump']));
}

export function findPeer(dump: WgDump, publicKey: string): WgDumpPeer | undefined {
  return dump.peers.find((p) => p.publicKey === publicKey);
}

/** The peer's line from `wg show IF dump`, or a clear error listing which peers the interface does have. */
export function dumpPeer(topo: Topology, ns: string, ifname: string, publicKey: string): WgDumpPeer {
  const dump = wgDump(topo, ns, ifname);
  const peer = findPeer(dump, publicKey);
  if (!peer) throw new Error(`${ifname}: peer ${publicKey} not in wg show dump (peers: ${dump.peers.map((p) => p.publicKey).join(', ') || 'none'})`);
  return peer;
}

// ---------------------------------------------------------------------------------------------- kernel drop counters

/**
 * Datagrams the kernel of `ns` dropped on the way to a UDP socket (Udp InErrors + Udp6 InErrors, which
 * include full receive buffers) plus packets dropped on receive by `dev` if given. A WireGuard sender
 * counts a datagram in tx_bytes before such a drop, the receiver never sees it in rx_bytes: this is the
 * honest bound for "rx ≈ the other side's tx" under load.
 */
export function kernelRxDrops(topo: Topology, ns: string, dev?: string): number {
  const snmp = topo.exec(ns, 'cat', ['/proc/net/snmp']).split('\n').filter((l) => l.startsWith('Udp: '));
  const [names, values] = [snmp[0]?.split(/\s+/) ?? [], snmp[1]?.split(/\s+/) ?? []];
  const idx = names.indexOf('InErrors');
  let drops = idx >= 0 ? Number(values[idx] ?? 0) : 0;
  const udp6 = /^Udp6InErrors\s+(\d+)/m.exec(topo.exec(ns, 'cat', ['/proc/net/snmp6']));
  if (udp6) drops += Number(udp6[1]);
  if (dev !== undefined) drops += Number(topo.exec(ns, 'cat', [`/sys/class/net/${dev}/statistics/rx_dropped`]).trim());
  return drops;
}

// ---------------------------------------------------------------------------------------------- the pair topology

/**
 * Addresses of the two-namespace bed (docs/interop.md draws it):
 *
 *     ns a                                  ns b
 *     [IF a] 10.232.0.1/24 fd32::1/64       [IF b] 10.232.0.2/24 fd32::2/64     (tunnel)
 *       |  UDP                                 |  UDP
 *     [veth] 10.231.0.1/24 fd31::1/64  <--->  [veth] 10.231.0.2/24 fd31::2/64   (outer)
 */
export const BED = {
  a: { outer4: '10.231.0.1', outer6: 'fd31::1', tunnel4: '10.232.0.1', tunnel6: 'fd32::1', listenPort: 51831 },
  b: { outer4: '10.231.0.2', outer6: 'fd31::2', tunnel4: '10.232.0.2', tunnel6: 'fd32::2', listenPort: 51832 },
  outerPrefix4: 24,
  outerPrefix6: 64,
  tunnelPrefix4: 24,
  tunnelPrefix6: 64,
} as const;

export interface PairSide {
  role: 'a' | 'b';
  impl: WgImpl;
  ns: string;
  /** veth name inside `ns`. */
  veth: string;
  ifname: string;
  keys: WgKeyPair;
  listenPort: number;
  outer4: string;
  outer6: string;
  tunnel4: string;
  tunnel6: string;
  proc: Spawned;
}

export interface Pair {
  a: PairSide;
  b: PairSide;
  /** The side that was given an endpoint for its peer (the other side learns it from the first handshake). */
  initiator: 'a' | 'b';
}

export interface PairOptions {
  implA: WgImpl;
  implB: WgImpl;
  /** Only this side gets an endpoint for its peer, so only it can start the first handshake. */
  initiator: 'a' | 'b';
  /** Distinguishes several pairs in one topology (namespace and interface names). */
  n?: number;
  presharedKey?: string;
  start?: StartOptions;
}

/**
 * Builds the bed: two namespaces joined by a veth, one WireGuard device per side (started with startWg),
 * keys, listen ports, peers (endpoint on the initiator only), tunnel addresses, links up.
 */
export async function createPair(topo: Topology, opts: PairOptions): Promise<Pair> {
  const n = opts.n ?? 1;
  const nsA = topo.netns(`a${n}`);
  const nsB = topo.netns(`b${n}`);
  const { ifA, ifB } = topo.veth(
    nsA,
    [`${BED.a.outer4}/${BED.outerPrefix4}`, `${BED.a.outer6}/${BED.outerPrefix6}`],
    nsB,
    [`${BED.b.outer4}/${BED.outerPrefix4}`, `${BED.b.outer6}/${BED.outerPrefix6}`],
  );
  const ifnameA = ifName(topo, 'A', n);
  const ifnameB = ifName(topo, 'B', n);
  // start both before configuring either, so a failure to start shows up before any keys are made
  const [procA, procB] = await Promise.all([
    startWg(topo, nsA, ifnameA, opts.implA, opts.start),
    startWg(topo, nsB, ifnameB, opts.implB, opts.start),
  ]);
  const a: PairSide = { role: 'a', impl: opts.implA, ns: nsA, veth: ifA, ifname: ifnameA, keys: genKeyPair(), listenPort: BED.a.listenPort, outer4: BED.a.outer4, outer6: BED.a.outer6, tunnel4: BED.a.tunnel4, tunnel6: BED.a.tunnel6, proc: procA };
  const b: PairSide = { role: 'b', impl: opts.implB, ns: nsB, veth: ifB, ifname: ifnameB, keys: genKeyPair(), listenPort: BED.b.listenPort, outer4: BED.b.outer4, outer6: BED.b.outer6, tunnel4: BED.b.tunnel4, tunnel6: BED.b.tunnel6, proc: procB };
  for (const [self, other] of [[a, b], [b, a]] as const) {
    const peer: WgPeerConfig = {
      publicKey: other.keys.publicKey,
      allowedIPs: [`${other.tunnel4}/32`, `${other.tunnel6}/128`],
    };
    if (opts.presharedKey !== undefined) peer.presharedKey = opts.presharedKey;
    if (self.role === opts.initiator) peer.endpoint = `${other.outer4}:${other.listenPort}`;
    wgSet(topo, self.ns, self.ifname, { privateKey: self.keys.privateKey, listenPort: self.listenPort, peers: [peer] });
    ipUp(topo, self.ns, self.ifname, [`${self.tunnel4}/${BED.tunnelPrefix4}`, `${self.tunnel6}/${BED.tunnelPrefix6}`]);
  }
  return { a, b, initiator: opts.initiator };
}

/** The two sides as [initiator, responder]. */
export function initiatorFirst(pair: Pair): [PairSide, PairSide] {
  return pair.initiator === 'a' ? [pair.a, pair.b] : [pair.b, pair.a];
}

export interface PingResult {
  transmitted: number;
  received: number;
  /** Average round trip in milliseconds, or null when nothing came back. */
  avgRttMs: number | null;
  output: string;
}

/**
 * Pings `dst` from inside `ns` and returns the counts; never throws for loss (ping exits 1 then), only when
 * ping's summary cannot be read.
 */
export function ping(topo: Topology, ns: string, dst: string, opts: { count?: number; intervalS?: number; waitS?: number; size?: number } = {}): PingResult {
  const count = opts.count ?? 3;
  const size = opts.size !== undefined ? ['-s', String(opts.size)] : [];
  const intervalS = opts.intervalS ?? 0.2;
  const waitS = opts.waitS ?? 2;
  const r = spawnSync('ip', ['netns', 'exec', ns, 'ping', '-n', ...size, '-c', String(count), '-i', String(intervalS), '-W', String(waitS), dst], {
    encoding: 'utf8',
    timeout: (count * intervalS + waitS + 5) * 1000,
  });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`;
  const m = /(\d+) packets transmitted, (\d+) received/.exec(output);
  if (!m) throw new Error(`ping ${dst} in ${ns}: no summary in output: ${output.slice(-500)}`);
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(output);
  return { transmitted: Number(m[1]), received: Number(m[2]), avgRttMs: rtt ? Number(rtt[1]) : null, output };
}
