/**
 * Live reload with a real SIGHUP (and the control socket's `reload`) to running daemons in network
 * namespaces. While n1 pings n2 over the tunnel without pause:
 *   - MTU, endpoint filters, extra announced endpoints, bypass, harvest, log level and the discovery
 *     endpoint change in place; the link, table-180 routes and MSS clamp follow; n2 learns n1's new
 *     endpoints through discovery; the WireGuard peer is never removed (its transfer counters only grow);
 *   - an invalid file (bad value, YAML syntax) is refused with an error naming the key, logged and
 *     returned on the control socket, and the running state is kept; so is a valid file that others
 *     can read (it holds the cluster secret), with run's own "chmod 600" message;
 *   - identity keys (interface, listen port, cluster secret) are refused with "needs a restart",
 *     without echoing the secret;
 *   - a --log-level given on the command line wins over the file, and the reload says so.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import { eventually, sleep, type Spawned } from '../support/netns.js';
import { controlRequest } from '../../src/kubespan/control.js';
import { HUB_IP, HUB_IP2, OpsMesh, type NodeConfigOptions, type OpsNode } from './ops-support.js';

let mesh: OpsMesh;
let n1: OpsNode;
let n2: OpsNode;
let ping: Spawned;
let pingStartedAt = 0;
let ula2 = '';
let n2Key = '';

const V1: NodeConfigOptions = {};
const V2: NodeConfigOptions = {
  discoveryEndpoint: `http://${HUB_IP2}:3000/`,
  kubespan: {
    mtu: 1380,
    allowDownPeerBypass: true,
    harvestExtraEndpoints: true,
    filters: { endpoints: ['10.246.0.0/24'] },
    extraAnnouncedEndpoints: ['192.0.2.10:51820'],
  },
  kubespand: { logLevel: 'debug' },
};

function transfer(n: OpsNode, publicKey: string): { rx: number; tx: number } {
  const line = mesh.topo.exec(n.ns, 'wg', ['show', n.ifname, 'transfer']).split('\n').find((l) => l.startsWith(publicKey));
  if (!line) throw new Error(`peer ${publicKey} is not on ${n.ifname}`);
  const [, rx, tx] = line.split('\t');
  return { rx: Number(rx), tx: Number(tx) };
}

function linkMtu(n: OpsNode): number {
  return (JSON.parse(mesh.topo.exec(n.ns, 'ip', ['-j', 'link', 'show', n.ifname])) as { mtu: number }[])[0]!.mtu;
}

function hup(n: OpsNode): void {
  process.kill(n.proc!.child.pid!, 'SIGHUP');
}

function logRecords(n: OpsNode): { level: number; msg: string; [k: string]: unknown }[] {
  return n.proc!.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: number; msg: string });
}

async function nextRecord(n: OpsNode, msgs: string[], after: number): Promise<{ level: number; msg: string; [k: string]: unknown }> {
  return eventually(() => logRecords(n).slice(after).find((r) => msgs.includes(r.msg)), 30_000, 100);
}

describe('operations: live config reload', () => {
  beforeAll(async () => {
    mesh = new OpsMesh('kso');
    await mesh.startDiscovery();
    n1 = mesh.addNode('n1', 1);
    n2 = mesh.addNode('n2', 2);
    mesh.writeConfig(n1, V1);
    mesh.writeConfig(n2);
    mesh.start(n1);
    mesh.start(n2, ['--log-level', 'warn']);
    await n1.proc!.waitFor(/kubespand is running/, 30_000);
    await eventually(() => mesh.ctl(n2, ['status']).includes('peers'), 30_000);
    await mesh.allUp(n1, 1);
    await mesh.allUp(n2, 1);
    ula2 = mesh.identity(n2).address;
    n2Key = mesh.identity(n2).publicKey;
    ping = mesh.topo.spawn(n1.ns, 'ping', ['-i', '0.2', '-W', '1', ula2]);
    pingStartedAt = Date.now();
    await eventually(() => /bytes from/.test(ping.output()), 10_000);
  }, 120_000);

  afterAll(async () => {
    await mesh?.destroy();
  });

  it('applies MTU, filters, endpoints, bypass, harvest, log level and discovery endpoint on SIGHUP without dropping the session', async () => {
    const before = transfer(n1, n2Key);
    expect(linkMtu(n1)).toBe(1420);
    expect(mesh.topo.exec(n1.ns, 'ss', ['-tn', 'state', 'established'])).toContain(`${HUB_IP}:3000`);
    const mark = logRecords(n1).length;
    mesh.writeConfig(n1, V2);
    hup(n1);
    const rec = await nextRecord(n1, ['config reloaded', 'config reload failed'], mark);
    expect(rec.msg).toBe('config reloaded');
    expect(rec.trigger).toBe('SIGHUP');
    expect([...(rec.changed as string[])].sort()).toEqual(
      [
        'cluster.discovery.registries.service.endpoint',
        'kubespand.logLevel',
        'machine.network.kubespan.allowDownPeerBypass',
        'machine.network.kubespan.extraAnnouncedEndpoints',
        'machine.network.kubespan.filters.endpoints',
        'machine.network.kubespan.harvestExtraEndpoints',
        'machine.network.kubespan.mtu',
      ].sort(),
    );

    // MTU: link, table-180 routes and the MSS clamp
    expect(linkMtu(n1)).toBe(1380);
    expect(mesh.topo.exec(n1.ns, 'ip', ['-6', 'route', 'show', 'table', '180'])).toMatch(/mtu 1380/);
    // only the IPv4 node address is marked here (the ULA /64 routes to the link directly): 1380 - 52
    const nft = await eventually(() => {
      const t = mesh.topo.exec(n1.ns, 'nft', ['list', 'table', 'inet', 'kubespand']);
      return t.includes('maxseg size set 1328') ? t : false;
    }, 10_000);
    expect(nft).not.toContain('size set 1368');

    // the status shows the new settings; discovery reconnected to the new address only
    const st = (await controlRequest(n1.socket, { op: 'status' })).status as {
      settings: { mtu: number; allowDownPeerBypass: boolean; harvestExtraEndpoints: boolean };
      discovery: { endpoint: string; state: string };
      localEndpoints: { address: string; port: number }[];
      logLevel: string;
    };
    expect(st.settings).toMatchObject({ mtu: 1380, allowDownPeerBypass: true, harvestExtraEndpoints: true });
    expect(st.logLevel).toBe('debug');
    expect(st.localEndpoints).toEqual(expect.arrayContaining([{ address: '10.246.0.1', port: 51820 }, { address: '192.0.2.10', port: 51820 }]));
    await eventually(async () => {
      const s = (await controlRequest(n1.socket, { op: 'status' })).status as typeof st;
      return s.discovery.endpoint === `http://${HUB_IP2}:3000/` && s.discovery.state === 'connected';
    }, 20_000);
    let ss = '';
    await eventually(() => {
      ss = mesh.topo.exec(n1.ns, 'ss', ['-tn', 'state', 'established']);
      return ss.includes(`${HUB_IP2}:3000`) && !ss.includes(`${HUB_IP}:3000`);
    }, 20_000).catch(() => expect(ss).toBe('one connection, to the new discovery address'));
    // n2 learns n1's extra endpoint through discovery
    await eventually(() => {
      const specs = JSON.parse(mesh.ctl(n2, ['get', 'kubespanpeerspecs', '-o', 'json'])) as { endpoints: { address: string }[] }[];
      return specs[0]?.endpoints.some((e) => e.address === '192.0.2.10');
    }, 30_000, 500);
    // debug lines now appear
    await eventually(() => logRecords(n1).slice(mark).some((r) => r.level === 20), 30_000);

    // the session stayed: same peer, counters only grew, and the peer was never removed
    await sleep(1000);
    const after = transfer(n1, n2Key);
    expect(after.rx).toBeGreaterThan(before.rx);
    expect(after.tx).toBeGreaterThan(before.tx);
    expect(logRecords(n1).some((r) => r.msg === 'peer removed')).toBe(false);
    expect((await mesh.allUp(n1, 1)).length).toBe(1);
  }, 90_000);

  it('refuses an invalid file with an error naming the key, logged and returned, and keeps running as before', async () => {
    const mark = logRecords(n1).length;
    writeFileSync(n1.config, mesh.configText(n1, V2).replace('mtu: 1380', 'mtu: 1000').replace('allowDownPeerBypass: true', 'allowDownPeerBypas: true'));
    hup(n1);
    const rec = await nextRecord(n1, ['config reloaded', 'config reload failed'], mark);
    expect(rec.msg).toBe('config reload failed');
    expect(rec.level).toBe(50);
    expect(rec.err).toContain('the running configuration is kept');
    expect(rec.err).toContain('machine.network.kubespan.mtu: must be at least 1280');
    expect(rec.err).toContain('(got 1000)');
    expect(rec.err).toContain('did you mean "allowDownPeerBypass"?');

    const reply = await controlRequest(n1.socket, { op: 'reload' });
    expect(reply.ok).toBe(false);
    expect(String(reply.error)).toContain('machine.network.kubespan.mtu: must be at least 1280');

    writeFileSync(n1.config, 'cluster:\n  id: [unclosed\n');
    const syntax = await controlRequest(n1.socket, { op: 'reload' });
    expect(syntax.ok).toBe(false);
    expect(String(syntax.error)).toMatch(/YAML syntax error/);

    // a valid, changed file that others can read: refused as at start, before anything applies
    mesh.writeConfig(n1, { ...V2, kubespan: { ...V2.kubespan, mtu: 1400 } });
    chmodSync(n1.config, 0o644);
    const open = await controlRequest(n1.socket, { op: 'reload' });
    chmodSync(n1.config, 0o600);
    expect(open.ok).toBe(false);
    expect(String(open.error)).toContain(`${n1.config}: mode 0644 lets others read the cluster secret; refusing to use it (fix with: chmod 600 ${n1.config})`);
    expect(String(open.error)).not.toContain(mesh.clusterSecret);

    // nothing changed
    expect(linkMtu(n1)).toBe(1380);
    const st = (await controlRequest(n1.socket, { op: 'status' })).status as { settings: { mtu: number }; reload: { failed: number; succeeded: number; lastError: string } };
    expect(st.settings.mtu).toBe(1380);
    expect(st.reload.failed).toBe(4);
    expect(st.reload.succeeded).toBe(1);
    expect(mesh.ctl(n1, ['status'])).toMatch(/last reload FAILED/);
    expect((await mesh.allUp(n1, 1)).length).toBe(1);
  }, 60_000);

  it('refuses identity, device and socket changes saying a restart is needed, never echoing the secret', async () => {
    const newSecret = randomBytes(32).toString('base64');
    mesh.writeConfig(n1, { ...V2, kubespand: { ...V2.kubespand, listenPort: 51999, interface: 'kso-other' }, cluster: { secret: newSecret } });
    const reply = await controlRequest(n1.socket, { op: 'reload' });
    expect(reply.ok).toBe(false);
    const error = String(reply.error);
    expect(error).toContain('cluster.secret, kubespand.interface, kubespand.listenPort changed');
    expect(error).toContain('a restart is needed to apply them');
    expect(error).not.toContain(newSecret);
    expect(error).not.toContain(Buffer.from(newSecret, 'base64').toString('hex'));
    expect(mesh.topo.exec(n1.ns, 'wg', ['show', n1.ifname, 'listen-port']).trim()).toBe('51820');
    expect((await mesh.allUp(n1, 1)).length).toBe(1);
  }, 30_000);

  it('goes back to the first file, and a --log-level flag wins over the file', async () => {
    mesh.writeConfig(n1, V1);
    const reply = await controlRequest(n1.socket, { op: 'reload' });
    expect(reply.ok).toBe(true);
    expect((reply.result as { changed: string[] }).changed).toContain('machine.network.kubespan.mtu');
    expect(linkMtu(n1)).toBe(1420);

    mesh.writeConfig(n2, { kubespand: { logLevel: 'debug' } });
    const r2 = await controlRequest(n2.socket, { op: 'reload' });
    expect(r2).toMatchObject({ ok: true, result: { changed: ['kubespand.logLevel'], overridden: ['kubespand.logLevel'] } });
    expect(((await controlRequest(n2.socket, { op: 'status' })).status as { logLevel: string }).logLevel).toBe('warn');

    // the ping ran through every reload: at most one reply missed
    const ranMs = Date.now() - pingStartedAt;
    await ping.stop('SIGINT');
    const m = /(\d+) packets transmitted, (\d+) received/.exec(ping.output());
    expect(m).not.toBeNull();
    // one echo every 200 ms for the whole run (a stalled ping would send far fewer)
    expect(Number(m![1])).toBeGreaterThanOrEqual(Math.floor((ranMs / 200) * 0.8));
    expect(Number(m![1]) - Number(m![2])).toBeLessThanOrEqual(1);
  }, 60_000);
});
