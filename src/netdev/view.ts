/**
 * `kubespand get links [NAME…] [-o table|yaml|json] [--sysfs-root DIR]`: the host's links from
 * sysfs and netlink, without a running daemon. The table's last column lists the predictable names
 * in NamePolicy order (onboard, slot, path, mac), the one the policy picks marked with `*`.
 */
import { stringify } from 'yaml';
import { PREDICTABLE_KINDS } from './names.js';
import { listNetLinks, type NetLink } from './sysfs.js';

const COLUMNS: [string, (l: NetLink) => string][] = [
  ['NAME', (l) => l.name],
  ['KIND', (l) => l.kind || '-'],
  ['HW ADDR', (l) => l.hardwareAddr ?? '-'],
  ['PERM ADDR', (l) => l.permanentAddr ?? '-'],
  ['DRIVER', (l) => l.driver || '-'],
  ['BUS PATH', (l) => l.busPath || '-'],
  ['PCI ID', (l) => l.pciID || '-'],
  ['PHYSICAL', (l) => (l.physical ? 'yes' : 'no')],
  ['MTU', (l) => String(l.mtu)],
  ['STATE', (l) => l.operState],
  ['PREDICTABLE NAMES', (l) => predictableText(l)],
];

/** `eno1* enp0s31f6 enx3cecef010203`: policy order, the chosen one starred; `-` when there are none. */
export function predictableText(l: NetLink): string {
  const names: string[] = [];
  for (const k of PREDICTABLE_KINDS) {
    const n = l.predictableNames[k];
    if (n !== undefined) names.push(n === l.policyName.name && l.policyName.policy === k ? `${n}*` : n);
  }
  return names.join(' ') || '-';
}

export function formatLinksTable(links: NetLink[]): string {
  const rows = [COLUMNS.map(([h]) => h), ...links.map((l) => COLUMNS.map(([, f]) => f(l)))];
  const widths = COLUMNS.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 2))).join('')).join('\n') + '\n';
}

export type LinksOutput = 'table' | 'yaml' | 'json';

/** The text `kubespand get links` prints. Throws naming the links asked for that do not exist. */
export async function renderLinks(opts: { output: LinksOutput; names?: string[]; root?: string }): Promise<string> {
  let links = await listNetLinks(opts.root === undefined ? {} : { root: opts.root });
  if (opts.names && opts.names.length > 0) {
    const missing = opts.names.filter((n) => !links.some((l) => l.name === n));
    if (missing.length > 0) throw new Error(`no link named ${missing.map((n) => JSON.stringify(n)).join(', ')} (links: ${links.map((l) => l.name).join(', ') || 'none'})`);
    links = links.filter((l) => opts.names!.includes(l.name));
  }
  if (opts.output === 'json') return JSON.stringify(links, null, 2) + '\n';
  if (opts.output === 'yaml') return links.map((l) => stringify(l)).join('---\n');
  return formatLinksTable(links);
}
