/**
 * The links view on fixture sysfs trees (test/fixtures/sysfs/build.mjs says which hardware each
 * stands for): Talos's LinkStatus fields and the names systemd's policy would give.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseIpLinkJson } from '../../../src/kubespan/links.js';
import { listNetLinks, readSysfsLinks, type NetLink } from '../../../src/netdev/sysfs.js';

const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures', 'sysfs');
const workstation = readSysfsLinks({ root: join(FIXTURES, 'workstation') });
const vm = readSysfsLinks({ root: join(FIXTURES, 'qemu-vm') });

function link(links: NetLink[], name: string): NetLink {
  const l = links.find((x) => x.name === name);
  if (!l) throw new Error(`no ${name} in ${links.map((x) => x.name).join(',')}`);
  return l;
}

describe('readSysfsLinks on fixture trees', () => {
  it('lists every link in ifindex order', () => {
    expect(workstation.map((l) => `${l.index}:${l.name}`)).toEqual(['1:lo', '2:eth0', '3:eth1', '4:eth2', '5:eth3', '6:br0', '7:dummy0']);
    expect(vm.map((l) => l.name)).toEqual(['lo', 'eth0']);
  });

  it('a PCI NIC with an ACPI onboard index: eno1 first, then the path name with f6 (multi-function), then the MAC name', () => {
    expect(link(workstation, 'eth0')).toMatchObject({
      kind: '',
      linkType: 'ether',
      hardwareAddr: '3c:ec:ef:01:02:03',
      permanentAddr: '3c:ec:ef:01:02:03',
      driver: 'e1000e',
      busPath: '0000:00:1f.6',
      pciID: '8086:15BC',
      bus: 'pci',
      physical: true,
      mtu: 1500,
      operState: 'up',
      predictableNames: { onboard: 'eno1', path: 'enp0s31f6', mac: 'enx3cecef010203' },
      policyName: { name: 'eno1', policy: 'onboard' },
      alternativeNames: ['enp0s31f6', 'enx3cecef010203'],
    });
    expect(link(workstation, 'eth0').predictableNames.slot).toBeUndefined();
  });

  it('a NIC in a PCIe hotplug slot behind a root port: ens3f0, enp6s0f0 (bus 6 in decimal)', () => {
    expect(link(workstation, 'eth1')).toMatchObject({
      driver: 'i40e',
      busPath: '0000:06:00.0',
      pciID: '8086:1572',
      predictableNames: { slot: 'ens3f0', path: 'enp6s0f0', mac: 'enx3cfdfe0a0b00' },
      policyName: { name: 'ens3f0', policy: 'slot' },
    });
  });

  it('a MAC set from userspace (addr_assign_type 3): no MAC name and no permanent address without netlink', () => {
    const l = link(workstation, 'eth2');
    expect(l).toMatchObject({ hardwareAddr: '02:00:00:00:00:42', addrAssignType: 3, mtu: 9000, operState: 'down', predictableNames: { slot: 'ens3f1', path: 'enp6s0f1' } });
    expect(l.predictableNames.mac).toBeUndefined();
    expect(l.permanentAddr).toBeUndefined();
  });

  it('a USB NIC: the xHCI controller path plus u<port>, no PCI id, bus path = the USB interface', () => {
    expect(link(workstation, 'eth3')).toMatchObject({
      driver: 'r8152',
      busPath: '2-3:1.0',
      pciID: '',
      bus: 'usb',
      physical: true,
      predictableNames: { path: 'enp0s20f0u3', mac: 'enx00e04c680001' },
      policyName: { name: 'enp0s20f0u3', policy: 'path' },
    });
    expect(link(workstation, 'eth3').predictableNames.onboard).toBeUndefined();
  });

  it('a virtio NIC: names and bus path from its PCI parent, driver from the virtio device', () => {
    expect(link(vm, 'eth0')).toMatchObject({
      driver: 'virtio_net',
      busPath: '0000:00:03.0',
      pciID: '1AF4:1000',
      bus: 'pci',
      physical: true,
      predictableNames: { slot: 'ens3', path: 'enp0s3', mac: 'enx525400123456' },
      policyName: { name: 'ens3', policy: 'slot' },
      alternativeNames: ['enp0s3', 'enx525400123456'],
    });
  });

  it('virtual links have no driver, bus or names, are not physical, and keep a userspace name', () => {
    expect(link(workstation, 'br0')).toMatchObject({ kind: 'bridge', driver: '', busPath: '', physical: false, predictableNames: {}, policyName: { name: 'br0', policy: 'keep' } });
    expect(link(workstation, 'dummy0')).toMatchObject({ physical: false, predictableNames: {}, alternativeNames: [] });
    expect(link(workstation, 'lo')).toMatchObject({ linkType: 'loopback', physical: false, predictableNames: {}, policyName: { name: 'lo', policy: 'none' } });
  });

  it('joins netlink: kind and the permanent address of a link whose MAC was changed', () => {
    const netlink = parseIpLinkJson([
      { ifindex: 4, ifname: 'eth2', link_type: 'ether', address: '02:00:00:00:00:42', permaddr: '3C:FD:FE:0A:0B:01', operstate: 'DOWN', mtu: 9000 },
      { ifindex: 7, ifname: 'dummy0', link_type: 'ether', address: 'ce:5f:16:7d:21:9a', linkinfo: { info_kind: 'dummy' }, mtu: 1500 },
    ]);
    const links = readSysfsLinks({ root: join(FIXTURES, 'workstation'), netlink });
    expect(link(links, 'eth2').permanentAddr).toBe('3c:fd:fe:0a:0b:01');
    expect(link(links, 'dummy0').kind).toBe('dummy');
    // a link netlink did not list keeps what sysfs says
    expect(link(links, 'br0').kind).toBe('bridge');
  });

  it('listNetLinks asks netlink only through the runner it is given (none for a fixture root)', async () => {
    const calls: string[][] = [];
    const viaRunner = await listNetLinks({
      root: join(FIXTURES, 'qemu-vm'),
      run: async (args) => {
        calls.push(args);
        return JSON.stringify([{ ifindex: 2, ifname: 'eth0', link_type: 'ether', address: '52:54:00:12:34:56', linkinfo: { info_kind: 'veth' } }]);
      },
    });
    expect(calls).toEqual([['-j', '-d', 'link', 'show']]);
    expect(link(viaRunner, 'eth0')).toMatchObject({ kind: 'veth', physical: false });
    const plain = await listNetLinks({ root: join(FIXTURES, 'qemu-vm') });
    expect(link(plain, 'eth0').kind).toBe('');
  });

  describe('on a copy of a tree', () => {
    const dirs: string[] = [];
    afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
    function copy(name: string): string {
      const d = mkdtempSync(join(tmpdir(), 'ksv-sysfs-'));
      dirs.push(d);
      cpSync(join(FIXTURES, name), d, { recursive: true, verbatimSymlinks: true });
      return d;
    }

    it('a renamed link keeps its name (policy keep); the kernel-predictable flag keeps it too (policy kernel)', () => {
      const root = copy('qemu-vm');
      writeFileSync(join(root, 'devices/pci0000:00/0000:00:03.0/virtio0/net/eth0/name_assign_type'), '4\n');
      expect(link(readSysfsLinks({ root }), 'eth0').policyName).toEqual({ name: 'eth0', policy: 'keep' });
      writeFileSync(join(root, 'devices/pci0000:00/0000:00:03.0/virtio0/net/eth0/name_assign_type'), '2\n');
      expect(link(readSysfsLinks({ root }), 'eth0').policyName).toEqual({ name: 'eth0', policy: 'kernel' });
    });

    it('phys_port_name and dev_port suffixes', () => {
      const root = copy('workstation');
      const dir = 'devices/pci0000:00/0000:00:1c.0/0000:06:00.0/net/eth1';
      writeFileSync(join(root, dir, 'dev_port'), '1\n');
      expect(link(readSysfsLinks({ root }), 'eth1').predictableNames).toMatchObject({ slot: 'ens3f0d1', path: 'enp6s0f0d1' });
      writeFileSync(join(root, dir, 'phys_port_name'), 'p0\n');
      expect(link(readSysfsLinks({ root }), 'eth1').predictableNames).toMatchObject({ slot: 'ens3f0np0', path: 'enp6s0f0np0' });
    });

    it('an SMBIOS index when there is no ACPI index; a firmware index above 65535 is ignored', () => {
      const root = copy('workstation');
      const pci = 'devices/pci0000:00/0000:00:1f.6';
      rmSync(join(root, pci, 'acpi_index'));
      writeFileSync(join(root, pci, 'index'), '2\n');
      expect(link(readSysfsLinks({ root }), 'eth0').predictableNames.onboard).toBe('eno2');
      writeFileSync(join(root, pci, 'index'), '16777215\n');
      expect(link(readSysfsLinks({ root }), 'eth0').predictableNames.onboard).toBeUndefined();
      expect(link(readSysfsLinks({ root }), 'eth0').policyName).toEqual({ name: 'enp0s31f6', policy: 'path' });
    });

    it('a slot found at an upstream bridge names a single-function NIC only', () => {
      const root = copy('workstation');
      writeFileSync(join(root, 'bus/pci/slots/3/address'), '0000:00:1c\n');
      // the X710 is multi-function: the bridge's slot would be claimed by both ports
      expect(link(readSysfsLinks({ root }), 'eth1').predictableNames.slot).toBeUndefined();
      const config = Buffer.alloc(64);
      writeFileSync(join(root, 'devices/pci0000:00/0000:00:1c.0/0000:06:00.0/config'), config);
      expect(link(readSysfsLinks({ root }), 'eth1').predictableNames).toMatchObject({ slot: 'ens3', path: 'enp6s0' });
    });

    it('an SR-IOV virtual function gets no onboard name', () => {
      const root = copy('workstation');
      writeFileSync(join(root, 'devices/pci0000:00/0000:00:1f.6/physfn'), '');
      expect(link(readSysfsLinks({ root }), 'eth0').predictableNames.onboard).toBeUndefined();
    });
  });

  it('names the root when it has no class/net', () => {
    expect(() => readSysfsLinks({ root: join(FIXTURES, 'no-such-tree') })).toThrow(/sysfs root ".*no-such-tree": cannot list .*class\/net: ENOENT/);
  });
});
