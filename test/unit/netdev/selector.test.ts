/** Device selectors (spec §7): go-glob, AND of set fields, empty matches nothing, one-link errors. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { describeSelector, globMatch, matchesSelector, selectLinks, selectLinksForAll, selectOneLink } from '../../../src/netdev/selector.js';
import { readSysfsLinks } from '../../../src/netdev/sysfs.js';

const links = readSysfsLinks({ root: join(import.meta.dirname, '..', '..', 'fixtures', 'sysfs', 'workstation') });
const names = (sel: Parameters<typeof selectLinks>[0]) => selectLinks(sel, links).map((l) => l.name);

describe('globMatch (ryanuber/go-glob)', () => {
  it.each([
    ['', '', true],
    ['', 'a', false],
    ['*', '', true],
    ['*', 'anything', true],
    ['abc', 'abc', true],
    ['abc', 'abcd', false],
    ['ab*', 'ab', true],
    ['ab*', 'abc', true],
    ['*bc', 'abc', true],
    ['*bc', 'abcd', false],
    ['a*c', 'abbbc', true],
    ['a*c', 'ac', true],
    ['a*b*c', 'aXbYc', true],
    ['a*b*c', 'acb', false],
    ['*:00:*', '3c:fd:fe:0a:0b:00', false],
    ['*:0b:*', '3c:fd:fe:0a:0b:00', true],
    ['a?c', 'abc', false], // ? is literal
    ['[ab]', 'a', false], // no classes
    ['E1000*', 'e1000e', false], // case-sensitive
  ])('%j ~ %j → %s', (pattern, subject, want) => {
    expect(globMatch(pattern, subject)).toBe(want);
  });

  it('agrees with an independent regex translation on random inputs', () => {
    const alphabet = fc.constantFrom('a', 'b', ':', '*');
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 8 }), fc.array(fc.constantFrom('a', 'b', ':'), { maxLength: 8 }), (p, s) => {
        const pattern = p.join('');
        const subject = s.join('');
        const re = new RegExp(`^${pattern.split('*').map((x) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 's');
        expect(globMatch(pattern, subject)).toBe(re.test(subject));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('matchesSelector on the workstation fixture', () => {
  it('one field', () => {
    expect(names({ driver: 'i40e' })).toEqual(['eth1', 'eth2']);
    expect(names({ busPath: '0000:06:*' })).toEqual(['eth1', 'eth2']);
    expect(names({ pciID: '8086:15BC' })).toEqual(['eth0']);
    expect(names({ hardwareAddr: '00:e0:4c:*' })).toEqual(['eth3']);
    expect(names({ physical: true })).toEqual(['eth0', 'eth1', 'eth2', 'eth3']);
    expect(names({ physical: false })).toEqual(['lo', 'br0', 'dummy0']);
  });

  it('every set field must match (AND)', () => {
    expect(names({ driver: 'i40e', busPath: '*.1' })).toEqual(['eth2']);
    expect(names({ driver: 'i40e', hardwareAddr: '3c:*' })).toEqual(['eth1']);
    expect(names({ driver: 'e1000e', physical: false })).toEqual([]);
  });

  it('permanentAddr matches the permanent address, not the current one', () => {
    expect(names({ permanentAddr: '3c:fd:fe:*' })).toEqual(['eth1']);
    expect(names({ hardwareAddr: '02:00:00:00:00:42' })).toEqual(['eth2']);
    expect(names({ permanentAddr: '02:00:00:00:00:42' })).toEqual([]);
  });

  it('is case-sensitive: upper-case MACs never match, lower-case PCI ids never match', () => {
    expect(names({ hardwareAddr: '3C:EC:EF:01:02:03' })).toEqual([]);
    expect(names({ pciID: '8086:15bc' })).toEqual([]);
  });

  it('an empty selector (or one with only empty strings) matches nothing', () => {
    expect(names({})).toEqual([]);
    expect(names({ driver: '', busPath: '' })).toEqual([]);
    expect(links.some((l) => matchesSelector({}, l))).toBe(false);
  });

  it('an empty field is ignored next to a set one', () => {
    expect(names({ driver: '', pciID: '8086:1572' })).toEqual(['eth1', 'eth2']);
  });
});

describe('selectOneLink / selectLinksForAll', () => {
  it('returns the one link', () => {
    expect(selectOneLink({ busPath: '0000:00:1f.6' }, links, 'kubespand.identityLinkSelector').name).toBe('eth0');
  });
  it('names the field, the selector and the links when nothing matches', () => {
    expect(() => selectOneLink({ driver: 'ixgbe' }, links, 'machine.network.vip.deviceSelector')).toThrow(
      /^machine\.network\.vip\.deviceSelector: device selector \{driver: "ixgbe"\} matches no link \(links: lo .*eth0 \(hardwareAddr 3c:ec:ef:01:02:03, driver e1000e, busPath 0000:00:1f\.6\)/,
    );
  });
  it('refuses several matches where one is required', () => {
    expect(() => selectOneLink({ driver: 'i40e' }, links, 'kubespand.identityLinkSelector')).toThrow(
      'kubespand.identityLinkSelector: device selector {driver: "i40e"} matches 2 links (eth1, eth2); it must match exactly one: add a field such as hardwareAddr or busPath',
    );
  });
  it('refuses an empty selector', () => {
    expect(() => selectOneLink({}, links, 'f')).toThrow(/^f: the device selector is empty; an empty selector matches nothing/);
  });
  it('union of several selectors in link order; a selector matching nothing is an error with its index', () => {
    expect(selectLinksForAll([{ driver: 'r8152' }, { pciID: '8086:15BC' }], links, 'endpointLinks').map((l) => l.name)).toEqual(['eth0', 'eth3']);
    expect(() => selectLinksForAll([{ driver: 'r8152' }, { driver: 'mlx5_core' }], links, 'machine.network.kubespan.endpointLinks')).toThrow(
      /^machine\.network\.kubespan\.endpointLinks\[1\]: device selector \{driver: "mlx5_core"\} matches no link/,
    );
  });
  it('describeSelector lists set fields only', () => {
    expect(describeSelector({ hardwareAddr: '52:54:*', physical: true, driver: '' })).toBe('{hardwareAddr: "52:54:*", physical: true}');
  });
});
