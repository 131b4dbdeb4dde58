/**
 * The host's links and addresses, read from iproute2's JSON output (`ip -j -d link show`,
 * `ip -j addr show`), and the choice of the link whose MAC seeds the KubeSpan address.
 *
 * Spec: ../shared/spec/kubespan.md §2 ("Which MAC"): Talos takes the current hardware address of
 * the first *physical* link in link-name order, physical meaning ARPHRD Ethernet and no link kind
 * (no bond, VLAN, bridge, veth, wireguard…). Containers and network namespaces see only veth links,
 * so kubespand falls back to a link named in the config, else the first non-loopback link with a
 * non-zero MAC, and says which rule chose it.
 *
 * The parsers are pure (unit-tested on captured JSON); `listLinks` is the thin shell that runs `ip`.
 */
import { execFile } from 'node:child_process';

export interface HostAddress {
  /** Canonical text as `ip` prints it, without prefix length. */
  address: string;
  prefixLen: number;
  /** `global`, `site`, `link`, `host`, `nowhere` (or a number for unnamed scopes). */
  scope: string;
  family: 4 | 6;
  /** IPv6 duplicate address detection failed: the address is not usable. */
  dadFailed: boolean;
  /** IPv6 DAD still running. */
  tentative: boolean;
}

export interface HostLink {
  name: string;
  index: number;
  /** `linkinfo.info_kind` (veth, bridge, bond, vlan, tun, …); '' for a plain Ethernet device. */
  kind: string;
  /** `linkinfo.info_slave_kind` when the link is enslaved (bridge, bond…), else ''. */
  slaveKind: string;
  /** `link_type`: ether, loopback, none, ipip, … */
  linkType: string;
  /** Current hardware address in lowercase colon form; undefined when the link has none. */
  mac: string | undefined;
  /** Permanent hardware address when `ip` shows one (it only does when it differs from `mac`). */
  permanentMac: string | undefined;
  operstate: string;
  flags: string[];
  /** operstate UP, or both UP and LOWER_UP flags (dummy, tun and loopback report operstate UNKNOWN). */
  up: boolean;
  /** link/ether and no kind: what Talos calls a physical link. */
  physical: boolean;
  mtu: number;
  addresses: HostAddress[];
}

// ---- Parsing ----

const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2})+$/;

type Json = Record<string, unknown>;

function parseJsonArray(input: string | unknown, what: string): Json[] {
  let value = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch (err) {
      throw new Error(`${what}: output is not JSON: ${(err as Error).message}`);
    }
  }
  if (!Array.isArray(value)) throw new Error(`${what}: output is not a JSON array`);
  return value.map((entry, i) => {
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw new Error(`${what}: entry ${i} is not an object`);
    return entry as Json;
  });
}

function requireField<T>(entry: Json, key: string, type: 'string' | 'number', what: string, i: number): T {
  const v = entry[key];
  if (typeof v !== type) throw new Error(`${what}: entry ${i} has no ${type} "${key}" (got ${JSON.stringify(v)})`);
  return v as T;
}

/** A link from `ip -j -d link show`, before addresses are merged in. */
export type ParsedLink = Omit<HostLink, 'addresses'>;

/** Parses `ip -j -d link show` output (text or already-parsed JSON). */
export function parseIpLinkJson(input: string | unknown): ParsedLink[] {
  const what = 'ip -j -d link show';
  return parseJsonArray(input, what).map((e, i) => {
    const name = requireField<string>(e, 'ifname', 'string', what, i);
    const index = requireField<number>(e, 'ifindex', 'number', what, i);
    const flags = Array.isArray(e.flags) ? e.flags.filter((f): f is string => typeof f === 'string') : [];
    const operstate = typeof e.operstate === 'string' ? e.operstate : 'UNKNOWN';
    const linkType = typeof e.link_type === 'string' ? e.link_type : '';
    const info = e.linkinfo !== null && typeof e.linkinfo === 'object' ? (e.linkinfo as Json) : {};
    const kind = typeof info.info_kind === 'string' ? info.info_kind : '';
    const slaveKind = typeof info.info_slave_kind === 'string' ? info.info_slave_kind : '';
    // tunnels (ipip, gre…) print an IP address in "address"; only hex pairs are hardware addresses
    const mac = typeof e.address === 'string' && MAC.test(e.address) ? e.address.toLowerCase() : undefined;
    const permanentMac = typeof e.permaddr === 'string' && MAC.test(e.permaddr) ? e.permaddr.toLowerCase() : undefined;
    const up = operstate === 'UP' || (flags.includes('UP') && flags.includes('LOWER_UP'));
    return {
      name,
      index,
      kind,
      slaveKind,
      linkType,
      mac,
      permanentMac,
      operstate,
      flags,
      up,
      physical: linkType === 'ether' && kind === '',
      mtu: typeof e.mtu === 'number' ? e.mtu : 0,
    };
  });
}

/** Parses `ip -j addr show` output into addresses keyed by link index. */
export function parseIpAddrJson(input: string | unknown): Map<number, HostAddress[]> {
  const what = 'ip -j addr show';
  const out = new Map<number, HostAddress[]>();
  parseJsonArray(input, what).forEach((e, i) => {
    const index = requireField<number>(e, 'ifindex', 'number', what, i);
    const infos = Array.isArray(e.addr_info) ? e.addr_info : [];
    const list: HostAddress[] = [];
    for (const a of infos as Json[]) {
      if (a === null || typeof a !== 'object') continue;
      // AF_PACKET and other families carry no IP address
      if ((a.family !== 'inet' && a.family !== 'inet6') || typeof a.local !== 'string' || typeof a.prefixlen !== 'number') continue;
      list.push({
        address: a.local,
        prefixLen: a.prefixlen,
        scope: typeof a.scope === 'string' || typeof a.scope === 'number' ? String(a.scope) : 'global',
        family: a.family === 'inet' ? 4 : 6,
        dadFailed: a.dadfailed === true,
        tentative: a.tentative === true,
      });
    }
    out.set(index, list);
  });
  return out;
}

/** Joins parsed links with their addresses (by index). Links come back in `ip`'s order. */
export function mergeLinksAndAddresses(links: ParsedLink[], addresses: Map<number, HostAddress[]>): HostLink[] {
  return links.map((l) => ({ ...l, addresses: addresses.get(l.index) ?? [] }));
}

// ---- Shell ----

/** Runs `ip` with `args` and resolves with its stdout. Injected by tests (e.g. `ip netns exec NS ip …`). */
export type IpRunner = (args: string[]) => Promise<string>;

export const runIp: IpRunner = (args) =>
  new Promise((resolve, reject) => {
    execFile('ip', args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const detail = (stderr || err.message).trim();
        reject(new Error(`ip ${args.join(' ')} failed: ${detail}${(err as { code?: unknown }).code === 'ENOENT' ? ' (is iproute2 installed?)' : ''}`));
        return;
      }
      resolve(stdout);
    });
  });

/** The host's links with their addresses, from `ip -j -d link show` and `ip -j addr show`. */
export async function listLinks(run: IpRunner = runIp): Promise<HostLink[]> {
  const [linkText, addrText] = await Promise.all([run(['-j', '-d', 'link', 'show']), run(['-j', 'addr', 'show'])]);
  return mergeLinksAndAddresses(parseIpLinkJson(linkText), parseIpAddrJson(addrText));
}

// ---- Identity link ----

export type IdentityLinkReason = 'configured' | 'first-physical' | 'first-with-mac';

export interface IdentityLinkChoice {
  link: HostLink;
  /** The rule that chose the link. */
  reason: IdentityLinkReason;
  /** One line for the identity view, e.g. `eth0 (first physical link by name)`. */
  description: string;
}

const REASON_TEXT: Record<IdentityLinkReason, string> = {
  configured: 'named by kubespand.identityLink',
  'first-physical': 'first physical link by name',
  'first-with-mac': 'no physical link; first non-loopback link with a MAC by name',
};

function hasUsableMac(l: HostLink): l is HostLink & { mac: string } {
  if (l.mac === undefined) return false;
  const bytes = l.mac.split(':');
  return (bytes.length === 6 || bytes.length === 8) && bytes.some((b) => b !== '00');
}

/** Go's sort.Strings order (UTF-16 code units here; link names are ASCII). */
function byName(a: HostLink, b: HostLink): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * The link whose MAC seeds the node's KubeSpan address: the configured link when given (an error if
 * it does not exist or has no MAC), else the first physical link by name, else the first
 * non-loopback link with a non-zero 6- or 8-byte MAC by name. Throws when nothing qualifies.
 */
export function pickIdentityLink(links: HostLink[], configuredName?: string): IdentityLinkChoice {
  const choose = (link: HostLink, reason: IdentityLinkReason): IdentityLinkChoice => ({
    link,
    reason,
    description: `${link.name} (${REASON_TEXT[reason]})`,
  });
  if (configuredName !== undefined && configuredName !== '') {
    const link = links.find((l) => l.name === configuredName);
    if (!link) {
      const names = links.map((l) => l.name).join(', ') || 'none';
      throw new Error(`kubespand.identityLink: no link named ${JSON.stringify(configuredName)} (links: ${names})`);
    }
    if (!hasUsableMac(link)) {
      throw new Error(
        `kubespand.identityLink: link ${JSON.stringify(configuredName)} has no usable hardware address (got ${JSON.stringify(link.mac ?? 'none')}); name a link with a MAC`,
      );
    }
    return choose(link, 'configured');
  }
  const sorted = [...links].sort(byName);
  const physical = sorted.find((l) => l.physical && hasUsableMac(l));
  if (physical) return choose(physical, 'first-physical');
  const fallback = sorted.find((l) => l.linkType !== 'loopback' && hasUsableMac(l));
  if (fallback) return choose(fallback, 'first-with-mac');
  throw new Error('no link with a hardware address to derive the KubeSpan address from; name one with kubespand.identityLink');
}
