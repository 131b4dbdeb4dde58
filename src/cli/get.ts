/**
 * `kubespand get <kind> [-o table|yaml|json]`, `kubespand status [-w]` and `kubespand leave`: views of a
 * running daemon through its control socket (from --socket, or the config's kubespand.controlSocket,
 * or the default /run/kubespand/kubespand.sock).
 */
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { controlRequest, resolveKind, RESOURCE_KINDS, type ResourceKind } from '../kubespan/control.js';
import { DEFAULT_CONTROL_SOCKET, parseNodeConfigFile } from '../kubespan/config.js';
import { renderLinks, type LinksOutput } from '../netdev/view.js';
import type { Command } from './main.js';

type Row = Record<string, unknown>;

function socketPath(values: { socket?: string | undefined; config?: string | undefined }): string {
  if (values.socket) return values.socket;
  if (values.config) return parseNodeConfigFile(values.config).kubespand.controlSocket;
  return DEFAULT_CONTROL_SOCKET;
}

function endpointText(ep: unknown): string {
  if (!ep || typeof ep !== 'object') return '';
  const { address, port } = ep as { address: string; port: number };
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** "3m20s ago" style age of a Unix-ms time; "never" for 0. */
export function age(ms: number, now = Date.now()): string {
  if (!ms) return 'never';
  let s = Math.max(0, Math.round((now - ms) / 1000));
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s}s ago`;
}

export function bytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

const COLUMNS: Record<ResourceKind, [string, (r: Row) => string][]> = {
  kubespanidentities: [
    ['ID', (r) => String(r.id)],
    ['ADDRESS', (r) => String(r.address)],
    ['SUBNET', (r) => String(r.subnet)],
    ['PUBLIC KEY', (r) => String(r.publicKey)],
    ['LINK', (r) => String(r.link)],
  ],
  kubespanpeerspecs: [
    ['ID', (r) => String(r.id)],
    ['LABEL', (r) => String(r.label)],
    ['ENDPOINTS', (r) => (r.endpoints as unknown[]).map(endpointText).join(',')],
    ['ALLOWED IPS', (r) => (r.allowedIps as string[]).join(',')],
  ],
  kubespanpeerstatuses: [
    ['ID', (r) => String(r.id)],
    ['LABEL', (r) => String(r.label)],
    ['ENDPOINT', (r) => endpointText(r.endpoint)],
    ['STATE', (r) => String(r.state)],
    ['RX', (r) => String(r.receiveBytes)],
    ['TX', (r) => String(r.transmitBytes)],
    ['LAST HANDSHAKE', (r) => age(Number(r.lastHandshakeTime))],
  ],
  kubespanendpoints: [
    ['ID', (r) => String(r.id)],
    ['AFFILIATE ID', (r) => String(r.affiliateID)],
    ['ENDPOINT', (r) => String(r.endpoint)],
  ],
  affiliates: [
    ['ID', (r) => String(r.nodeId)],
    ['HOSTNAME', (r) => String(r.hostname)],
    ['MACHINE TYPE', (r) => String(r.machineType)],
    ['OS', (r) => String(r.operatingSystem)],
    ['ADDRESSES', (r) => (r.addresses as string[]).join(',')],
  ],
  vip: [
    ['IP', (r) => String(r.ip)],
    ['LINK', (r) => String(r.link)],
    ['STATE', (r) => String(r.state)],
    ['OWNER', (r) => (r.owner === undefined ? '-' : `${String(r.owner)}${r.owner === r.self ? ' (this node)' : ''}`)],
    ['SINCE', (r) => age(Number(r.since))],
    ['LAST ERROR', (r) => (r.lastError === undefined ? '' : String(r.lastError))],
  ],
};

export function renderTable(kind: ResourceKind, items: Row[]): string {
  const cols = COLUMNS[kind];
  const rows = [cols.map(([h]) => h), ...items.map((it) => cols.map(([, f]) => f(it)))];
  const widths = cols.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3))).join('')).join('\n') + '\n';
}

const OPTIONS = {
  output: { type: 'string', short: 'o', default: 'table' },
  socket: { type: 'string' },
  config: { type: 'string', short: 'c' },
  watch: { type: 'boolean', short: 'w' },
  'sysfs-root': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const getCommand: Command = {
  summary: 'show KubeSpan resources of a running daemon',
  async run(argv) {
    const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    const usage = `usage: kubespand get <${RESOURCE_KINDS.join('|')}> [-o table|yaml|json] [--socket PATH | --config FILE]\n       kubespand get links [NAME...] [-o table|yaml|json] [--sysfs-root DIR]   (no daemon needed)`;
    if (values.help) {
      process.stdout.write(usage + '\n');
      return 0;
    }
    if (positionals[0] === 'links' || positionals[0] === 'link') {
      // read from sysfs and netlink directly: works without a daemon
      if (!['table', 'yaml', 'json'].includes(values.output)) {
        process.stderr.write(`kubespand get: -o must be table, yaml or json (got "${values.output}")\n`);
        return 2;
      }
      const root = values['sysfs-root'];
      process.stdout.write(await renderLinks({ output: values.output as LinksOutput, names: positionals.slice(1), ...(root ? { root } : {}) }));
      return 0;
    }
    const kind = positionals[0] ? resolveKind(positionals[0]) : undefined;
    if (!kind) {
      process.stderr.write(`kubespand get: unknown resource kind "${positionals[0] ?? ''}"\n${usage}\n`);
      return 2;
    }
    if (!['table', 'yaml', 'json'].includes(values.output)) {
      process.stderr.write(`kubespand get: -o must be table, yaml or json (got "${values.output}")\n`);
      return 2;
    }
    const reply = await controlRequest(socketPath(values), { op: 'get', kind });
    if (!reply.ok) throw new Error(String(reply.error));
    const items = reply.items as Row[];
    if (values.output === 'json') process.stdout.write(JSON.stringify(items, null, 2) + '\n');
    else if (values.output === 'yaml') process.stdout.write(items.map((i) => stringify(i)).join('---\n'));
    else process.stdout.write(renderTable(kind, items));
    return 0;
  },
};

/** What `status` reads from the daemon (src/kubespan/daemon.ts DaemonStatus plus run.ts's additions). */
export interface StatusView {
  version?: string;
  nodeId: string;
  nodeName?: string;
  hostname?: string;
  publicKey: string;
  address: string;
  interface?: string;
  listenPort?: number;
  startedAt?: number;
  discovery: { state: string; endpoint: string; publicIp?: string; lastError?: string; affiliates: number; enabled: boolean };
  localEndpoints: { address: string; port: number }[];
  settings?: { mtu: number; allowDownPeerBypass: boolean; harvestExtraEndpoints: boolean };
  lastReconcileAt?: number;
  reconcileErrors?: number;
  logLevel?: string;
  metrics?: string | null;
  reload?: { succeeded: number; failed: number; lastSuccessAt: number; lastAttemptAt: number; lastError?: string };
}

/** "3m20s" style duration between two Unix-ms times. */
function since(from: number, now: number): string {
  return age(from, now).replace(/ ago$/, '');
}

/** The short key fingerprint the logs and metrics use. */
export function keyTag(publicKey: string): string {
  return publicKey.length === 44 ? `peer(${publicKey.slice(0, 4)}…${publicKey.slice(39, 43)})` : publicKey;
}

/** Pure: the one-screen summary of a daemon's status and peer statuses. */
export function formatStatus(s: StatusView, peers: Row[], now = Date.now()): string {
  const byState = (st: string) => peers.filter((p) => p.state === st).length;
  const d = s.discovery;
  const name = s.nodeName || s.hostname || '';
  const lines = [
    `kubespand ${s.version ? `v${s.version}` : ''}${name ? `  node ${name}${s.hostname && s.hostname !== name ? ` (${s.hostname})` : ''}` : ''}${s.startedAt ? `  up ${since(s.startedAt, now)}` : ''}`.trimEnd(),
    `node id    ${s.nodeId}`,
    `identity   ${s.address}  ${s.publicKey}`,
  ];
  if (s.interface) {
    const set = s.settings;
    lines.push(`device     ${s.interface}  port ${s.listenPort ?? '?'}${set ? `  mtu ${set.mtu}${set.allowDownPeerBypass ? '  down-peer bypass on' : ''}${set.harvestExtraEndpoints ? '  harvest on' : ''}` : ''}`);
  }
  lines.push(
    `discovery  ${d.enabled ? `${d.state}  ${d.endpoint}  ${d.affiliates} affiliate${d.affiliates === 1 ? '' : 's'}${d.publicIp ? `  public IP ${d.publicIp}` : ''}` : 'disabled'}`,
  );
  if (d.lastError) lines.push(`           last error: ${d.lastError}`);
  lines.push(`endpoints  ${s.localEndpoints.map(endpointText).join(', ') || '(none)'}`);
  const ops: string[] = [];
  if (s.metrics !== undefined) ops.push(`metrics ${s.metrics ?? 'off'}`);
  if (s.logLevel) ops.push(`log level ${s.logLevel}`);
  if (s.reload && s.reload.lastAttemptAt) {
    ops.push(s.reload.lastError && s.reload.lastAttemptAt > s.reload.lastSuccessAt ? `last reload FAILED ${age(s.reload.lastAttemptAt, now)}` : `reloaded ${age(s.reload.lastSuccessAt, now)}`);
  }
  if (s.reconcileErrors) ops.push(`${s.reconcileErrors} reconcile error${s.reconcileErrors === 1 ? '' : 's'}`);
  if (ops.length) lines.push(`ops        ${ops.join('  ')}`);
  if (s.reload?.lastError && s.reload.lastAttemptAt > s.reload.lastSuccessAt) lines.push(`           ${s.reload.lastError.split('\n').join('\n           ')}`);
  lines.push(`peers      ${peers.length} (${byState('up')} up, ${byState('down')} down, ${byState('unknown')} unknown)`, '');
  if (peers.length > 0) {
    const rows = [['LABEL', 'PEER', 'STATE', 'ENDPOINT', 'LAST HANDSHAKE', 'RX', 'TX']];
    for (const p of [...peers].sort((a, b) => String(a.label).localeCompare(String(b.label)))) {
      rows.push([String(p.label), keyTag(String(p.id ?? p.publicKey ?? '')), String(p.state), endpointText(p.endpoint) || '-', age(Number(p.lastHandshakeTime), now), bytes(Number(p.receiveBytes)), bytes(Number(p.transmitBytes))]);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows) lines.push(r.map((c, i) => c.padEnd(widths[i]! + 2)).join('').trimEnd());
  }
  return lines.join('\n') + '\n';
}

async function renderStatus(path: string): Promise<string> {
  const [st, peers] = await Promise.all([controlRequest(path, { op: 'status' }), controlRequest(path, { op: 'get', kind: 'kubespanpeerstatuses' })]);
  if (!st.ok) throw new Error(String(st.error));
  if (!peers.ok) throw new Error(String(peers.error));
  return formatStatus(st.status as StatusView, (peers.items ?? []) as Row[]);
}

const STATUS_OPTIONS = {
  socket: { type: 'string' },
  config: { type: 'string', short: 'c' },
  watch: { type: 'boolean', short: 'w' },
  interval: { type: 'string', short: 'n', default: '2' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const statusCommand: Command = {
  summary: 'one-screen summary of a running daemon',
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: STATUS_OPTIONS, strict: true });
    const usage = 'usage: kubespand status [-w] [-n SECONDS] [--socket PATH | --config FILE]';
    if (values.help) {
      process.stdout.write(usage + '\n');
      return 0;
    }
    const interval = Number(values.interval);
    if (!Number.isFinite(interval) || interval < 0.1 || interval > 3600) {
      process.stderr.write(`kubespand status: -n must be a number of seconds from 0.1 to 3600 (got "${values.interval}")\n`);
      return 2;
    }
    const path = socketPath(values);
    if (!values.watch) {
      process.stdout.write(await renderStatus(path));
      return 0;
    }
    // on a terminal each frame replaces the last; into a pipe frames follow one another
    const tty = process.stdout.isTTY === true;
    for (;;) {
      let text: string;
      try {
        text = await renderStatus(path);
      } catch (err) {
        text = `${err instanceof Error ? err.message : String(err)}\n`;
      }
      const header = `${new Date().toISOString()}  every ${interval}s  (Ctrl-C to quit)\n`;
      process.stdout.write(tty ? `\x1b[H\x1b[2J${header}${text}` : `${header}${text}\n`);
      await new Promise((r) => setTimeout(r, interval * 1000));
    }
  },
};

export const reloadCommand: Command = {
  summary: 're-read the config file of a running daemon (what SIGHUP and systemctl reload do)',
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: OPTIONS, strict: true });
    const reply = await controlRequest(socketPath(values), { op: 'reload' }, 60_000);
    if (!reply.ok) {
      process.stderr.write(`${String(reply.error)}\n`);
      return 1;
    }
    const result = reply.result as { changed: string[]; overridden: string[] };
    process.stdout.write(result.changed.length ? `reloaded; changed: ${result.changed.join(', ')}\n` : 'reloaded; nothing changed\n');
    if (result.overridden.length) process.stdout.write(`not applied (overridden by the command line or environment): ${result.overridden.join(', ')}\n`);
    return 0;
  },
};

export const leaveCommand: Command = {
  summary: 'delete this node’s affiliate from discovery',
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: OPTIONS, strict: true });
    const reply = await controlRequest(socketPath(values), { op: 'leave' });
    if (!reply.ok) throw new Error(String(reply.error));
    process.stdout.write('affiliate deleted from discovery\n');
    return 0;
  },
};
