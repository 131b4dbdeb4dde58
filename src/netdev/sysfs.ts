/**
 * The host's links as the kernel describes them in sysfs (`<root>/class/net/*`), optionally joined
 * with what netlink adds (`ip -j -d link show`: the link kind and the permanent address). The sysfs
 * root is a parameter, so tests read fixture trees that stand for real hardware; on a live host it
 * is `/sys` (inside `ip netns exec`, the namespace's own sysfs).
 *
 * Per link (file names under `class/net/<name>/`):
 * - `ifindex`, `iflink`, `type` (ARPHRD), `address`, `addr_assign_type`, `name_assign_type`, `mtu`,
 *   `operstate`, `dev_port`, `phys_port_name`, `uevent` (DEVTYPE);
 * - `device` → the parent device, resolved: its `driver` link gives the driver; a `virtio<N>`
 *   device is skipped to reach its PCI parent; a USB interface (`<bus>-<ports>:<config>.<intf>`)
 *   leads up to its PCI host controller;
 * - on the PCI device: `vendor`/`device` (PCI id, Talos's `VVVV:DDDD` upper-case form, falling
 *   back to uevent PCI_ID), `acpi_index`/`index` (onboard), `config` (multi-function bit),
 *   `physfn` (SR-IOV VF); hotplug slots from `<root>/bus/pci/slots/<N>/address`.
 *
 * Talos-compatible fields (LinkStatus): `busPath` is the bus address of the parent device after
 * skipping virtio (a PCI device `0000:06:00.0`; a USB interface `2-3:1.0`; other buses the device
 * name); `pciID` `VVVV:DDDD` (empty off PCI); `driver`; `physical` = Ethernet, no link kind, and a
 * parent device. The permanent address is netlink's when it shows one, else the current address
 * when `addr_assign_type` is 0 (NET_ADDR_PERM: the current address is the permanent one).
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parseIpLinkJson, runIp, type IpRunner, type ParsedLink } from '../kubespan/links.js';
import {
  alternativeNames,
  ARPHRD_ETHER,
  chooseName,
  parsePciAddress,
  predictableNames,
  type NameChoice,
  type NamingInput,
  type PciAddress,
  type PredictableNames,
} from './names.js';

export const DEFAULT_SYSFS_ROOT = '/sys';

/** A link as `kubespand get links` shows it and device selectors match it. */
export interface NetLink {
  name: string;
  index: number;
  /** Link kind from netlink (`veth`, `bridge`, `dummy`, …) or sysfs hints (DEVTYPE, tun_flags); '' for plain hardware. */
  kind: string;
  /** ARPHRD name: ether, loopback, none, infiniband, … (`arphrd<N>` for others). */
  linkType: string;
  /** Current hardware address, lowercase colon form. */
  hardwareAddr: string | undefined;
  permanentAddr: string | undefined;
  /** `addr_assign_type`: 0 permanent, 1 random, 2 stolen, 3 set by userspace. */
  addrAssignType: number | undefined;
  driver: string;
  busPath: string;
  pciID: string;
  /** Bus of the parent device after skipping virtio (`pci`, `usb`, `platform`, …); '' for virtual links. */
  bus: string;
  physical: boolean;
  mtu: number;
  operState: string;
  predictableNames: PredictableNames;
  /** The name systemd's NamePolicy would give the link. */
  policyName: NameChoice;
  alternativeNames: string[];
}

export interface ReadLinksOptions {
  /** sysfs mount point; default `/sys`. */
  root?: string;
  /** Netlink's view of the same links (src/kubespan/links.ts `parseIpLinkJson`), joined by name. */
  netlink?: ParsedLink[];
}

const ARPHRD_NAMES: Record<number, string> = {
  1: 'ether',
  24: 'ieee1394',
  32: 'infiniband',
  256: 'slip',
  512: 'ppp',
  768: 'ipip',
  769: 'tunnel6',
  772: 'loopback',
  776: 'sit',
  778: 'gre',
  801: 'ieee80211',
  803: 'ieee80211_radiotap',
  823: 'ip6gre',
  65534: 'none',
  65535: 'void',
};

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2})+$/;

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    // missing, or an attribute the driver does not support (EINVAL / EOPNOTSUPP on read)
    return undefined;
  }
}

function readInt(path: string): number | undefined {
  const t = readText(path);
  if (t === undefined || t === '') return undefined;
  const n = t.startsWith('0x') ? parseInt(t.slice(2), 16) : Number(t);
  return Number.isFinite(n) ? n : undefined;
}

function linkTarget(path: string): string | undefined {
  try {
    return basename(readlinkSync(path));
  } catch {
    return undefined;
  }
}

function parseUevent(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of (readText(path) ?? '').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

function macText(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const t = text.toLowerCase();
  return MAC.test(t) ? t : undefined;
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

interface Device {
  path: string;
  subsystem: string;
  uevent: Record<string, string>;
}

function device(path: string): Device {
  return { path, subsystem: linkTarget(join(path, 'subsystem')) ?? '', uevent: parseUevent(join(path, 'uevent')) };
}

/** Multi-function: header type bit 0x80 of the config space, else another function of the same slot beside it. */
function isMultifunction(pciDir: string, address: PciAddress): boolean {
  try {
    const config = readFileSync(join(pciDir, 'config'));
    if (config.length > 0x0e) return (config[0x0e]! & 0x80) !== 0;
  } catch {
    /* no config file: look at the siblings */
  }
  const self = basename(pciDir);
  const stem = self.slice(0, self.lastIndexOf('.'));
  try {
    return readdirSync(dirname(pciDir)).some((n) => n !== self && n.startsWith(`${stem}.`) && parsePciAddress(n)?.slot === address.slot);
  } catch {
    return false;
  }
}

/** `<root>/bus/pci/slots/<N>/address` → `DDDD:BB:SS` → slot number (numeric slot names only, as systemd). */
function hotplugSlots(root: string): Map<string, number> {
  const out = new Map<string, number>();
  const dir = join(root, 'bus', 'pci', 'slots');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    if (!/^\d+$/.test(n)) continue;
    const address = readText(join(dir, n, 'address'));
    if (address && !out.has(address.toLowerCase())) out.set(address.toLowerCase(), Number(n));
  }
  return out;
}

function slotKey(address: PciAddress): string {
  const hex = (v: number, w: number) => v.toString(16).padStart(w, '0');
  return `${hex(address.domain, 4)}:${hex(address.bus, 2)}:${hex(address.slot, 2)}`;
}

/** The hotplug slot of `pciDir` or of an upstream PCI device; a slot of a bridge only for a single-function NIC. */
function findHotplugSlot(pciDir: string, slots: Map<string, number>, nicMultifunction: boolean): number | undefined {
  let cur = pciDir;
  for (;;) {
    const address = parsePciAddress(basename(cur));
    if (!address || device(cur).subsystem !== 'pci') return undefined;
    const slot = slots.get(slotKey(address));
    if (slot !== undefined) {
      // a bridge's slot would be claimed by every function below it
      if (cur !== pciDir && nicMultifunction) return undefined;
      return slot;
    }
    cur = dirname(cur);
  }
}

function pciId(pciDir: string, uevent: Record<string, string>): string {
  const vendor = readText(join(pciDir, 'vendor'));
  const dev = readText(join(pciDir, 'device'));
  if (vendor && dev) {
    const strip = (s: string) => s.replace(/^0x/i, '').toUpperCase().padStart(4, '0');
    return `${strip(vendor)}:${strip(dev)}`;
  }
  return (uevent.PCI_ID ?? '').toUpperCase();
}

function inferKind(linkDir: string, devtype: string): string {
  if (['bridge', 'bond', 'vlan', 'wireguard', 'vxlan', 'macvlan', 'team'].includes(devtype)) return devtype;
  if (existsSync(join(linkDir, 'tun_flags'))) return 'tun';
  if (isDir(join(linkDir, 'bridge'))) return 'bridge';
  if (isDir(join(linkDir, 'bonding'))) return 'bond';
  return '';
}

/** Reads one link directory; `slots` is the hotplug slot table of the same root. */
function readLink(root: string, name: string, slots: Map<string, number>, nl: ParsedLink | undefined): NetLink {
  const dir = join(root, 'class', 'net', name);
  const linkUevent = parseUevent(join(dir, 'uevent'));
  const devtype = linkUevent.DEVTYPE ?? '';
  const ifindex = readInt(join(dir, 'ifindex')) ?? nl?.index ?? 0;
  const type = readInt(join(dir, 'type')) ?? 0;
  const hardwareAddr = macText(readText(join(dir, 'address'))) ?? nl?.mac;
  const addrAssignType = readInt(join(dir, 'addr_assign_type'));
  const kind = nl ? nl.kind : inferKind(dir, devtype);

  let driver = '';
  let busPath = '';
  let pciID = '';
  let bus = '';
  let pci: NamingInput['pci'];
  let usbInterface: string | undefined;
  let parent: Device | undefined;
  const devLink = join(dir, 'device');
  if (existsSync(devLink)) {
    const own = device(realpathSync(devLink));
    driver = linkTarget(join(own.path, 'driver')) ?? own.uevent.DRIVER ?? '';
    parent = own;
    if (own.subsystem === 'virtio') {
      const up = device(dirname(own.path));
      if (up.subsystem === 'pci') parent = up;
    }
    bus = parent.subsystem;
    busPath = basename(parent.path);
    let pciDev: Device | undefined;
    let direct = false;
    if (parent.subsystem === 'pci') {
      pciDev = parent;
      direct = true;
    } else if (parent.subsystem === 'usb' && parent.uevent.DEVTYPE === 'usb_interface') {
      usbInterface = basename(parent.path);
      for (let p = dirname(parent.path); p.length > root.length && p !== dirname(p); p = dirname(p)) {
        const d = device(p);
        if (d.subsystem === 'pci') {
          pciDev = d;
          break;
        }
      }
    }
    if (pciDev) {
      const address = parsePciAddress(basename(pciDev.path));
      if (address) {
        if (direct) pciID = pciId(pciDev.path, pciDev.uevent);
        const multifunction = isMultifunction(pciDev.path, address);
        pci = {
          address,
          direct,
          multifunction,
          onboardIndex: readInt(join(pciDev.path, 'acpi_index')) ?? readInt(join(pciDev.path, 'index')),
          hotplugSlot: findHotplugSlot(pciDev.path, slots, multifunction),
          isVirtualFunction: existsSync(join(pciDev.path, 'physfn')),
        };
      }
    }
  }

  const naming: NamingInput = {
    name,
    ifindex,
    iflink: readInt(join(dir, 'iflink')) ?? ifindex,
    type,
    devtype,
    addrAssignType,
    nameAssignType: readInt(join(dir, 'name_assign_type')),
    address: hardwareAddr,
    devPort: readInt(join(dir, 'dev_port')) ?? 0,
    physPortName: readText(join(dir, 'phys_port_name')) ?? '',
    ...(pci ? { pci } : {}),
    ...(usbInterface !== undefined ? { usbInterface } : {}),
  };
  const names = predictableNames(naming);
  const policyName = chooseName(naming, names);
  const permanentAddr = nl?.permanentMac ?? (addrAssignType === 0 ? hardwareAddr : undefined);
  return {
    name,
    index: ifindex,
    kind,
    linkType: ARPHRD_NAMES[type] ?? `arphrd${type}`,
    hardwareAddr,
    permanentAddr,
    addrAssignType,
    driver,
    busPath,
    pciID,
    bus,
    physical: type === ARPHRD_ETHER && kind === '' && parent !== undefined,
    mtu: readInt(join(dir, 'mtu')) ?? nl?.mtu ?? 0,
    operState: (readText(join(dir, 'operstate')) ?? nl?.operstate ?? 'unknown').toLowerCase(),
    predictableNames: names,
    policyName,
    alternativeNames: alternativeNames(names, policyName.name),
  };
}

/**
 * Every link under `<root>/class/net`, in ifindex order. Throws naming the root when it has no
 * `class/net` directory.
 */
export function readSysfsLinks(options: ReadLinksOptions = {}): NetLink[] {
  const root = options.root ?? DEFAULT_SYSFS_ROOT;
  const netDir = join(root, 'class', 'net');
  let names: string[];
  try {
    names = readdirSync(netDir);
  } catch (err) {
    throw new Error(`sysfs root ${JSON.stringify(root)}: cannot list ${netDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const byName = new Map((options.netlink ?? []).map((l) => [l.name, l]));
  const slots = hotplugSlots(root);
  const links: NetLink[] = [];
  for (const name of names) {
    // class/net also holds files such as bonding_masters
    if (!isDir(join(netDir, name))) continue;
    links.push(readLink(root, name, slots, options.netlink ? byName.get(name) : undefined));
  }
  return links.sort((a, b) => a.index - b.index || (a.name < b.name ? -1 : 1));
}

/**
 * `readSysfsLinks` joined with netlink's view (`ip -j -d link show`) when `run` is given; by default
 * netlink is asked only for the live root `/sys` (a fixture tree has no netlink behind it).
 */
export async function listNetLinks(options: { root?: string; run?: IpRunner | null } = {}): Promise<NetLink[]> {
  const root = options.root ?? DEFAULT_SYSFS_ROOT;
  const run = options.run === undefined ? (root === DEFAULT_SYSFS_ROOT ? runIp : null) : options.run;
  const netlink = run ? parseIpLinkJson(await run(['-j', '-d', 'link', 'show'])) : undefined;
  return readSysfsLinks({ root, ...(netlink ? { netlink } : {}) });
}
