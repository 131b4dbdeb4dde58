import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { filterIps, localEndpoints, prefixContains, routedAddresses, usableNodeAddresses } from '../../../src/kubespan/endpoints.js';
import { mergeLinksAndAddresses, parseIpAddrJson, parseIpLinkJson, type HostAddress, type HostLink } from '../../../src/kubespan/links.js';
import { parseIp, parsePrefix } from '../../../src/noise/allowed-ips.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const netnsLinks = () =>
  mergeLinksAndAddresses(
    parseIpLinkJson(readFileSync(join(FIXTURES, 'netns-link.json'), 'utf8')),
    parseIpAddrJson(readFileSync(join(FIXTURES, 'netns-addr.json'), 'utf8')),
  );

function addr(text: string, scope = 'global', extra: Partial<HostAddress> = {}): HostAddress {
  const [address, len] = text.split('/');
  return { address: address!, prefixLen: Number(len), scope, family: address!.includes(':') ? 6 : 4, dadFailed: false, tentative: false, ...extra };
}
function link(name: string, addresses: HostAddress[], over: Partial<HostLink> = {}): HostLink {
  return { name, index: 1, kind: '', slaveKind: '', linkType: 'ether', mac: '02:00:00:00:00:01', permanentMac: undefined, operstate: 'UP', flags: ['UP', 'LOWER_UP'], up: true, physical: true, mtu: 1500, addresses, ...over };
}

describe('filterIps (spec §4.2, sequential "!" semantics)', () => {
  const ips = ['10.0.0.1', '192.168.1.5', '172.16.0.3', '2001:db8::1', '2001::5', 'fd00::7', '192.168.200.1'];

  it.each<[string, string[], string[]]>([
    // the Talos test example: all IPv4 except 192.168/16, and only 2001::/16 IPv6
    ['talos example', ['0.0.0.0/0', '!192.168.0.0/16', '2001::/16'], ['10.0.0.1', '172.16.0.3', '2001:db8::1', '2001::5']],
    ['everything, grouped by entry', ['0.0.0.0/0', '::/0'], ['10.0.0.1', '192.168.1.5', '172.16.0.3', '192.168.200.1', '2001:db8::1', '2001::5', 'fd00::7']],
    ['only negations advertise nothing', ['!192.168.0.0/16', '!10.0.0.0/8'], []],
    ['a negation before the positive removes nothing', ['!192.168.0.0/16', '0.0.0.0/0'], ['10.0.0.1', '192.168.1.5', '172.16.0.3', '192.168.200.1']],
    ['a later positive re-adds what a negation removed', ['0.0.0.0/0', '!192.168.0.0/16', '192.168.200.0/24'], ['10.0.0.1', '172.16.0.3', '192.168.200.1']],
    ['output grouped by first matching positive', ['fd00::/8', '172.16.0.0/12', '0.0.0.0/0'], ['fd00::7', '172.16.0.3', '10.0.0.1', '192.168.1.5', '192.168.200.1']],
    ['bare IPs are /32 and /128', ['192.168.1.5', '2001::5'], ['192.168.1.5', '2001::5']],
    ['no duplicates when two positives overlap', ['10.0.0.0/8', '0.0.0.0/0', '10.0.0.1'], ['10.0.0.1', '192.168.1.5', '172.16.0.3', '192.168.200.1']],
    ['IPv4 prefixes never match IPv6 and back', ['::/0'], ['2001:db8::1', '2001::5', 'fd00::7']],
    ['negating one address', ['::/0', '!2001:db8::1'], ['2001::5', 'fd00::7']],
    ['an empty list keeps nothing (a walk over no entries)', [], []],
  ])('%s', (_name, filters, expected) => {
    expect(filterIps(ips, filters)).toEqual(expected);
  });

  it('deduplicates candidates by address and keeps them as given', () => {
    expect(filterIps(['2001:DB8::1', '2001:db8:0::1', '10.0.0.1'], ['::/0', '0.0.0.0/0'])).toEqual(['2001:DB8::1', '10.0.0.1']);
  });

  it('names a bad filter entry', () => {
    expect(() => filterIps(ips, ['0.0.0.0/0', '!10.0.0.0/33'])).toThrow(/filters\[1\]: "!10\.0\.0\.0\/33" is not a CIDR or IP address/);
    expect(() => filterIps(['nope'], ['0.0.0.0/0'])).toThrow(/ips\[0\]/);
  });
});

describe('prefixContains', () => {
  it.each<[string, string, boolean]>([
    ['10.0.0.0/8', '10.255.1.2', true],
    ['10.0.0.0/8', '11.0.0.0', false],
    ['192.168.0.0/17', '192.168.127.255', true],
    ['192.168.0.0/17', '192.168.128.0', false],
    ['0.0.0.0/0', '1.2.3.4', true],
    ['0.0.0.0/0', '::1', false],
    ['fe80::/10', 'febf::1', true],
    ['fe80::/10', 'fec0::1', false],
    ['::/0', '::ffff:1.2.3.4', true],
    ['1.2.3.4/32', '1.2.3.4', true],
  ])('%s ∋ %s = %s', (p, ip, want) => {
    expect(prefixContains(parsePrefix(p), parseIp(ip))).toBe(want);
  });
});

describe('usableNodeAddresses (spec §3.5)', () => {
  it('on a network namespace fixture keeps only advertisable addresses, in v2 order', () => {
    const got = usableNodeAddresses(netnsLinks(), { kubespanAddress: 'fd7f:175a:b97c:5602:2c1a:b6ff:fe53:8169/128' });
    // dropped: lo (127.0.0.1, 203.0.113.10 on loopback), 10.200.0.5 (scope link), 169.254.10.1 (link-local),
    // 224.0.0.251 (multicast), fe80:: (scope link), br0/vethbr-p (down), kubespan (own ULA)
    // order: IPv4 first, more specific prefix first (/24 before /8), then by address
    expect(got).toEqual(['10.5.0.2', '172.16.9.1', '192.168.7.1', '10.0.0.9', '2001:db8:5::2']);
  });

  it('drops our KubeSpan /64 even on another link, and SideroLink ULAs', () => {
    const links = [
      link('eth0', [
        addr('fd7f:175a:b97c:5602::99/64'),
        addr('fd7f:175a:b97c:5602:2c1a:b6ff:fe53:8169/64'),
        addr('fdae:41e4:649b:9303::1/64'), // SideroLink
        addr('fd11:2233:4455:6602::1/64'), // another KubeSpan cluster's ULA: a normal address here
        addr('2001:db8::10/64'),
      ]),
    ];
    expect(usableNodeAddresses(links, { kubespanAddress: 'fd7f:175a:b97c:5602:2c1a:b6ff:fe53:8169' })).toEqual(['2001:db8::10', 'fd11:2233:4455:6602::1']);
  });

  it('never advertises link-local: a cloud anchor IP (scope link) or 169.254/16 and fe80::/10 with any scope', () => {
    const links = [link('eth0', [addr('10.20.0.5/16', 'link'), addr('169.254.1.1/16'), addr('fe80::1/64'), addr('203.0.113.5/24')])];
    expect(usableNodeAddresses(links)).toEqual(['203.0.113.5']);
  });

  it('drops host scope, loopback, unspecified, DAD-failed, down links and excluded prefixes; keeps site scope', () => {
    const links = [
      link('eth0', [
        addr('127.0.0.2/8'),
        addr('10.0.0.1/24', 'host'),
        addr('0.0.0.0/0'),
        addr('2001:db8::bad/64', 'global', { dadFailed: true }),
        addr('fec0::1/64', 'site'),
        addr('10.244.1.0/32'),
        addr('10.1.1.1/24'),
      ]),
      link('eth1', [addr('198.51.100.1/24')], { up: false }),
      link('kubespan', [addr('10.99.0.1/24')], { linkType: 'none' }),
    ];
    expect(usableNodeAddresses(links, { excludePrefixes: ['10.244.0.0/16'] })).toEqual(['10.1.1.1', 'fec0::1']);
  });

  it('deduplicates an address present twice, keeping the more specific position', () => {
    const links = [link('eth0', [addr('10.0.0.5/8')]), link('eth1', [addr('10.0.0.5/32'), addr('10.0.0.4/24')])];
    expect(usableNodeAddresses(links)).toEqual(['10.0.0.5', '10.0.0.4']);
  });
});

describe('localEndpoints', () => {
  it('appends the Hello public IP when absent, pairs with 51820, appends extras deduplicated and unfiltered', () => {
    expect(
      localEndpoints({
        addresses: ['10.0.0.2', '192.168.1.2', '2001:db8::2'],
        publicIps: ['198.51.100.7', '10.0.0.2'],
        filters: ['0.0.0.0/0', '!192.168.0.0/16', '::/0'],
        extraAnnouncedEndpoints: [
          { address: '192.168.1.2', port: 51820 }, // filtered out above, but extras are never filtered
          { address: '203.0.113.1', port: 40000 },
          { address: '10.0.0.2', port: 51820 }, // already there
          { address: '203.0.113.1', port: 40000 },
        ],
      }),
    ).toEqual([
      // the filter groups output by its first matching entry: all IPv4 (with the Hello IP), then IPv6
      { address: '10.0.0.2', port: 51820 },
      { address: '198.51.100.7', port: 51820 },
      { address: '2001:db8::2', port: 51820 },
      { address: '192.168.1.2', port: 51820 },
      { address: '203.0.113.1', port: 40000 },
    ]);
  });

  it('no filters means no filtering; the public IP passes through filters like any address', () => {
    expect(localEndpoints({ addresses: ['10.0.0.2'], publicIps: ['198.51.100.7'], port: 51999 })).toEqual([
      { address: '10.0.0.2', port: 51999 },
      { address: '198.51.100.7', port: 51999 },
    ]);
    expect(localEndpoints({ addresses: ['10.0.0.2'], publicIps: ['198.51.100.7'], filters: ['10.0.0.0/8'] })).toEqual([{ address: '10.0.0.2', port: 51820 }]);
  });

  it('only negations advertise no addresses, but extras still go out', () => {
    expect(localEndpoints({ addresses: ['10.0.0.2'], filters: ['!10.0.0.0/8'], extraAnnouncedEndpoints: [{ address: '2001:db8::9', port: 1 }] })).toEqual([
      { address: '2001:db8::9', port: 1 },
    ]);
  });

  it('refuses a bad port', () => {
    expect(() => localEndpoints({ addresses: [], port: 0 })).toThrow(/port: must be 1–65535 \(got 0\)/);
  });
});

describe('routedAddresses', () => {
  it('usable addresses outside the pod CIDRs plus the KubeSpan address', () => {
    expect(
      routedAddresses({
        addresses: ['10.0.0.2', '10.244.3.1', '2001:db8::2', '10.0.0.2'],
        kubespanAddress: 'fd7f:175a:b97c:5602:2c1a:b6ff:fe53:8169/128',
        podCIDRs: ['10.244.3.0/24', parsePrefix('fd00:10:244:3::/64')],
      }),
    ).toEqual(['10.0.0.2', '2001:db8::2', 'fd7f:175a:b97c:5602:2c1a:b6ff:fe53:8169']);
  });

  it('does not repeat the KubeSpan address', () => {
    expect(routedAddresses({ addresses: ['fd7f:175a:b97c:5602::1'], kubespanAddress: 'fd7f:175a:b97c:5602::1' })).toEqual(['fd7f:175a:b97c:5602::1']);
  });
});
