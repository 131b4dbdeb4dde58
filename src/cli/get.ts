/**
 * `kubespand get <kind> [-o table|yaml|json]`, `kubespand status [-w]` and `kubespand leave`: views of a
 * running daemon through its control socket (from --socket, or the config's kubespand.controlSocket,
 * or the default /run/kubespand/kubespand.sock).
 */
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { controlRequest, resolveKind, RESOURCE_KINDS, type ResourceKind } from '../kubespan/control.js';
import { DEFAULT_CONTROL_SOCKET, parseNodeConfigFile } from '../kubespan/config.js';
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
  help: { type: 'boolean', short: 'h' },
} as const;

export const getCommand: Command = {
  summary: 'show KubeSpan resources of a running daemon',
  async run(argv) {
    const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    const usage = `usage: kubespand get <${RESOURCE_KINDS.join('|')}> [-o table|yaml|json] [--socket PATH | --config FILE]`;
    if (values.help) {
      process.stdout.write(usage + '\n');
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

async function renderStatus(path: string): Promise<string> {
  const [st, peers] = await Promise.all([controlRequest(path, { op: 'status' }), controlRequest(path, { op: 'get', kind: 'kubespanpeerstatuses' })]);
  if (!st.ok) throw new Error(String(st.error));
  const s = st.status as {
    nodeId: string;
    publicKey: string;
    address: string;
    discovery: { state: string; endpoint: string; publicIp?: string; lastError?: string; affiliates: number; enabled: boolean };
    localEndpoints: { address: string; port: number }[];
  };
  const items = (peers.items ?? []) as Row[];
  const up = items.filter((p) => p.state === 'up').length;
  const lines = [
    `node      ${s.nodeId}`,
    `identity  ${s.address}  ${s.publicKey}`,
    `discovery ${s.discovery.enabled ? `${s.discovery.state} (${s.discovery.endpoint}), ${s.discovery.affiliates} affiliates${s.discovery.publicIp ? `, public IP ${s.discovery.publicIp}` : ''}` : 'disabled'}${s.discovery.lastError ? `\n          last error: ${s.discovery.lastError}` : ''}`,
    `endpoints ${s.localEndpoints.map(endpointText).join(', ') || '(none)'}`,
    `peers     ${items.length} (${up} up)`,
    '',
  ];
  const rows = [['LABEL', 'STATE', 'ENDPOINT', 'LAST HANDSHAKE', 'RX', 'TX']];
  for (const p of items) rows.push([String(p.label), String(p.state), endpointText(p.endpoint), age(Number(p.lastHandshakeTime)), bytes(Number(p.receiveBytes)), bytes(Number(p.transmitBytes))]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) lines.push(r.map((c, i) => c.padEnd(widths[i]! + 2)).join('').trimEnd());
  return lines.join('\n') + '\n';
}

export const statusCommand: Command = {
  summary: 'one-screen summary of a running daemon',
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: OPTIONS, strict: true });
    const path = socketPath(values);
    if (!values.watch) {
      process.stdout.write(await renderStatus(path));
      return 0;
    }
    for (;;) {
      let text: string;
      try {
        text = await renderStatus(path);
      } catch (err) {
        text = `${err instanceof Error ? err.message : String(err)}\n`;
      }
      process.stdout.write(`\x1b[H\x1b[2J${new Date().toISOString()}\n${text}`);
      await new Promise((r) => setTimeout(r, 2000));
    }
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
