/** Affiliates → peer specs: allowed-IP sets, exclusions, overlap rule, ordering (spec/kubespan.md §3.2). */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { buildPeerSpecs } from '../../src/peer/peer-spec.js';
import { IpSet } from '../../src/peer/ip-set.js';
import type { DiscoveredAffiliate } from '../../src/discovery/types.js';

function aff(nodeId: string, key: string | null, addresses: string[], extra: Partial<NonNullable<DiscoveredAffiliate['kubespan']>> = {}): DiscoveredAffiliate {
  return {
    nodeId,
    addresses,
    hostname: `${nodeId}.example`,
    nodename: nodeId,
    machineType: 'worker',
    operatingSystem: 'Talos (v1.11.0)',
    endpoints: [{ address: addresses[0] ?? '192.0.2.1', port: 51820 }],
    ...(key
      ? { kubespan: { publicKey: key, address: `fd00:0:0:2::${nodeId.charCodeAt(0).toString(16)}`, additionalAddresses: [], excludeAdvertisedAddresses: [], ...extra } }
      : {}),
  };
}

describe('buildPeerSpecs', () => {
  it('builds allowed IPs from pod CIDRs, node addresses and the KubeSpan address', () => {
    const r = buildPeerSpecs([aff('n1', 'K1', ['192.0.2.10', '2001:db8::10'], { additionalAddresses: ['10.244.1.0/24'] })], 'LOCAL');
    expect(r.specs).toHaveLength(1);
    expect(r.specs[0]!.allowedIps).toEqual(['10.244.1.0/24', '192.0.2.10/32', '2001:db8::10/128', 'fd00:0:0:2::6e/128']);
    expect(r.specs[0]!.label).toBe('n1');
    expect(r.specs[0]!.affiliateId).toBe('n1');
  });

  it('skips ourselves and affiliates without KubeSpan', () => {
    const r = buildPeerSpecs([aff('n1', 'LOCAL', ['192.0.2.1']), aff('n2', null, ['192.0.2.2']), aff('n3', 'K3', ['192.0.2.3'])], 'LOCAL');
    expect(r.specs.map((s) => s.publicKey)).toEqual(['K3']);
  });

  it('removes the peer’s own exclusions but always keeps its KubeSpan address', () => {
    const r = buildPeerSpecs([aff('n1', 'K1', ['192.0.2.10', '10.0.0.5'], { additionalAddresses: ['10.244.0.0/16'], excludeAdvertisedAddresses: ['10.244.128.0/17', '10.0.0.0/8', 'fd00::/8'] })], 'L');
    expect(r.specs[0]!.allowedIps).toEqual(['192.0.2.10/32', 'fd00:0:0:2::6e/128']);
  });

  it('gives an overlapping range to the first peer in affiliate-id order', () => {
    const vip = '192.0.2.100';
    const r = buildPeerSpecs([aff('b-node', 'KB', ['192.0.2.2', vip]), aff('a-node', 'KA', ['192.0.2.1', vip])], 'L');
    expect(r.specs.map((s) => s.publicKey)).toEqual(['KA', 'KB']);
    expect(r.specs[0]!.allowedIps).toContain('192.0.2.100/32');
    expect(r.specs[1]!.allowedIps).not.toContain('192.0.2.100/32');
    expect(r.overlaps).toEqual([{ publicKey: 'KB', label: 'b-node', removed: ['192.0.2.100/32'], keptBy: ['KA'] }]);
  });

  it('splits a partly overlapping CIDR into the minimal cover of what is left', () => {
    const r = buildPeerSpecs([aff('a', 'KA', ['192.0.2.1'], { additionalAddresses: ['10.0.0.0/25'] }), aff('b', 'KB', ['192.0.2.2'], { additionalAddresses: ['10.0.0.0/24'] })], 'L');
    expect(r.specs[1]!.allowedIps.filter((c) => c.startsWith('10.'))).toEqual(['10.0.0.128/25']);
  });
});

describe('buildPeerSpecs overlap rule on random clusters', () => {
  it('gives every address to exactly one peer and loses nothing but duplicates', () => {
    const prefix = fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 22, max: 32 })).map(([b, c, bits]) => `10.0.${b}.${c}/${bits}`);
    fc.assert(
      fc.property(fc.array(fc.array(prefix, { maxLength: 4 }), { minLength: 1, maxLength: 12 }), (peers) => {
        const affs = peers.map((extra, i) => aff(`n${String(i).padStart(2, '0')}`, `K${i}`, [`192.0.2.${i + 1}`], { additionalAddresses: extra, address: `fd00::${i + 1}` }));
        const r = buildPeerSpecs(affs, 'L');
        const sets = r.specs.map((sp) => IpSet.of(sp.allowedIps));
        for (let i = 0; i < sets.length; i++) for (let j = i + 1; j < sets.length; j++) expect(sets[i]!.overlaps(sets[j]!)).toBe(false);
        const want = new IpSet();
        for (const a of affs) want.addSet(IpSet.of([...a.kubespan!.additionalAddresses, ...a.addresses.map((x) => `${x}/32`), `${a.kubespan!.address}/128`]));
        const got = new IpSet();
        for (const s of sets) got.addSet(s);
        expect(got.cidrs()).toEqual(want.cidrs());
      }),
      { numRuns: 200 },
    );
  });
});

describe('IpSet', () => {
  it('covers ranges with the minimal CIDR list', () => {
    const s = IpSet.of(['10.0.0.0/24']).removeSet(IpSet.of(['10.0.0.7/32']));
    expect(s.cidrs()).toEqual(['10.0.0.0/30', '10.0.0.4/31', '10.0.0.6/32', '10.0.0.8/29', '10.0.0.16/28', '10.0.0.32/27', '10.0.0.64/26', '10.0.0.128/25']);
    expect(IpSet.of(['10.0.0.0/25', '10.0.0.128/25']).cidrs()).toEqual(['10.0.0.0/24']);
    expect(IpSet.of(['::/0']).cidrs()).toEqual(['::/0']);
    expect(IpSet.of(['0.0.0.0/0']).removeSet(IpSet.of(['0.0.0.0/0'])).isEmpty).toBe(true);
  });

  it('agrees with a naive address oracle on random sets (IPv4, small space)', () => {
    const prefix = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 24, max: 32 })).map(([last, bits]) => `10.0.0.${last}/${bits}`);
    fc.assert(
      fc.property(fc.array(prefix, { maxLength: 6 }), fc.array(prefix, { maxLength: 6 }), (adds, removes) => {
        const naive = new Set<number>();
        const range = (c: string) => {
          const [ip, bits] = c.split('/');
          const last = Number(ip!.split('.')[3]);
          const size = 2 ** (32 - Number(bits));
          const start = last - (last % size);
          return Array.from({ length: size }, (_, i) => start + i);
        };
        for (const a of adds) for (const x of range(a)) naive.add(x);
        for (const r of removes) for (const x of range(r)) naive.delete(x);
        const got = new Set<number>();
        for (const c of IpSet.of(adds).removeSet(IpSet.of(removes)).cidrs()) for (const x of range(c)) got.add(x);
        expect([...got].sort((a, b) => a - b)).toEqual([...naive].sort((a, b) => a - b));
      }),
      { numRuns: 300 },
    );
  });
});
