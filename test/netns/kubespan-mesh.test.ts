/**
 * KubeSpan end to end in network namespaces: the embedded discovery server and three kubespand nodes
 * on two bridges joined by a router, plus a Talos-shaped wireguard-go peer.
 *
 *        n1 (10.240.1.1)   n2 (10.240.1.2)          n3 (10.240.2.3)   wgo (10.240.2.4, Talos-shaped)
 *              \              /                           \              /
 *               ─── br1 (hub) ── 10.240.1.254 | 10.240.2.254 ── br2 (hub) ───
 *                       discovery server on hub 0.0.0.0:3000 (plaintext gRPC)
 *
 * Shows: every peer up; ping over the ULA and over node addresses, with proof the node-address traffic
 * went through the tunnel (WireGuard counters, and no ICMP on the bridge); a peer whose first
 * advertised endpoint is unreachable is reached by cycling to the next; allowDownPeerBypass on and off
 * with a stopped peer; a restarted node keeps identity and address and the mesh comes back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, sleep, Topology, type Spawned } from '../support/netns.js';
import { genKeyPair, REPO_ROOT, wgSet } from '../support/wg-impl.js';
import { kubespanPrefix, eui64Address } from '../../src/kubespan/identity.js';
import { meshNodeConfig } from '../../src/netns/mesh-config.js';

const BIN = join(REPO_ROOT, 'bin', 'kubespand');

interface Node {
  name: string;
  ns: string;
  ip: string;
  dir: string;
  config: string;
  socket: string;
  ifname: string;
  proc?: Spawned;
}

interface PeerStatusRow {
  id: string;
  label: string;
  state: string;
  endpoint: { address: string; port: number } | null;
  lastUsedEndpoint: { address: string; port: number } | null;
  lastEndpointChange: number;
}

let topo: Topology;
let hub: string;
let work: string;
const clusterId = randomBytes(32).toString('base64');
const clusterSecret = randomBytes(32).toString('base64');
const nodes: Record<string, Node> = {};
let firstIdentityOfN3: { address: string; publicKey: string };

function nodeConfig(n: Node, opts: { bypass?: boolean } = {}): string {
  return meshNodeConfig({
    clusterId,
    clusterSecret,
    discoveryEndpoint: 'http://10.240.1.254:3000/',
    nodeName: n.name,
    stateDir: `${n.dir}/state`,
    controlSocket: n.socket,
    interface: n.ifname,
    allowDownPeerBypass: opts.bypass ?? false,
    logLevel: 'debug',
  });
}

function startNode(n: Node, opts: { bypass?: boolean } = {}): Spawned {
  writeFileSync(n.config, nodeConfig(n, opts), { mode: 0o600 });
  n.proc = topo.spawn(n.ns, BIN, ['run', '--config', n.config]);
  return n.proc;
}

async function stopNode(n: Node): Promise<void> {
  await n.proc?.stop('SIGTERM', 10_000);
  n.proc = undefined;
}

function kubespand(n: Node, args: string[]): string {
  return topo.exec(n.ns, BIN, [...args, '--socket', n.socket]);
}

function statuses(n: Node): PeerStatusRow[] {
  return JSON.parse(kubespand(n, ['get', 'kubespanpeerstatuses', '-o', 'json'])) as PeerStatusRow[];
}

function identity(n: Node): { address: string; publicKey: string } {
  const row = (JSON.parse(kubespand(n, ['get', 'kubespanidentities', '-o', 'json'])) as { address: string; publicKey: string }[])[0]!;
  return { address: row.address, publicKey: row.publicKey };
}

async function allUp(n: Node, count: number, timeoutMs = 60_000): Promise<PeerStatusRow[]> {
  return eventually(() => {
    const s = statuses(n);
    return s.length === count && s.every((p) => p.state === 'up') ? s : false;
  }, timeoutMs, 1000);
}

function wgDumpPeer(n: Node, publicKey: string): { rx: number; tx: number; endpoint: string } {
  const lines = topo.exec(n.ns, 'wg', ['show', n.ifname, 'dump']).trim().split('\n').slice(1);
  for (const l of lines) {
    const f = l.split('\t');
    if (f[0] === publicKey) return { endpoint: f[2]!, rx: Number(f[5]), tx: Number(f[6]) };
  }
  throw new Error(`peer ${publicKey} not in wg show ${n.ifname} dump`);
}

function pingOk(ns: string, target: string, count = 3): boolean {
  try {
    topo.exec(ns, 'ping', ['-c', String(count), '-i', '0.2', '-W', '2', target], { timeoutMs: 20_000 });
    return true;
  } catch {
    return false;
  }
}

describe('KubeSpan mesh in network namespaces', () => {
  beforeAll(async () => {
    topo = new Topology('ksm');
    work = mkdtempSync(join(tmpdir(), 'ksm-'));
    topo.onDestroy(() => rmSync(work, { recursive: true, force: true }));
    hub = topo.netns('hub');
    topo.exec(hub, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    for (const [br, addr] of [['br1', '10.240.1.254/24'], ['br2', '10.240.2.254/24']] as const) {
      topo.exec(hub, 'ip', ['link', 'add', br, 'type', 'bridge']);
      topo.exec(hub, 'ip', ['addr', 'add', addr, 'dev', br]);
      topo.exec(hub, 'ip', ['link', 'set', br, 'up']);
    }
    const plan: [string, string, string][] = [
      ['n1', '10.240.1.1', 'br1'],
      ['n2', '10.240.1.2', 'br1'],
      ['n3', '10.240.2.3', 'br2'],
      ['wgo', '10.240.2.4', 'br2'],
    ];
    for (const [name, ip, br] of plan) {
      const ns = topo.netns(name);
      const { ifA, ifB } = topo.veth(ns, [`${ip}/24`], hub, []);
      topo.exec(hub, 'ip', ['link', 'set', ifB, 'master', br]);
      topo.exec(ns, 'ip', ['route', 'add', 'default', 'via', ip.replace(/\.\d+$/, '.254')]);
      const dir = join(work, name);
      mkdirSync(dir, { recursive: true });
      nodes[name] = { name, ns, ip, dir, config: join(dir, 'node.yaml'), socket: join(dir, 'control.sock'), ifname: `${topo.tag}${name}`.slice(0, 15) };
      void ifA;
    }
    const server = topo.spawn(hub, BIN, ['discovery', 'serve', '--listen', '0.0.0.0:3000']);
    await server.waitFor(/listening|serving/i, 15_000);
    for (const name of ['n1', 'n2', 'n3']) startNode(nodes[name]!);
    for (const name of ['n1', 'n2', 'n3']) await nodes[name]!.proc!.waitFor(/kubespand is running/, 30_000);
  }, 120_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  it('brings every peer up on every node', async () => {
    for (const name of ['n1', 'n2', 'n3']) {
      const s = await allUp(nodes[name]!, 2);
      expect(s.map((p) => p.label).sort()).toEqual(['n1', 'n2', 'n3'].filter((x) => x !== name));
    }
    firstIdentityOfN3 = identity(nodes.n3!);
  }, 90_000);

  it('carries traffic over the ULA and steers node-address traffic into the tunnel', async () => {
    const n1 = nodes.n1!;
    const n3 = nodes.n3!;
    const id3 = identity(n3);
    const ula3 = id3.address.split('/')[0]!;
    expect(pingOk(n1.ns, ula3)).toBe(true);

    // watch the bridge side of n3 for plaintext ICMP while n1 pings n3's node address
    const capture = topo.spawn(hub, 'tcpdump', ['-l', '-n', '-i', 'br2', 'icmp and host 10.240.1.1']);
    await sleep(1000);
    const before = wgDumpPeer(n1, id3.publicKey);
    expect(pingOk(n1.ns, n3.ip, 10)).toBe(true);
    const after = wgDumpPeer(n1, id3.publicKey);
    await sleep(500);
    await capture.stop('SIGINT');
    // 10 echo requests of 84 bytes, each padded and wrapped in at least 32 bytes of WireGuard
    expect(after.tx - before.tx).toBeGreaterThanOrEqual(10 * (84 + 32));
    expect(after.rx - before.rx).toBeGreaterThanOrEqual(10 * (84 + 32));
    expect(capture.output()).toMatch(/0 packets captured/);
  }, 60_000);

  it('meshes with a Talos-shaped wireguard-go peer, cycling past an unreachable first endpoint', async () => {
    const wgo = nodes.wgo!;
    const keys = genKeyPair();
    const mac = topo.exec(wgo.ns, 'cat', [`/sys/class/net/${topo.exec(wgo.ns, 'ls', ['/sys/class/net']).split(/\s+/).find((l) => l.startsWith('va'))}/address`]).trim();
    const ula = eui64Address(kubespanPrefix(clusterId), mac).split('/')[0]!;
    const proc = topo.spawn(wgo.ns, 'wireguard-go', ['-f', wgo.ifname], { env: { ...process.env, WG_PROCESS_FOREGROUND: '1' } });
    // (one full run had wireguard-go not answering `wg show` within 15 s while the three kubespand nodes
    // ran; the rerun passed. Wait longer, and say what wireguard-go printed if it still does not answer.)
    await eventually(() => {
      try {
        topo.exec(wgo.ns, 'wg', ['show', wgo.ifname]);
        return true;
      } catch {
        return false;
      }
    }, 30_000).catch((err: unknown) => {
      throw new Error(`wireguard-go (${wgo.ifname}) did not answer wg show within 30 s: ${(err as Error).message}; its output: ${proc.output().slice(-1500) || '(none)'}`);
    });
    // as Talos configures KubeSpan: port 51820, PSK = cluster secret, keepalive 25 s; no endpoints of its own
    const peers = ['n1', 'n2', 'n3'].map((name) => {
      const id = identity(nodes[name]!);
      return { publicKey: id.publicKey, presharedKey: clusterSecret, persistentKeepalive: 25, allowedIPs: [`${id.address.split('/')[0]}/128`, `${nodes[name]!.ip}/32`] };
    });
    wgSet(topo, wgo.ns, wgo.ifname, { privateKey: keys.privateKey, listenPort: 51820, peers });
    topo.exec(wgo.ns, 'ip', ['-6', 'addr', 'add', `${ula}/64`, 'dev', wgo.ifname, 'nodad']);
    topo.exec(wgo.ns, 'ip', ['link', 'set', wgo.ifname, 'mtu', '1420', 'up']);
    // publish its affiliate: the first endpoint (10.240.2.14) exists nowhere
    const spec = {
      endpoint: 'http://10.240.1.254:3000/',
      clusterId,
      clusterSecret,
      affiliate: { nodeId: 'talos-wgo', addresses: [wgo.ip, ula], hostname: 'wgo.test', nodename: 'wgo', machineType: 'worker', operatingSystem: 'Talos (v1.11.0)', kubespan: { publicKey: keys.publicKey, address: ula, additionalAddresses: [], excludeAdvertisedAddresses: [] } },
      endpoints: [{ address: '10.240.2.14', port: 51820 }, { address: wgo.ip, port: 51820 }],
    };
    topo.spawn(wgo.ns, process.execPath, [join(REPO_ROOT, 'test', 'support', 'publish-affiliate.mjs'), JSON.stringify(spec)]);
    const n1 = nodes.n1!;
    const row = await eventually(() => {
      const s = statuses(n1).find((p) => p.id === keys.publicKey);
      return s && s.state === 'up' ? s : false;
    }, 100_000, 1000);
    expect(row.lastUsedEndpoint).toEqual({ address: wgo.ip, port: 51820 });
    expect(pingOk(n1.ns, ula)).toBe(true);
    const dump = topo.exec(wgo.ns, 'wg', ['show', wgo.ifname, 'latest-handshakes']);
    expect(dump).toContain(identity(n1).publicKey);
  }, 150_000);

  it('forces traffic to a down peer into the tunnel by default, and bypasses it with allowDownPeerBypass', async () => {
    const n1 = nodes.n1!;
    const n3 = nodes.n3!;
    await stopNode(n3); // its affiliate stays in discovery until its TTL
    await stopNode(n1);
    startNode(n1, { bypass: false });
    await n1.proc!.waitFor(/kubespand is running/, 30_000);
    await eventually(() => statuses(n1).some((p) => p.label === 'n3'), 30_000, 500);
    expect(pingOk(n1.ns, n3.ip, 2)).toBe(false);
    await stopNode(n1);
    startNode(n1, { bypass: true });
    await n1.proc!.waitFor(/kubespand is running/, 30_000);
    await eventually(() => statuses(n1).some((p) => p.label === 'n3'), 30_000, 500);
    expect(pingOk(n1.ns, n3.ip, 2)).toBe(true);
  }, 120_000);

  it('restarts a node with the same identity and address, and the mesh comes back', async () => {
    const n3 = nodes.n3!;
    const n1 = nodes.n1!;
    startNode(n3);
    await n3.proc!.waitFor(/kubespand is running/, 30_000);
    const id = identity(n3);
    expect(id).toEqual(firstIdentityOfN3);
    await eventually(() => {
      const s = statuses(n1).find((p) => p.label === 'n3');
      return s?.state === 'up';
    }, 60_000, 1000);
    expect(pingOk(n1.ns, id.address.split('/')[0]!)).toBe(true);
  }, 120_000);
});
