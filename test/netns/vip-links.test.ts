/**
 * Links and device selectors on live links in a namespace (`ip netns exec` mounts the namespace's own
 * sysfs, so `kubespand get links` there sees only its links):
 *
 *   l1: lo, va (veth → l2, 10.232.1.1/24, MAC 02:aa:00:00:00:01), vb (veth → l3, 10.232.2.1/24,
 *       MAC 02:aa:00:00:00:02), br9 (bridge, 10.232.3.1/24)
 *
 * Shows: the links view from sysfs + netlink (kind, addresses, not physical, no predictable names for
 * virtual links); then a KubeSpan daemon whose endpointLinks selector keeps only va's address as an
 * endpoint and whose identityLinkSelector derives the KubeSpan address from vb's MAC; and the
 * configuration errors for a selector that matches nothing or several links.
 *
 * (This kernel has no dummy link type, so the live set is veth and bridge; the fixture trees cover
 * hardware.)
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/kubespan/control.js';
import { eui64Address, kubespanPrefix } from '../../src/kubespan/identity.js';
import type { NetLink } from '../../src/netdev/sysfs.js';
import { eventually, Topology } from '../support/netns.js';
import { KUBESPAND_BIN, uapiSocketPath } from '../support/wg-impl.js';

const MAC_A = '02:aa:00:00:00:01';
const MAC_B = '02:aa:00:00:00:02';

describe.sequential('links and selectors on live links', () => {
  let topo: Topology;
  let dir: string;
  let l1: string;
  let va: string;
  let vb: string;

  function kubespand(args: string[], timeoutMs = 20_000): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync('ip', ['netns', 'exec', l1, KUBESPAND_BIN, ...args], { encoding: 'utf8', timeout: timeoutMs });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  beforeAll(() => {
    topo = new Topology('ksv');
    dir = mkdtempSync(join(tmpdir(), 'ksv-links-'));
    l1 = topo.netns('l1');
    const l2 = topo.netns('l2');
    const l3 = topo.netns('l3');
    ({ ifA: va } = topo.veth(l1, ['10.232.1.1/24'], l2, ['10.232.1.2/24']));
    ({ ifA: vb } = topo.veth(l1, ['10.232.2.1/24'], l3, ['10.232.2.2/24']));
    topo.exec(l1, 'ip', ['link', 'set', va, 'address', MAC_A]);
    topo.exec(l1, 'ip', ['link', 'set', vb, 'address', MAC_B]);
    topo.exec(l1, 'ip', ['link', 'add', 'br9', 'type', 'bridge']);
    topo.exec(l1, 'ip', ['addr', 'add', '10.232.3.1/24', 'dev', 'br9']);
    topo.exec(l1, 'ip', ['link', 'set', 'br9', 'up']);
  });

  afterAll(async () => {
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('get links -o json: the namespace links with kind, addresses and no names for virtual links', () => {
    const r = kubespand(['get', 'links', '-o', 'json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const links = JSON.parse(r.stdout) as NetLink[];
    expect(links.map((l) => l.name).sort()).toEqual(['br9', 'lo', va, vb].sort());
    const a = links.find((l) => l.name === va)!;
    expect(a).toMatchObject({ kind: 'veth', linkType: 'ether', hardwareAddr: MAC_A, addrAssignType: 3, physical: false, driver: '', busPath: '', pciID: '', predictableNames: {}, operState: 'up', mtu: 1500 });
    expect(a.permanentAddr).toBeUndefined();
    expect(links.find((l) => l.name === 'br9')).toMatchObject({ kind: 'bridge', physical: false, predictableNames: {} });
    expect(links.find((l) => l.name === 'lo')).toMatchObject({ linkType: 'loopback', physical: false });
  });

  it('get links NAME -o table and -o yaml; an unknown name is an error', () => {
    const t = kubespand(['get', 'links', va]);
    expect(t.code).toBe(0);
    const [head, row, ...rest] = t.stdout.trimEnd().split('\n');
    expect(rest).toEqual([]);
    expect(head).toMatch(/^NAME\s+KIND\s+HW ADDR\s+PERM ADDR\s+DRIVER\s+BUS PATH\s+PCI ID\s+PHYSICAL\s+MTU\s+STATE\s+PREDICTABLE NAMES$/);
    expect(row!.split(/\s+/)).toEqual([va, 'veth', MAC_A, '-', '-', '-', '-', 'no', '1500', 'up', '-']);
    const y = kubespand(['get', 'links', 'br9', '-o', 'yaml']);
    expect(y.stdout).toMatch(/^name: br9\n/);
    const bad = kubespand(['get', 'links', 'eth7']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^kubespand get: no link named "eth7" \(links: lo, /);
  });

  function nodeConfig(name: string, extra: { endpointLinks?: string; identity?: string }): string {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(
      file,
      [
        'cluster:',
        `  id: ${clusterId}`,
        `  secret: ${randomBytes(32).toString('base64')}`,
        '  discovery:',
        '    registries:',
        '      service:',
        '        endpoint: http://127.0.0.1:9/',
        'machine:',
        '  network:',
        '    kubespan:',
        '      enabled: true',
        ...(extra.endpointLinks ? ['      endpointLinks:', extra.endpointLinks] : []),
        'kubespand:',
        `  nodeName: ${name}`,
        `  stateDir: ${dir}/${name}-state`,
        `  controlSocket: ${dir}/${name}.sock`,
        `  interface: ${topo.tag}k${name.length}`,
        ...(extra.identity ? ['  identityLinkSelector:', extra.identity] : []),
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    return file;
  }
  const clusterId = `ksv-links-${randomBytes(6).toString('hex')}`;

  it('a daemon advertises only the endpointLinks addresses and takes its identity MAC from the selected link', async () => {
    const file = nodeConfig('n1', { endpointLinks: `        - hardwareAddr: "${MAC_A}"`, identity: `    hardwareAddr: "02:aa:*:02"` });
    const ifname = `${topo.tag}k2`;
    topo.onDestroy(() => rmSync(uapiSocketPath(ifname), { force: true }));
    const proc = topo.spawn(l1, KUBESPAND_BIN, ['run', '--config', file]);
    const socket = join(dir, 'n1.sock');
    try {
      const status = await eventually(async () => {
        const r = await controlRequest(socket, { op: 'status' }, 2_000);
        return r.ok ? (r.status as { address: string; localEndpoints: { address: string; port: number }[] }) : null;
      }, 20_000, 250);
      // only va's address; vb's 10.232.2.1 and br9's 10.232.3.1 are usable but not selected
      expect(status.localEndpoints).toEqual([{ address: '10.232.1.1', port: 51820 }]);
      expect(status.address).toBe(eui64Address(kubespanPrefix(clusterId), MAC_B).replace(/\/128$/, ''));
      const ids = await controlRequest(socket, { op: 'get', kind: 'kubespanidentities' });
      expect((ids.items as { link: string }[])[0]!.link).toMatch(new RegExp(`^${vb} `));
      const vip = await controlRequest(socket, { op: 'get', kind: 'vip' });
      expect(vip).toMatchObject({ ok: true, kind: 'vip', items: [] });
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- kubespand run ---\n${proc.output().slice(-3000)}`);
    } finally {
      expect(await proc.stop('SIGTERM', 10_000)).toBe(0);
    }
  });

  it('a selector that matches nothing, or several links where one is required, stops the daemon with a clear error', () => {
    const none = kubespand(['run', '--config', nodeConfig('n2', { endpointLinks: '        - hardwareAddr: "02:ff:*"' })]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/machine\.network\.kubespan\.endpointLinks\[0\]: device selector \{hardwareAddr: "02:ff:\*"\} matches no link \(links: /);
    const many = kubespand(['run', '--config', nodeConfig('n3', { identity: '    hardwareAddr: "02:aa:*"' })]);
    expect(many.code).toBe(1);
    expect(many.stderr).toContain(`kubespand.identityLinkSelector: device selector {hardwareAddr: "02:aa:*"} matches 2 links (${va}, ${vb})`);
    // nothing was left behind
    expect(JSON.parse(topo.exec(l1, 'ip', ['-j', 'link', 'show'])).map((l: { ifname: string }) => l.ifname).sort()).toEqual(['br9', 'lo', va, vb].sort());
  });
});
