/**
 * Shared shape of the operations tests (ops-*.test.ts): a hub namespace with a bridge and the built-in
 * discovery server, and KubeSpan nodes on that bridge, each with its own config file, state directory
 * and control socket under one temporary directory. Everything is removed by `destroy()`.
 *
 *     n1 (10.246.0.1)   n2 (10.246.0.2)   …
 *            \               /
 *             ── br0 (hub) ── 10.246.0.254 and 10.246.0.253, discovery on 0.0.0.0:3000
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { eventually, Topology, type Spawned } from '../support/netns.js';
import { REPO_ROOT } from '../support/wg-impl.js';

export const BIN = join(REPO_ROOT, 'bin', 'kubespand');
export const HUB_IP = '10.246.0.254';
export const HUB_IP2 = '10.246.0.253';

export interface OpsNode {
  name: string;
  ns: string;
  ip: string;
  dir: string;
  config: string;
  socket: string;
  stateDir: string;
  ifname: string;
  proc?: Spawned;
}

export interface PeerStatusRow {
  id: string;
  label: string;
  state: string;
  endpoint: { address: string; port: number } | null;
  receiveBytes: number;
  transmitBytes: number;
  lastHandshakeTime: number;
}

export interface NodeConfigOptions {
  discoveryEndpoint?: string;
  kubespan?: Record<string, unknown>;
  kubespand?: Record<string, unknown>;
  env?: Record<string, string>;
  cluster?: Record<string, unknown>;
}

export class OpsMesh {
  readonly topo: Topology;
  readonly hub: string;
  readonly work: string;
  readonly clusterId = randomBytes(24).toString('base64');
  readonly clusterSecret = randomBytes(32).toString('base64');
  readonly nodes: Record<string, OpsNode> = {};
  server?: Spawned;

  /** `baseDir`: where the work directory goes (default the OS temp dir). */
  constructor(prefix: string, baseDir = tmpdir()) {
    this.topo = new Topology(prefix);
    this.work = mkdtempSync(join(baseDir, `${prefix}-`));
    this.topo.onDestroy(() => rmSync(this.work, { recursive: true, force: true }));
    this.hub = this.topo.netns('hub');
    this.topo.exec(this.hub, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
    this.topo.exec(this.hub, 'ip', ['addr', 'add', `${HUB_IP}/24`, 'dev', 'br0']);
    this.topo.exec(this.hub, 'ip', ['addr', 'add', `${HUB_IP2}/24`, 'dev', 'br0']);
    this.topo.exec(this.hub, 'ip', ['link', 'set', 'br0', 'up']);
  }

  async startDiscovery(): Promise<void> {
    this.server = this.topo.spawn(this.hub, BIN, ['discovery', 'serve', '--listen', '0.0.0.0:3000']);
    await this.server.waitFor(/listening|serving/i, 15_000);
  }

  /** A namespace on the bridge at 10.246.0.<n>. */
  addNode(name: string, n: number): OpsNode {
    const ns = this.topo.netns(name);
    const ip = `10.246.0.${n}`;
    const { ifB } = this.topo.veth(ns, [`${ip}/24`], this.hub, []);
    this.topo.exec(this.hub, 'ip', ['link', 'set', ifB, 'master', 'br0']);
    this.topo.exec(ns, 'ip', ['route', 'add', 'default', 'via', HUB_IP]);
    const dir = join(this.work, name);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const node: OpsNode = {
      name,
      ns,
      ip,
      dir,
      config: join(dir, 'node.yaml'),
      socket: join(dir, 'control.sock'),
      stateDir: join(dir, 'state'),
      ifname: `${this.topo.tag}${name}`.slice(0, 15),
    };
    this.nodes[name] = node;
    return node;
  }

  configText(n: OpsNode, o: NodeConfigOptions = {}): string {
    const doc = {
      cluster: {
        id: this.clusterId,
        secret: this.clusterSecret,
        discovery: { enabled: true, registries: { service: { endpoint: o.discoveryEndpoint ?? `http://${HUB_IP}:3000/` } } },
        ...o.cluster,
      },
      machine: {
        network: { kubespan: { enabled: true, ...o.kubespan } },
        ...(o.env ? { env: o.env } : {}),
      },
      kubespand: {
        nodeName: n.name,
        hostname: `${n.name}.test`,
        stateDir: n.stateDir,
        controlSocket: n.socket,
        interface: n.ifname,
        logLevel: 'info',
        ...o.kubespand,
      },
    };
    return stringify(doc);
  }

  writeConfig(n: OpsNode, o: NodeConfigOptions = {}): void {
    writeFileSync(n.config, this.configText(n, o), { mode: 0o600 });
  }

  start(n: OpsNode, args: string[] = [], env: NodeJS.ProcessEnv = process.env): Spawned {
    n.proc = this.topo.spawn(n.ns, BIN, ['run', '--config', n.config, ...args], { env });
    return n.proc;
  }

  ctl(n: OpsNode, args: string[]): string {
    return this.topo.exec(n.ns, BIN, [...args, '--socket', n.socket]);
  }

  statuses(n: OpsNode): PeerStatusRow[] {
    return JSON.parse(this.ctl(n, ['get', 'kubespanpeerstatuses', '-o', 'json'])) as PeerStatusRow[];
  }

  identity(n: OpsNode): { address: string; publicKey: string } {
    const row = (JSON.parse(this.ctl(n, ['get', 'kubespanidentities', '-o', 'json'])) as { address: string; publicKey: string }[])[0]!;
    return { address: row.address.split('/')[0]!, publicKey: row.publicKey };
  }

  async allUp(n: OpsNode, count: number, timeoutMs = 60_000): Promise<PeerStatusRow[]> {
    return eventually(() => {
      const s = this.statuses(n);
      return s.length === count && s.every((p) => p.state === 'up') ? s : false;
    }, timeoutMs, 500);
  }

  pingOk(from: OpsNode | string, target: string, count = 3): boolean {
    try {
      this.topo.exec(typeof from === 'string' ? from : from.ns, 'ping', ['-c', String(count), '-i', '0.2', '-W', '2', target], { timeoutMs: 30_000 });
      return true;
    } catch {
      return false;
    }
  }

  async destroy(): Promise<void> {
    await this.topo.destroy();
  }
}

/** Runs `code` with node inside a namespace (e.g. an HTTP request to a listener bound there). */
export function nodeIn(topo: Topology, ns: string, code: string, timeoutMs = 20_000): string {
  return topo.exec(ns, process.execPath, ['--input-type=module', '-e', code], { timeoutMs });
}

/** GET over HTTP from inside `ns`; returns status, content type and body. */
export function httpGet(topo: Topology, ns: string, url: string): { status: number; type: string; body: string } {
  const out = nodeIn(topo, ns, `const r = await fetch(${JSON.stringify(url)}); process.stdout.write(JSON.stringify({ status: r.status, type: r.headers.get('content-type') ?? '', body: await r.text() }));`);
  return JSON.parse(out) as { status: number; type: string; body: string };
}
