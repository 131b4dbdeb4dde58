/**
 * KubeSpan's host dataplane (spec/kubespan.md §5): the ULA /64 on the `kubespan` link, policy
 * routing (table 180 default routes via kubespan, rule `fwmark 0x40/0x60 lookup 180` at priority
 * 32500, IPv4 and IPv6) and an nftables table of our own that marks traffic to peers' allowed IPs
 * (and clamps TCP MSS). kubespand's own encrypted UDP carries mark 0x20 (SO_MARK on its socket), so
 * it is never marked or re-routed into the tunnel even when a peer's endpoint is inside the set.
 *
 * Everything is idempotent: `setup` on a host that still has our rules from a crashed run reconciles
 * instead of duplicating, and `teardown` removes all of it. The nftables table is replaced
 * atomically in one `nft -f` transaction whenever the target set changes.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { parsePrefix, formatPrefix } from '../noise/allowed-ips.js';

const run = promisify(execFile);

export const KUBESPAN_TABLE = 180;
export const KUBESPAN_RULE_PRIORITY = 32500;
export const FWMARK_WIREGUARD = 0x20;
export const FWMARK_FORCE = 0x40;
export const FWMARK_MASK = 0x60;
export const NFT_TABLE = 'kubespand';

export interface DataplaneOptions {
  ifname: string;
  mtu: number;
  /** Our KubeSpan address with the /64 prefix length, e.g. fd7f:…:8169/64. */
  address: string;
  /** Run the commands inside this network namespace (tests); default: the current one. */
  netns?: string;
}

async function sh(cmd: string, args: string[], what: string, input?: string): Promise<string> {
  try {
    const child = run(cmd, args, { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
    if (input !== undefined) child.child.stdin?.end(input);
    const { stdout } = await child;
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`dataplane: ${what} failed: ${(e.stderr || e.message).trim()}`);
  }
}

/** Renders the nftables transaction for a target set (spec §5.3); exported for tests. */
export function renderNftables(targets: string[], mtu: number): string {
  const v4: string[] = [];
  const v6: string[] = [];
  for (const t of targets) {
    const p = parsePrefix(t, 'target prefix');
    (p.address.length === 4 ? v4 : v6).push(formatPrefix(p));
  }
  const mark = `meta mark set meta mark & 0x${(~FWMARK_MASK >>> 0).toString(16)} | 0x${FWMARK_FORCE.toString(16)}`;
  const skipOwn = `meta mark & 0x${FWMARK_MASK.toString(16)} == 0x${FWMARK_WIREGUARD.toString(16)} accept`;
  const families: [string, string[], number][] = [
    ['ip', v4, mtu - 52],
    ['ip6', v6, mtu - 72],
  ];
  const pre: string[] = [skipOwn];
  const out: string[] = [skipOwn, 'oifname "lo" accept'];
  for (const [family, set, clamp] of families) {
    if (set.length === 0) continue;
    const elems = `{ ${set.join(', ')} }`;
    pre.push(`${family} daddr ${elems} ${mark} accept`);
    out.push(`${family} daddr ${elems} tcp flags & (syn | rst) == syn tcp option maxseg size > ${clamp} tcp option maxseg size set ${clamp}`);
    out.push(`${family} daddr ${elems} ${mark} accept`);
  }
  return [
    `add table inet ${NFT_TABLE}`,
    `delete table inet ${NFT_TABLE}`,
    `table inet ${NFT_TABLE} {`,
    '  chain kubespan_prerouting {',
    '    type filter hook prerouting priority filter; policy accept;',
    ...pre.map((r) => `    ${r}`),
    '  }',
    '  chain kubespan_outgoing {',
    '    type route hook output priority filter; policy accept;',
    ...out.map((r) => `    ${r}`),
    '  }',
    '}',
    '',
  ].join('\n');
}

export class Dataplane {
  private lastTargets: string | null = null;

  constructor(private readonly opts: DataplaneOptions) {}

  private ip(args: string[], what: string): Promise<string> {
    const full = this.opts.netns ? ['-n', this.opts.netns, ...args] : args;
    return sh('ip', full, `${this.opts.ifname}: ${what}`);
  }

  private nft(args: string[], what: string, input?: string): Promise<string> {
    const full = this.opts.netns ? ['netns', 'exec', this.opts.netns, 'nft', ...args] : args;
    return sh(this.opts.netns ? 'ip' : 'nft', full, what, input);
  }

  /** Address, link up, table-180 routes and the fwmark rules; safe to run again. */
  async setup(): Promise<void> {
    const { ifname, mtu, address } = this.opts;
    const existing = await this.ip(['-j', '-6', 'addr', 'show', 'dev', ifname], 'reading addresses');
    const [addr, bits] = address.split('/');
    const has = (JSON.parse(existing || '[]') as { addr_info?: { local: string; prefixlen: number }[] }[]).some((l) =>
      (l.addr_info ?? []).some((a) => a.local === addr && a.prefixlen === Number(bits)),
    );
    if (!has) await this.ip(['-6', 'addr', 'add', address, 'dev', ifname, 'nodad'], `adding address ${address}`);
    await this.ip(['link', 'set', ifname, 'mtu', String(mtu), 'up'], 'bringing the link up');
    for (const family of ['-4', '-6']) {
      const dst = family === '-4' ? '0.0.0.0/0' : '::/0';
      await this.ip([family, 'route', 'replace', dst, 'dev', ifname, 'table', String(KUBESPAN_TABLE), 'metric', '1', 'mtu', String(mtu), 'proto', 'static'], `route ${dst} table ${KUBESPAN_TABLE}`);
      await this.ensureRule(family);
    }
  }

  private ruleArgs(): string[] {
    return ['fwmark', `0x${FWMARK_FORCE.toString(16)}/0x${FWMARK_MASK.toString(16)}`, 'lookup', String(KUBESPAN_TABLE), 'priority', String(KUBESPAN_RULE_PRIORITY)];
  }

  private async ensureRule(family: string): Promise<void> {
    const rules = JSON.parse((await this.ip([family, '-j', 'rule', 'show', 'priority', String(KUBESPAN_RULE_PRIORITY)], 'reading rules')) || '[]') as { table?: string; fwmark?: string }[];
    const ours = rules.filter((r) => String(r.table) === String(KUBESPAN_TABLE));
    // a crashed run may have left one (or, from older tools, several): keep exactly one
    for (let i = 1; i < ours.length; i++) await this.ip([family, 'rule', 'del', ...this.ruleArgs()], 'removing a duplicate rule');
    if (ours.length === 0) await this.ip([family, 'rule', 'add', ...this.ruleArgs()], 'adding the fwmark rule');
  }

  /** Replaces the nftables table when the target set changed. Returns true when it did. */
  async applyTargets(targets: string[]): Promise<boolean> {
    const key = [...targets].sort().join(',');
    if (key === this.lastTargets) return false;
    await this.nft(['-f', '-'], 'nftables update', renderNftables(targets, this.opts.mtu));
    this.lastTargets = key;
    return true;
  }

  /** Removes the nftables table, the rules and the table-180 routes. Errors are collected, not thrown early. */
  async teardown(): Promise<string[]> {
    const errors: string[] = [];
    const attempt = async (fn: () => Promise<unknown>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        errors.push(err instanceof Error ? err.message : String(err));
      }
    };
    await attempt(() => this.nft(['-f', '-'], 'nftables removal', `add table inet ${NFT_TABLE}\ndelete table inet ${NFT_TABLE}\n`));
    for (const family of ['-4', '-6']) {
      for (let i = 0; i < 4; i++) {
        const rules = JSON.parse((await this.ip([family, '-j', 'rule', 'show', 'priority', String(KUBESPAN_RULE_PRIORITY)], 'reading rules').catch(() => '[]')) || '[]') as { table?: string }[];
        if (!rules.some((r) => String(r.table) === String(KUBESPAN_TABLE))) break;
        await attempt(() => this.ip([family, 'rule', 'del', ...this.ruleArgs()], 'removing the fwmark rule'));
      }
      await attempt(() => this.ip([family, 'route', 'flush', 'table', String(KUBESPAN_TABLE)], `flushing table ${KUBESPAN_TABLE}`));
    }
    this.lastTargets = null;
    return errors;
  }
}
