/**
 * The shared virtual IP with a real etcd (Debian's etcd-server, TLS with client certificates), three
 * kubespand nodes and a client on one bridge:
 *
 *   n1 10.233.0.1   n2 10.233.0.2   n3 10.233.0.3   client 10.233.0.50
 *   (MAC 02:e9:00:00:00:0N; the VIP's link is chosen by deviceSelector hardwareAddr "02:e9:*")
 *         \______________|______________|______________/
 *             br0 in hub = 10.233.0.254: etcd https://10.233.0.254:2379
 *   VIP 10.233.0.100, lease TTL 3 s
 *
 * Shows: one owner at a time; the VIP answers ARP (and ping) at the owner; a clean stop hands over
 * at once and the client's neighbour entry moves to the new owner by gratuitous ARP alone; a crashed
 * owner is replaced after its lease expires (times printed); a restarted node removes a VIP left on
 * its link; nobody owns the VIP while etcd is down, and an owner returns with etcd; every node
 * releases cleanly on shutdown and the campaign key is gone.
 */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/kubespan/control.js';
import type { VipView } from '../../src/vip/index.js';
import { eventually, sh, sleep, Topology, type Spawned } from '../support/netns.js';
import { KUBESPAND_BIN, uapiSocketPath } from '../support/wg-impl.js';

const NET = '10.233.0';
const VIP = `${NET}.100`;
const VIP6 = 'fd00:233::100';
const ETCD = `${NET}.254`;
const TTL_S = 3;
const NAMES = ['n1', 'n2', 'n3'] as const;
type Name = (typeof NAMES)[number];
const mac = (i: number) => `02:e9:00:00:00:0${i + 1}`;

interface Node {
  name: Name;
  ns: string;
  ifname: string;
  socket: string;
  config: string;
  proc?: Spawned;
}

describe.sequential('VIP elected through etcd in network namespaces', () => {
  let topo: Topology;
  let dir: string;
  let hub: string;
  let client: string;
  let clientIf: string;
  let etcd: Spawned;
  const nodes = {} as Record<Name, Node>;
  const timings: string[] = [];

  function openssl(args: string[]): void {
    sh('openssl', args, { timeoutMs: 20_000 });
  }

  function makeCerts(): void {
    const ext = join(dir, 'ext.cnf');
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.pem'), '-subj', '/CN=ksv-test-ca', '-days', '1']);
    for (const [name, eku, san] of [['server', 'serverAuth,clientAuth', `subjectAltName=IP:${ETCD}\n`], ['client', 'clientAuth', '']] as const) {
      writeFileSync(ext, `${san}extendedKeyUsage=${eku}\n`);
      openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.csr`), '-subj', `/CN=${name}`]);
      openssl(['x509', '-req', '-in', join(dir, `${name}.csr`), '-CA', join(dir, 'ca.pem'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-out', join(dir, `${name}.pem`), '-days', '1', '-extfile', ext]);
    }
  }

  async function startEtcd(): Promise<void> {
    etcd = topo.spawn(hub, 'etcd', [
      '--name', 'ksv', '--data-dir', join(dir, 'etcd'),
      '--listen-client-urls', `https://${ETCD}:2379`, '--advertise-client-urls', `https://${ETCD}:2379`,
      '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
      '--initial-cluster', 'ksv=http://127.0.0.1:2380',
      '--cert-file', join(dir, 'server.pem'), '--key-file', join(dir, 'server.key'), '--trusted-ca-file', join(dir, 'ca.pem'), '--client-cert-auth',
      '--log-level', 'warn',
    ]);
    // ready when the gateway answers a client-authenticated request
    await eventually(() => etcdCall('maintenance/status', {}).version !== undefined, 20_000, 200);
  }

  /** A v3 gateway call from inside the hub, with the client certificate. */
  function etcdCall(path: string, body: object): Record<string, unknown> {
    const r = spawnSync('ip', ['netns', 'exec', hub, 'curl', '-sS', '--max-time', '3', '--cacert', join(dir, 'ca.pem'), '--cert', join(dir, 'client.pem'), '--key', join(dir, 'client.key'), '-X', 'POST', `https://${ETCD}:2379/v3/${path}`, '-d', JSON.stringify(body)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`curl ${path}: ${r.stderr}`);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  }

  function writeConfig(n: Node, clusterId: string, secret: string, vip = VIP, file = n.config): void {
    writeFileSync(
      file,
      [
        'cluster:',
        `  id: ${clusterId}`,
        `  secret: ${secret}`,
        '  discovery:',
        '    registries:',
        '      service:',
        '        endpoint: http://127.0.0.1:9/',
        'machine:',
        '  network:',
        '    kubespan:',
        '      enabled: true',
        '    vip:',
        `      ip: ${vip}`,
        '      deviceSelector:',
        '        hardwareAddr: "02:e9:*"',
        'kubespand:',
        `  nodeName: ${n.name}`,
        `  stateDir: ${dir}/${n.name}-state`,
        `  controlSocket: ${n.socket}`,
        `  interface: ${topo.tag}k${n.name.slice(1)}`,
        '  etcd:',
        `    endpoints: [https://${ETCD}:2379]`,
        `    caFile: ${dir}/ca.pem`,
        `    certFile: ${dir}/client.pem`,
        `    keyFile: ${dir}/client.key`,
        `    leaseTTL: ${TTL_S}`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
  }

  function start(n: Node): void {
    n.proc = topo.spawn(n.ns, KUBESPAND_BIN, ['run', '--config', n.config]);
  }

  async function vipView(n: Node): Promise<VipView | undefined> {
    try {
      const r = await controlRequest(n.socket, { op: 'get', kind: 'vip' }, 2_000);
      return r.ok ? (r.items as VipView[])[0] : undefined;
    } catch {
      return undefined;
    }
  }

  function hasVip(n: Node): boolean {
    const info = JSON.parse(topo.exec(n.ns, 'ip', ['-j', 'addr', 'show', 'dev', n.ifname])) as { addr_info: { local: string; prefixlen: number }[] }[];
    return info[0]!.addr_info.some((a) => a.local === VIP && a.prefixlen === 32);
  }

  function holders(): Name[] {
    return NAMES.filter((name) => hasVip(nodes[name]));
  }

  /** Polls every 20 ms until exactly one node holds the VIP; returns it and the time taken. */
  async function waitForHolder(from: number, timeoutMs = 15_000): Promise<{ name: Name; ms: number }> {
    for (;;) {
      const h = holders();
      if (h.length > 1) throw new Error(`two holders at once: ${h.join(', ')}`);
      if (h.length === 1) return { name: h[0]!, ms: Date.now() - from };
      if (Date.now() - from > timeoutMs) throw new Error('no node took the VIP over');
      await sleep(20);
    }
  }

  /** The MAC that answers ARP for the VIP, asked from the client. */
  function arpAnswer(): string | undefined {
    const r = spawnSync('ip', ['netns', 'exec', client, 'arping', '-c', '1', '-w', '2', '-I', clientIf, VIP], { encoding: 'utf8' });
    return /reply from [\d.]+ \[([0-9A-Fa-f:]+)\]/.exec(r.stdout)?.[1]?.toLowerCase();
  }

  function clientNeighbour(): string | undefined {
    return /lladdr ([0-9a-f:]+)/.exec(topo.exec(client, 'ip', ['neigh', 'show', VIP]))?.[1];
  }

  function logsOf(): string {
    return NAMES.map((n) => `--- ${n} ---\n${nodes[n].proc?.output().slice(-2500) ?? ''}`).join('\n') + `\n--- etcd ---\n${etcd?.output().slice(-1500) ?? ''}`;
  }

  async function withLogs<T>(fn: () => Promise<T> | T): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${logsOf()}`);
    }
  }

  beforeAll(async () => {
    topo = new Topology('ksv');
    dir = mkdtempSync(join(tmpdir(), 'ksv-vip-'));
    hub = topo.netns('hub');
    topo.exec(hub, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
    topo.exec(hub, 'ip', ['addr', 'add', `${ETCD}/24`, 'dev', 'br0']);
    topo.exec(hub, 'ip', ['link', 'set', 'br0', 'up']);
    const attach = (ns: string, addr: string, hw?: string): string => {
      const { ifA, ifB } = topo.veth(ns, [addr], hub, []);
      topo.exec(hub, 'ip', ['link', 'set', ifB, 'master', 'br0']);
      if (hw) topo.exec(ns, 'ip', ['link', 'set', ifA, 'address', hw]);
      return ifA;
    };
    const clusterId = `ksv-vip-${randomBytes(6).toString('hex')}`;
    const secret = randomBytes(32).toString('base64');
    NAMES.forEach((name, i) => {
      const ns = topo.netns(name);
      const n: Node = { name, ns, ifname: attach(ns, `${NET}.${i + 1}/24`, mac(i)), socket: join(dir, `${name}.sock`), config: join(dir, `${name}.yaml`) };
      topo.onDestroy(() => rmSync(uapiSocketPath(`${topo.tag}k${i + 1}`), { force: true }));
      writeConfig(n, clusterId, secret);
      if (name === 'n1') writeConfig(n, clusterId, secret, VIP6, join(dir, 'n1-v6.yaml'));
      nodes[name] = n;
    });
    client = topo.netns('cl');
    clientIf = attach(client, `${NET}.50/24`);
    makeCerts();
    await startEtcd();
  }, 90_000);

  afterAll(async () => {
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (timings.length) process.stdout.write(`VIP timings (lease TTL ${TTL_S} s): ${timings.join('; ')}\n`);
  });

  it('one owner at a time: the first node up owns the VIP, the others follow and name it', async () => {
    await withLogs(async () => {
      start(nodes.n1);
      const t0 = Date.now();
      await eventually(async () => (await vipView(nodes.n1))?.state === 'owner', 30_000, 100);
      expect(holders()).toEqual(['n1']);
      timings.push(`first owner ${Date.now() - t0} ms after start`);
      start(nodes.n2);
      start(nodes.n3);
      for (const n of [nodes.n2, nodes.n3]) await eventually(async () => (await vipView(n))?.state === 'follower', 30_000, 100);
      for (let i = 0; i < 10; i++) {
        expect(holders()).toEqual(['n1']);
        await sleep(100);
      }
      for (const n of NAMES) expect(await vipView(nodes[n])).toMatchObject({ ip: VIP, link: nodes[n].ifname, owner: 'n1', self: n, state: n === 'n1' ? 'owner' : 'follower' });
      // the campaign key in etcd names n1
      const r = etcdCall('kv/range', { key: Buffer.from(`/kubespand/vip/${VIP}`).toString('base64') });
      const kv = (r.kvs as { value: string; lease: string }[])[0]!;
      expect(Buffer.from(kv.value, 'base64').toString()).toBe('n1');
      expect(kv.lease).toMatch(/^\d+$/);
    });
  });

  it('the VIP answers ARP and ping at the owner; kubespand get vip shows owner and state', async () => {
    await withLogs(async () => {
      expect(await eventually(() => arpAnswer(), 5_000, 200)).toBe(mac(0));
      sh('ip', ['netns', 'exec', client, 'ping', '-c', '1', '-W', '2', VIP]);
      expect(clientNeighbour()).toBe(mac(0));
      const r = spawnSync('ip', ['netns', 'exec', nodes.n2.ns, KUBESPAND_BIN, 'get', 'vip', '--socket', nodes.n2.socket], { encoding: 'utf8' });
      expect(r.status).toBe(0);
      const [head, row] = r.stdout.trimEnd().split('\n');
      expect(head).toMatch(/^IP\s+LINK\s+STATE\s+OWNER\s+SINCE\s+LAST ERROR$/);
      expect(row).toMatch(new RegExp(`^${VIP.replaceAll('.', '\\.')}\\s+${nodes.n2.ifname}\\s+follower\\s+n1\\s+\\d`));
    });
  });

  it('a clean stop hands over at once; the client learns the new MAC from gratuitous ARP alone', async () => {
    await withLogs(async () => {
      const t0 = Date.now();
      expect(await nodes.n1.proc!.stop('SIGTERM', 10_000)).toBe(0);
      const next = await waitForHolder(t0);
      timings.push(`clean handover ${next.ms} ms (n1 stopped → ${next.name} holds)`);
      expect(hasVip(nodes.n1)).toBe(false);
      expect(next.ms).toBeLessThan(TTL_S * 1000); // the revoked lease wakes the watcher; no expiry wait
      const newMac = mac(NAMES.indexOf(next.name));
      // the client sent nothing: its cache entry changes because of the announcement
      await eventually(() => clientNeighbour() === newMac, 5_000, 100);
      expect(arpAnswer()).toBe(newMac);
      for (let i = 0; i < 5; i++) {
        expect(holders()).toEqual([next.name]);
        await sleep(100);
      }
    });
  });

  it('a crashed owner is replaced when its lease expires; a restarted node removes the VIP left on its link', async () => {
    await withLogs(async () => {
      const owner = holders()[0]!;
      const other = owner === 'n2' ? 'n3' : 'n2';
      const o = nodes[owner];
      const t0 = Date.now();
      // the node vanishes: process killed, link down (the address stays configured on it)
      await o.proc!.stop('SIGKILL');
      topo.exec(o.ns, 'ip', ['link', 'set', o.ifname, 'down']);
      for (;;) {
        if (hasVip(nodes[other])) break;
        if (Date.now() - t0 > 15_000) throw new Error(`${other} did not take over`);
        await sleep(20);
      }
      const ms = Date.now() - t0;
      timings.push(`takeover after a crash ${ms} ms (${owner} killed → ${other} holds)`);
      expect(ms).toBeGreaterThan(TTL_S * 1000 * (1 / 3)); // had to wait for the lease, not a revoke
      expect(ms).toBeLessThan(TTL_S * 1000 + 2_000);
      expect(hasVip(o)).toBe(true); // the dead node's leftover
      expect(arpAnswer()).toBe(mac(NAMES.indexOf(other)));
      // the node comes back: it must not keep the stale address while another node owns the VIP
      topo.exec(o.ns, 'ip', ['link', 'set', o.ifname, 'up']);
      start(o);
      await eventually(async () => (await vipView(o))?.state === 'follower', 30_000, 100);
      expect(hasVip(o)).toBe(false);
      expect(holders()).toEqual([other]);
      // bring n1 back for the rest
      start(nodes.n1);
      await eventually(async () => (await vipView(nodes.n1))?.state === 'follower', 30_000, 100);
    });
  });

  it('nobody owns the VIP while etcd is down; an owner returns with etcd', async () => {
    await withLogs(async () => {
      const owner = holders()[0]!;
      const t0 = Date.now();
      await etcd.stop('SIGTERM', 10_000);
      for (;;) {
        if (holders().length === 0) break;
        if (Date.now() - t0 > TTL_S * 1000 + 2_000) throw new Error('the owner kept the VIP with etcd down');
        await sleep(20);
      }
      timings.push(`released ${Date.now() - t0} ms after etcd went down`);
      for (const n of NAMES) await eventually(async () => (await vipView(nodes[n]))?.state === 'etcd-unreachable', 10_000, 100);
      for (const n of NAMES) expect((await vipView(nodes[n]))?.owner).toBeUndefined();
      for (let i = 0; i < 15; i++) {
        expect(holders()).toEqual([]);
        await sleep(200);
      }
      expect(arpAnswer()).toBeUndefined();
      const t1 = Date.now();
      await startEtcd();
      const back = await waitForHolder(t1, 20_000);
      timings.push(`owner back ${back.ms} ms after etcd restart (${back.name}; was ${owner})`);
      await sleep(500);
      expect(holders()).toEqual([back.name]);
    });
  });

  it('every node releases on shutdown and the campaign key is gone', async () => {
    await withLogs(async () => {
      for (const n of NAMES) expect(await nodes[n].proc!.stop('SIGTERM', 10_000)).toBe(0);
      expect(holders()).toEqual([]);
      const r = etcdCall('kv/range', { key: Buffer.from(`/kubespand/vip/${VIP}`).toString('base64') });
      expect(r.kvs).toBeUndefined();
      const leases = etcdCall('lease/leases', {});
      expect(leases.leases ?? []).toEqual([]);
    });
  });

  it('an IPv6 VIP is announced with an unsolicited neighbour advertisement from the owner', async () => {
    await withLogs(async () => {
      const n1 = nodes.n1;
      topo.exec(n1.ns, 'ip', ['addr', 'add', 'fd00:233::1/64', 'dev', n1.ifname, 'nodad']);
      topo.exec(client, 'ip', ['addr', 'add', 'fd00:233::50/64', 'dev', clientIf, 'nodad']);
      const dump = topo.spawn(client, 'tcpdump', ['-l', '-n', '-e', '-i', clientIf, 'icmp6 and ip6[40] == 136']);
      await dump.waitFor(/listening on/, 10_000);
      n1.proc = topo.spawn(n1.ns, KUBESPAND_BIN, ['run', '--config', join(dir, 'n1-v6.yaml')]);
      await eventually(async () => (await vipView(n1))?.state === 'owner', 30_000, 100);
      expect((await vipView(n1))?.ip).toBe(VIP6);
      // after DAD the kernel advertises the address to all nodes, override flag set, from n1's MAC
      await dump.waitFor(new RegExp(`${mac(0)} > 33:33:00:00:00:01.*neighbor advertisement, tgt is ${VIP6}`), 10_000);
      sh('ip', ['netns', 'exec', client, 'ping', '-6', '-c', '1', '-W', '2', VIP6]);
      expect(/lladdr ([0-9a-f:]+)/.exec(topo.exec(client, 'ip', ['-6', 'neigh', 'show', VIP6]))?.[1]).toBe(mac(0));
      expect(await n1.proc.stop('SIGTERM', 10_000)).toBe(0);
      const addrs = JSON.parse(topo.exec(n1.ns, 'ip', ['-j', 'addr', 'show', 'dev', n1.ifname])) as { addr_info: { local: string }[] }[];
      expect(addrs[0]!.addr_info.map((a) => a.local)).not.toContain(VIP6);
      await dump.stop();
    });
  });
});
