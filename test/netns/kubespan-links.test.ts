/**
 * listLinks against real links: a namespace of our own (prefix ksk) with a veth pair, a bridge, a
 * vxlan and a TUN, read through `ip netns exec <ns> ip -j …` child processes. Checks the parsed
 * fields, the identity-link fallback a namespace needs (no physical link), the EUI-64 address from
 * the MAC we set, and which addresses are usable as endpoints, before and after a link goes down.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topology } from '../support/netns.js';
import { usableNodeAddresses } from '../../src/kubespan/endpoints.js';
import { nodeAddressFor } from '../../src/kubespan/identity.js';
import { listLinks, pickIdentityLink, type IpRunner } from '../../src/kubespan/links.js';

const CLUSTER_ID = '8XuV9TZHW08DOk3bVxQjH9ih_TBKjnh-j44tsCLSBzo=';

describe('listLinks in a network namespace', () => {
  let topo: Topology;
  let ns: string;
  let inNs: IpRunner;

  beforeAll(() => {
    topo = new Topology('ksk');
    ns = topo.netns('links');
    const x = (...args: string[]) => topo.exec(ns, 'ip', args);
    x('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0-peer');
    x('link', 'set', 'eth0', 'address', '2e:1a:b6:53:81:69');
    x('link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'eth1-peer');
    x('link', 'add', 'br9', 'type', 'bridge');
    x('link', 'set', 'br9', 'address', '02:00:00:00:00:09');
    x('link', 'add', 'vx9', 'type', 'vxlan', 'id', '9', 'dstport', '4789');
    x('tuntap', 'add', 'mode', 'tun', 'name', 'kubespan');
    for (const l of ['eth0', 'eth0-peer', 'eth1', 'eth1-peer', 'kubespan']) x('link', 'set', l, 'up');
    x('addr', 'add', '10.61.0.2/24', 'dev', 'eth0');
    x('addr', 'add', '2001:db8:61::2/64', 'dev', 'eth0', 'nodad');
    x('addr', 'add', '169.254.61.2/16', 'dev', 'eth0');
    x('addr', 'add', '10.61.9.9/32', 'dev', 'eth0', 'scope', 'link');
    x('addr', 'add', '10.62.0.2/16', 'dev', 'eth1');
    x('addr', 'add', '10.63.0.1/24', 'dev', 'br9'); // bridge left down
    x('addr', 'add', 'fd7f:175a:b97c:5602:2c1a:b6ff:fe53:8169/64', 'dev', 'kubespan', 'nodad');
    inNs = (args) =>
      new Promise((resolve, reject) =>
        execFile('ip', ['netns', 'exec', ns, 'ip', ...args], (err, stdout, stderr) => (err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve(stdout))),
      );
  });

  afterAll(async () => {
    await topo?.destroy();
  });

  it('reads every link with kind, type, MAC and state', async () => {
    const links = await listLinks(inNs);
    const byName = new Map(links.map((l) => [l.name, l]));
    expect([...byName.keys()].sort()).toEqual(['br9', 'eth0', 'eth0-peer', 'eth1', 'eth1-peer', 'kubespan', 'lo', 'vx9']);
    expect(byName.get('lo')).toMatchObject({ linkType: 'loopback', up: true, physical: false });
    expect(byName.get('eth0')).toMatchObject({ kind: 'veth', linkType: 'ether', mac: '2e:1a:b6:53:81:69', up: true, physical: false, mtu: 1500 });
    expect(byName.get('br9')).toMatchObject({ kind: 'bridge', mac: '02:00:00:00:00:09', up: false });
    expect(byName.get('vx9')).toMatchObject({ kind: 'vxlan', up: false });
    expect(byName.get('kubespan')).toMatchObject({ kind: 'tun', linkType: 'none', mac: undefined });
    expect(links.some((l) => l.physical)).toBe(false);
    const eth0 = byName.get('eth0')!.addresses.map((a) => `${a.address}/${a.prefixLen} ${a.scope}`);
    expect(eth0).toEqual(expect.arrayContaining(['10.61.0.2/24 global', '2001:db8:61::2/64 global', '169.254.61.2/16 global', '10.61.9.9/32 link']));
    expect(byName.get('eth0')!.addresses.find((a) => a.address === '2001:db8:61::2')?.family).toBe(6);
  });

  it('picks the identity link without a physical link, or the configured one, and derives the address', async () => {
    const links = await listLinks(inNs);
    const fallback = pickIdentityLink(links);
    expect(fallback.reason).toBe('first-with-mac');
    expect(fallback.link.name).toBe('br9'); // by name: br9 < eth0 < eth0-peer …
    const configured = pickIdentityLink(links, 'eth0');
    expect(configured.reason).toBe('configured');
    expect(nodeAddressFor(CLUSTER_ID, configured.link.mac!).address).toBe('fd7f:175a:b97c:5602:2c1a:b6ff:fe53:8169/128');
    expect(() => pickIdentityLink(links, 'kubespan')).toThrow(/has no usable hardware address/);
  });

  it('usable addresses drop link-local, link scope, down links and the KubeSpan address; a link going down drops its addresses', async () => {
    const opts = { kubespanAddress: 'fd7f:175a:b97c:5602:2c1a:b6ff:fe53:8169/128' };
    expect(usableNodeAddresses(await listLinks(inNs), opts)).toEqual(['10.61.0.2', '10.62.0.2', '2001:db8:61::2']);
    topo.exec(ns, 'ip', ['link', 'set', 'eth1', 'down']);
    expect(usableNodeAddresses(await listLinks(inNs), opts)).toEqual(['10.61.0.2', '2001:db8:61::2']);
    // a veth whose peer is down has no carrier: not up either
    topo.exec(ns, 'ip', ['link', 'set', 'eth1', 'up']);
    topo.exec(ns, 'ip', ['link', 'set', 'eth0-peer', 'down']);
    const links = await listLinks(inNs);
    expect(links.find((l) => l.name === 'eth0')).toMatchObject({ up: false });
    expect(usableNodeAddresses(links, opts)).toEqual(['10.62.0.2']);
  });
});
