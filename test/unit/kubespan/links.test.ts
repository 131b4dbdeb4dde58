import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { listLinks, mergeLinksAndAddresses, parseIpAddrJson, parseIpLinkJson, pickIdentityLink, type HostLink } from '../../../src/kubespan/links.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const fixture = (name: string) => readFileSync(join(FIXTURES, name), 'utf8');

/** Links of a network namespace: veth, bridge, macvlan, vxlan, ifb, tun (captured with ip -j). */
function netnsLinks(): HostLink[] {
  return mergeLinksAndAddresses(parseIpLinkJson(fixture('netns-link.json')), parseIpAddrJson(fixture('netns-addr.json')));
}
/** A VM: loopback, two ifb links and a virtio eth0 (captured with ip -j). */
function hostLinks(): HostLink[] {
  return mergeLinksAndAddresses(parseIpLinkJson(fixture('host-link.json')), parseIpAddrJson(fixture('host-addr.json')));
}

const byName = (links: HostLink[], name: string) => {
  const l = links.find((x) => x.name === name);
  if (!l) throw new Error(`fixture has no link ${name}`);
  return l;
};

describe('parseIpLinkJson / parseIpAddrJson on captured output', () => {
  it('reads kind, link type, MAC, state and the physical flag', () => {
    const links = netnsLinks();
    expect(links.map((l) => l.name)).toEqual(['lo', 'eth1', 'eth0-p', 'eth0', 'br0', 'vethbr-p', 'vethbr', 'mv0', 'vx0', 'ifb7', 'kubespan']);
    const summary = Object.fromEntries(links.map((l) => [l.name, [l.kind, l.linkType, l.up, l.physical]]));
    expect(summary).toEqual({
      lo: ['', 'loopback', true, false],
      eth1: ['veth', 'ether', true, false],
      'eth0-p': ['veth', 'ether', true, false],
      eth0: ['veth', 'ether', true, false],
      br0: ['bridge', 'ether', false, false], // UP but NO-CARRIER
      'vethbr-p': ['veth', 'ether', false, false],
      vethbr: ['veth', 'ether', false, false],
      mv0: ['macvlan', 'ether', true, false],
      vx0: ['vxlan', 'ether', false, false],
      ifb7: ['ifb', 'ether', false, false],
      kubespan: ['tun', 'none', false, false], // no process attached: NO-CARRIER
    });
    expect(byName(links, 'eth0').mac).toBe('2e:1a:b6:53:81:69');
    expect(byName(links, 'kubespan').mac).toBeUndefined();
    expect(byName(links, 'vethbr').slaveKind).toBe('bridge');
    expect(byName(links, 'lo').mtu).toBe(65536);
    expect(byName(links, 'eth1').index).toBe(2);
  });

  it('reads addresses with prefix length, scope and family', () => {
    const links = netnsLinks();
    expect(byName(links, 'eth0').addresses).toEqual([
      { address: '10.200.0.5', prefixLen: 32, scope: 'link', family: 4, dadFailed: false, tentative: false },
      { address: '192.168.7.1', prefixLen: 24, scope: 'global', family: 4, dadFailed: false, tentative: false },
      { address: '169.254.10.1', prefixLen: 16, scope: 'global', family: 4, dadFailed: false, tentative: false },
      { address: '10.0.0.9', prefixLen: 8, scope: 'global', family: 4, dadFailed: false, tentative: false },
      { address: 'fe80::2c1a:b6ff:fe53:8169', prefixLen: 64, scope: 'link', family: 6, dadFailed: false, tentative: false },
    ]);
    expect(byName(links, 'vx0').addresses).toEqual([]);
  });

  it('a plain virtio NIC is physical; ifb (ether with a kind) is not', () => {
    const links = hostLinks();
    expect(byName(links, 'eth0')).toMatchObject({ kind: '', linkType: 'ether', physical: true, up: true, mac: '02:fc:00:00:00:01' });
    expect(byName(links, 'ifb0')).toMatchObject({ kind: 'ifb', physical: false, up: false });
  });

  it('reads permaddr, a tunnel IP in "address", dadfailed and up-by-flags', () => {
    const links = parseIpLinkJson([
      { ifindex: 5, ifname: 'enp1s0', flags: ['BROADCAST', 'UP', 'LOWER_UP'], mtu: 9000, operstate: 'UP', link_type: 'ether', address: '52:54:00:AA:BB:CC', permaddr: '52:54:00:11:22:33' },
      { ifindex: 6, ifname: 'ipip0', flags: ['NOARP'], mtu: 1480, operstate: 'DOWN', link_type: 'ipip', address: '0.0.0.0', linkinfo: { info_kind: 'ipip' } },
      { ifindex: 7, ifname: 'dummy0', flags: ['BROADCAST', 'NOARP', 'UP', 'LOWER_UP'], mtu: 1500, operstate: 'UNKNOWN', link_type: 'ether', address: '8e:00:00:00:00:01', linkinfo: { info_kind: 'dummy' } },
    ]);
    expect(links[0]).toMatchObject({ mac: '52:54:00:aa:bb:cc', permanentMac: '52:54:00:11:22:33', physical: true, mtu: 9000 });
    expect(links[1]).toMatchObject({ mac: undefined, kind: 'ipip', up: false });
    expect(links[2]).toMatchObject({ up: true, physical: false });
    const addrs = parseIpAddrJson([{ ifindex: 5, addr_info: [{ family: 'inet6', local: '2001:db8::5', prefixlen: 64, scope: 'global', dadfailed: true, tentative: true }] }]);
    expect(addrs.get(5)).toEqual([{ address: '2001:db8::5', prefixLen: 64, scope: 'global', family: 6, dadFailed: true, tentative: true }]);
  });

  it('rejects output that is not what ip prints, saying what is wrong', () => {
    expect(() => parseIpLinkJson('not json')).toThrow(/ip -j -d link show: output is not JSON/);
    expect(() => parseIpLinkJson('{}')).toThrow(/not a JSON array/);
    expect(() => parseIpLinkJson([{ ifindex: 1 }])).toThrow(/entry 0 has no string "ifname"/);
    expect(() => parseIpAddrJson([{ ifname: 'x' }])).toThrow(/ip -j addr show: entry 0 has no number "ifindex"/);
  });

  it('listLinks runs both ip commands through the runner', async () => {
    const calls: string[][] = [];
    const links = await listLinks(async (args) => {
      calls.push(args);
      return args.includes('link') ? fixture('host-link.json') : fixture('host-addr.json');
    });
    expect(calls).toEqual([
      ['-j', '-d', 'link', 'show'],
      ['-j', 'addr', 'show'],
    ]);
    expect(byName(links, 'eth0').addresses.map((a) => a.address)).toContain('192.0.2.2');
  });
});

describe('pickIdentityLink', () => {
  it('takes the first physical link by name', () => {
    const choice = pickIdentityLink(hostLinks());
    expect(choice.link.name).toBe('eth0');
    expect(choice.reason).toBe('first-physical');
    expect(choice.description).toBe('eth0 (first physical link by name)');
  });

  it('sorts by name, bytewise, not by index', () => {
    const mk = (name: string, index: number, mac: string): HostLink => ({
      name, index, kind: '', slaveKind: '', linkType: 'ether', mac, permanentMac: undefined, operstate: 'UP', flags: [], up: true, physical: true, mtu: 1500, addresses: [],
    });
    const links = [mk('eth1', 2, '02:00:00:00:00:02'), mk('enp0s3', 3, '02:00:00:00:00:03'), mk('Eth9', 4, '02:00:00:00:00:04')];
    expect(pickIdentityLink(links).link.name).toBe('Eth9');
    expect(pickIdentityLink(links.slice(0, 2)).link.name).toBe('enp0s3');
  });

  it('without physical links (a netns) falls back to the first non-loopback link with a MAC', () => {
    const choice = pickIdentityLink(netnsLinks());
    // br0 < eth0 < eth0-p < eth1 …; lo is skipped, kubespan (tun) has no MAC
    expect(choice.link.name).toBe('br0');
    expect(choice.reason).toBe('first-with-mac');
    expect(choice.description).toMatch(/no physical link/);
  });

  it('a configured link wins; a missing one or one without a MAC is an error', () => {
    const links = netnsLinks();
    expect(pickIdentityLink(links, 'eth0')).toMatchObject({ reason: 'configured', link: { mac: '2e:1a:b6:53:81:69' } });
    expect(() => pickIdentityLink(links, 'eth9')).toThrow(/kubespand\.identityLink: no link named "eth9" \(links: lo, eth1/);
    expect(() => pickIdentityLink(links, 'kubespan')).toThrow(/link "kubespan" has no usable hardware address/);
    expect(() => pickIdentityLink(links, 'lo')).toThrow(/link "lo" has no usable hardware address \(got "00:00:00:00:00:00"\)/);
  });

  it('only loopback and tun: nothing to derive the address from', () => {
    const links = netnsLinks().filter((l) => l.name === 'lo' || l.name === 'kubespan');
    expect(() => pickIdentityLink(links)).toThrow(/no link with a hardware address .* kubespand\.identityLink/);
  });
});
