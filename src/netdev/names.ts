/**
 * Predictable network interface names, as systemd-udevd's `net_id` builtin computes them (naming
 * scheme v253), and the choice a link file's `NamePolicy` makes among them.
 *
 * Talos runs udevd with `NamePolicy = keep kernel database onboard slot path mac` and
 * `AlternativeNamesPolicy = database onboard slot path mac` (spec/kubespan.md §7). kubespand only
 * shows the names: it never renames a link.
 *
 * Rules followed (input is what sysfs says about the link and its parent devices):
 * - Prefix by link type: `en` Ethernet (ARPHRD 1) unless uevent DEVTYPE is `wlan` (`wl`) or `wwan`
 *   (`ww`); `ib` InfiniBand (32); `sl` SLIP (256). Other types get no names.
 * - Stacked links (iflink ≠ ifindex: VLANs, veth, macvlan…) get no names at all.
 * - onboard `eno<N>`: N from the PCI device's `acpi_index` (ACPI _DSM), else `index` (SMBIOS type
 *   41); 0 and values above 65535 are ignored (firmware garbage). Only for a NIC whose own parent is
 *   the PCI device (not USB behind a PCI controller), and not for SR-IOV virtual functions.
 * - slot `ens<S>`: S from a hotplug slot in `/sys/bus/pci/slots/<S>/address` whose `DDDD:BB:SS`
 *   equals the PCI device's (or, walking up, an upstream PCI device's); a slot found at a PCI bridge
 *   is used only when the NIC is not multi-function (two children would claim one index).
 * - path `enp<B>s<S>`: PCI bus and slot numbers in decimal.
 * - slot and path add `f<F>` when the function is > 0 or the device is multi-function (the PCI
 *   header type bit 0x80 from `config`; without `config`, another function of the same slot in the
 *   parent directory); then `n<phys_port_name>` if the driver reports one, else `d<dev_port>` if
 *   dev_port > 0. Onboard adds the same `n`/`d` suffix. A PCI domain > 0 prefixes slot and path
 *   with `P<D>`.
 * - USB: the USB interface `<bus>-<p1.p2…>:<config>.<interface>` appends `u<p1>u<p2>…`, `c<config>`
 *   when config ≠ 1 and `i<interface>` when interface ≠ 0 to the path and slot names of its PCI
 *   host controller (no onboard name).
 * - virtio: the `virtioN` device in between is skipped; names come from its PCI parent.
 * - mac `enx<12 hex digits>`: only when `addr_assign_type` is 0 (the permanent address).
 * - A name longer than 15 bytes (IFNAMSIZ − 1) cannot be a primary name and is skipped by the
 *   policy (it may still be an alternative name).
 * - Policy: `keep` keeps a name set from userspace (name_assign_type 3 user or 4 renamed);
 *   `kernel` keeps a name the kernel marks predictable (2); `database` (hwdb
 *   ID_NET_NAME_FROM_DATABASE) is not available here and never matches; then onboard, slot, path,
 *   mac. If nothing applies the kernel's name stays.
 *
 * Not implemented (no such hardware in the fixtures, or not reachable from sysfs alone): SR-IOV VF
 * `v<n>` names, s390 `function_id` slots and CCW/QETH names, DeviceTree aliases and platform/ACPI
 * `ena…` names, BCMA, Xen `X` names, netdevsim, and the hwdb database.
 */

/** The naming policy Talos configures (`99-default.link`), in order. */
export const NAME_POLICY = ['keep', 'kernel', 'database', 'onboard', 'slot', 'path', 'mac'] as const;
export type NamePolicyEntry = (typeof NAME_POLICY)[number];
/** Kinds of predictable names, in policy order. */
export const PREDICTABLE_KINDS = ['onboard', 'slot', 'path', 'mac'] as const;
export type PredictableKind = (typeof PREDICTABLE_KINDS)[number];

/** Linux `IFNAMSIZ - 1`. */
export const MAX_IFNAME_BYTES = 15;
/** systemd v250+ accepts onboard indexes up to 16 bits. */
export const ONBOARD_INDEX_MAX = 65535;

export const ARPHRD_ETHER = 1;
export const ARPHRD_INFINIBAND = 32;
export const ARPHRD_SLIP = 256;

/** `name_assign_type` values (include/uapi/linux/netdevice.h). */
export const NET_NAME_ENUM = 1;
export const NET_NAME_PREDICTABLE = 2;
export const NET_NAME_USER = 3;
export const NET_NAME_RENAMED = 4;

export interface PciAddress {
  domain: number;
  bus: number;
  slot: number;
  func: number;
}

/** Everything the name rules read, gathered from sysfs by src/netdev/sysfs.ts. */
export interface NamingInput {
  name: string;
  ifindex: number;
  iflink: number;
  /** ARPHRD_* from `type`. */
  type: number;
  /** uevent DEVTYPE of the link (`wlan`, `wwan`, `bridge`, …), '' if none. */
  devtype: string;
  addrAssignType: number | undefined;
  nameAssignType: number | undefined;
  /** Current hardware address, lowercase colon form. */
  address: string | undefined;
  devPort: number;
  /** `phys_port_name`, '' when the driver reports none. */
  physPortName: string;
  /** The PCI device behind the link (the parent, the parent of a virtio device, or a USB host controller). */
  pci?: {
    address: PciAddress;
    /** True when the PCI device is the link's own parent (after skipping virtio), false for USB behind it. */
    direct: boolean;
    multifunction: boolean;
    /** acpi_index, else SMBIOS index; undefined if neither exists. */
    onboardIndex: number | undefined;
    /** Hotplug slot number found for this device or an upstream bridge. */
    hotplugSlot: number | undefined;
    isVirtualFunction: boolean;
  };
  /** The USB interface the link hangs off, e.g. `2-3.1:1.0`. */
  usbInterface?: string;
}

export interface PredictableNames {
  onboard?: string;
  slot?: string;
  path?: string;
  mac?: string;
}

export interface NameChoice {
  /** The name the policy gives the link. */
  name: string;
  /** Which policy entry gave it; `none` when nothing applied and the kernel name stays. */
  policy: NamePolicyEntry | 'none';
}

function prefixFor(input: NamingInput): string | undefined {
  switch (input.type) {
    case ARPHRD_ETHER:
      return input.devtype === 'wlan' ? 'wl' : input.devtype === 'wwan' ? 'ww' : 'en';
    case ARPHRD_INFINIBAND:
      return 'ib';
    case ARPHRD_SLIP:
      return 'sl';
    default:
      return undefined;
  }
}

/** `n<phys_port_name>` or `d<dev_port>` (dev_port > 0), else ''. */
function portSuffix(input: NamingInput): string {
  if (input.physPortName !== '') return `n${input.physPortName}`;
  if (input.devPort > 0) return `d${input.devPort}`;
  return '';
}

/**
 * `<bus>-<p1.p2…>:<config>.<interface>` → `u<p1>u<p2>[c<config>][i<interface>]`; undefined when the
 * name does not have that shape.
 */
export function usbSuffix(usbInterface: string): string | undefined {
  const m = /^\d+-([\d.]+):(\d+)\.(\d+)$/.exec(usbInterface);
  if (!m) return undefined;
  const [, ports, config, intf] = m as unknown as [string, string, string, string];
  let s = `u${ports.split('.').join('u')}`;
  if (config !== '1') s += `c${config}`;
  if (intf !== '0') s += `i${intf}`;
  return s;
}

/** The predictable names of a link (only those that apply). */
export function predictableNames(input: NamingInput): PredictableNames {
  const out: PredictableNames = {};
  const prefix = prefixFor(input);
  if (prefix === undefined) return out;
  // stacked devices (VLAN, veth, macvlan…) are never named
  if (input.iflink !== input.ifindex) return out;

  const pci = input.pci;
  if (pci) {
    const a = pci.address;
    const domain = a.domain > 0 ? `P${a.domain}` : '';
    const func = a.func > 0 || pci.multifunction ? `f${a.func}` : '';
    const port = portSuffix(input);
    if (pci.direct) {
      if (pci.onboardIndex !== undefined && pci.onboardIndex > 0 && pci.onboardIndex <= ONBOARD_INDEX_MAX && !pci.isVirtualFunction) {
        out.onboard = `${prefix}o${pci.onboardIndex}${port}`;
      }
      if (pci.hotplugSlot !== undefined) out.slot = `${prefix}${domain}s${pci.hotplugSlot}${func}${port}`;
      out.path = `${prefix}${domain}p${a.bus}s${a.slot}${func}${port}`;
    } else if (input.usbInterface !== undefined) {
      const usb = usbSuffix(input.usbInterface);
      if (usb !== undefined) {
        if (pci.hotplugSlot !== undefined) out.slot = `${prefix}${domain}s${pci.hotplugSlot}${func}${usb}`;
        out.path = `${prefix}${domain}p${a.bus}s${a.slot}${func}${usb}`;
      }
    }
  }
  if (input.addrAssignType === 0 && input.address !== undefined) {
    const hex = input.address.split(':');
    if (hex.length === 6 && hex.some((b) => b !== '00')) out.mac = `${prefix}x${hex.join('')}`;
  }
  return out;
}

/** The name `NamePolicy = keep kernel database onboard slot path mac` gives the link. */
export function chooseName(input: NamingInput, names: PredictableNames): NameChoice {
  for (const entry of NAME_POLICY) {
    switch (entry) {
      case 'keep':
        if (input.nameAssignType === NET_NAME_USER || input.nameAssignType === NET_NAME_RENAMED) return { name: input.name, policy: 'keep' };
        break;
      case 'kernel':
        if (input.nameAssignType === NET_NAME_PREDICTABLE) return { name: input.name, policy: 'kernel' };
        break;
      case 'database':
        break; // no hwdb here
      default: {
        const n = names[entry];
        if (n !== undefined && Buffer.byteLength(n) <= MAX_IFNAME_BYTES) return { name: n, policy: entry };
      }
    }
  }
  return { name: input.name, policy: 'none' };
}

/** `AlternativeNamesPolicy = database onboard slot path mac`: every predictable name but the chosen one. */
export function alternativeNames(names: PredictableNames, chosen: string): string[] {
  const out: string[] = [];
  for (const k of PREDICTABLE_KINDS) {
    const n = names[k];
    if (n !== undefined && n !== chosen && !out.includes(n)) out.push(n);
  }
  return out;
}

/** Parses `DDDD:BB:SS.F` (hex fields) as the kernel names PCI devices. */
export function parsePciAddress(text: string): PciAddress | undefined {
  const m = /^([0-9a-fA-F]{4,}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/.exec(text);
  if (!m) return undefined;
  return { domain: parseInt(m[1]!, 16), bus: parseInt(m[2]!, 16), slot: parseInt(m[3]!, 16), func: parseInt(m[4]!, 16) };
}
