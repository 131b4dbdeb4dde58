/** systemd's predictable names (scheme v253) from NamingInput tables, and the NamePolicy choice. */
import { describe, expect, it } from 'vitest';
import { alternativeNames, chooseName, parsePciAddress, predictableNames, usbSuffix, type NamingInput } from '../../../src/netdev/names.js';

function input(over: Partial<NamingInput>): NamingInput {
  return { name: 'eth0', ifindex: 2, iflink: 2, type: 1, devtype: '', addrAssignType: 0, nameAssignType: 1, address: '52:54:00:aa:bb:cc', devPort: 0, physPortName: '', ...over };
}

const pci = (addr: string, over: Partial<NonNullable<NamingInput['pci']>> = {}): NonNullable<NamingInput['pci']> => ({
  address: parsePciAddress(addr)!,
  direct: true,
  multifunction: false,
  onboardIndex: undefined,
  hotplugSlot: undefined,
  isVirtualFunction: false,
  ...over,
});

describe('predictableNames', () => {
  it.each([
    ['plain PCI NIC', input({ pci: pci('0000:02:00.0') }), { path: 'enp2s0', mac: 'enx525400aabbcc' }],
    ['function 1 always shows f', input({ pci: pci('0000:02:00.1') }), { path: 'enp2s0f1', mac: 'enx525400aabbcc' }],
    ['PCI domain > 0 adds P', input({ pci: pci('0001:02:00.0', { hotplugSlot: 4 }) }), { slot: 'enP1s4', path: 'enP1p2s0', mac: 'enx525400aabbcc' }],
    ['bus and slot numbers in decimal', input({ pci: pci('0000:3b:1f.0') }), { path: 'enp59s31', mac: 'enx525400aabbcc' }],
    ['onboard with dev_port', input({ devPort: 2, pci: pci('0000:00:19.0', { onboardIndex: 3 }) }), { onboard: 'eno3d2', path: 'enp0s25d2', mac: 'enx525400aabbcc' }],
    ['onboard index 0 is ignored', input({ pci: pci('0000:00:19.0', { onboardIndex: 0 }) }), { path: 'enp0s25', mac: 'enx525400aabbcc' }],
    ['wlan prefix', input({ devtype: 'wlan', pci: pci('0000:03:00.0') }), { path: 'wlp3s0', mac: 'wlx525400aabbcc' }],
    ['wwan prefix', input({ devtype: 'wwan', addrAssignType: 1, pci: pci('0000:04:00.0') }), { path: 'wwp4s0' }],
    ['InfiniBand prefix, no MAC name for a 20-byte address', input({ type: 32, address: undefined, pci: pci('0000:05:00.0') }), { path: 'ibp5s0' }],
    ['random MAC: no MAC name', input({ addrAssignType: 1, pci: pci('0000:02:00.0') }), { path: 'enp2s0' }],
    ['all-zero MAC: no MAC name', input({ address: '00:00:00:00:00:00' }), {}],
    ['stacked device (iflink ≠ ifindex): nothing', input({ iflink: 9, pci: pci('0000:02:00.0') }), {}],
    ['loopback type: nothing', input({ type: 772 }), {}],
    ['USB with config 2 and interface 1', input({ usbInterface: '1-4.2:2.1', pci: pci('0000:00:14.0', { direct: false, multifunction: true, hotplugSlot: 7 }) }), { slot: 'ens7f0u4u2c2i1', path: 'enp0s20f0u4u2c2i1', mac: 'enx525400aabbcc' }],
  ])('%s', (_what, i, want) => {
    expect(predictableNames(i)).toEqual(want);
  });

  it('usbSuffix rejects a name that is not a USB interface', () => {
    expect(usbSuffix('2-3:1.0')).toBe('u3');
    expect(usbSuffix('usb2')).toBeUndefined();
  });

  it('parsePciAddress reads hex fields and refuses other names', () => {
    expect(parsePciAddress('0000:3b:1f.7')).toEqual({ domain: 0, bus: 0x3b, slot: 0x1f, func: 7 });
    expect(parsePciAddress('virtio0')).toBeUndefined();
    expect(parsePciAddress('0000:00:03.8')).toBeUndefined();
  });
});

describe('chooseName (NamePolicy = keep kernel database onboard slot path mac)', () => {
  const names = { onboard: 'eno1', slot: 'ens1', path: 'enp0s1', mac: 'enx525400aabbcc' };
  it('takes the first predictable name in policy order', () => {
    expect(chooseName(input({}), names)).toEqual({ name: 'eno1', policy: 'onboard' });
    expect(chooseName(input({}), { path: 'enp0s1', mac: 'enx525400aabbcc' })).toEqual({ name: 'enp0s1', policy: 'path' });
    expect(chooseName(input({}), { mac: 'enx525400aabbcc' })).toEqual({ name: 'enx525400aabbcc', policy: 'mac' });
  });
  it('keeps userspace (3) and renamed (4) names, and kernel-predictable (2) names', () => {
    expect(chooseName(input({ name: 'lan0', nameAssignType: 3 }), names)).toEqual({ name: 'lan0', policy: 'keep' });
    expect(chooseName(input({ name: 'lan0', nameAssignType: 4 }), names)).toEqual({ name: 'lan0', policy: 'keep' });
    expect(chooseName(input({ name: 'eth7', nameAssignType: 2 }), names)).toEqual({ name: 'eth7', policy: 'kernel' });
  });
  it('skips a name too long for IFNAMSIZ, and keeps the kernel name when nothing applies', () => {
    expect(chooseName(input({}), { path: 'enp0s20f0u4u2c2i1', mac: 'enx525400aabbcc' })).toEqual({ name: 'enx525400aabbcc', policy: 'mac' });
    expect(chooseName(input({}), {})).toEqual({ name: 'eth0', policy: 'none' });
  });
  it('alternative names: the rest, in policy order, without duplicates', () => {
    expect(alternativeNames(names, 'eno1')).toEqual(['ens1', 'enp0s1', 'enx525400aabbcc']);
  });
});
