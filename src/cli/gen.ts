/**
 * `kubespand gen config --with-kubespan [--name NODE] [--endpoint URL] [-o FILE] [--force]` and
 * `kubespand gen config --from FILE [--name NODE] [-o FILE]`: like `talosctl gen config --with-kubespan`.
 * Without -o the config goes to stdout; with -o the file is written with mode 0600 (it holds the
 * cluster secret) and an existing file is kept unless --force.
 *
 * `kubespand gen wireguard --cidr CIDR --controlplanes N [--workers M] --endpoint-template T [-o DIR]`:
 * the quick-start WireGuard mesh of Talos's networking guide as one `kubespand up` config per node.
 * Control-plane nodes listen on 51111; every node peers with every control-plane node (workers do not
 * peer with each other; control planes learn a worker's endpoint when it first reaches them), with a
 * persistent keepalive of 5 s; keys are generated; node k (control planes first) gets the k-th host
 * address of the CIDR, and each peer is allowed exactly the other node's address (/32 or /128).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { formatIp, maskPrefix, parsePrefix } from '../noise/allowed-ips.js';
import { nodeCrypto } from '../noise/crypto-node.js';
import { clampPrivateKey, keyToBase64 } from '../noise/keys.js';
import { normaliseEndpoint } from '../discovery/endpoint-url.js';
import { ConfigError, parseNodeConfigFile } from '../kubespan/config.js';
import { generateNodeConfig, generateNodeConfigFrom, writeSecretFile } from '../kubespan/gen-config.js';
import type { Command } from './main.js';

const USAGE = [
  'usage: kubespand gen config --with-kubespan [--name NODE] [--endpoint URL] [-o FILE] [--force]',
  '       kubespand gen config --from FILE [--name NODE] [-o FILE] [--force]',
  '',
  'Makes a new cluster (random cluster id and secret) and the config of one node, or with --from',
  "another node's config for the cluster of FILE (same id, secret and discovery settings).",
  '',
  '  --with-kubespan   enable KubeSpan in the generated config (as talosctl gen config)',
  '  --name NODE       Kubernetes node name of the node (kubespand.nodeName)',
  '  --endpoint URL    discovery service (default https://discovery.talos.dev/)',
  '  --from FILE       an existing node config of the cluster',
  '  -o, --output FILE write the config to FILE with mode 0600 instead of stdout',
  '  --force           replace FILE if it exists',
].join('\n');

const WG_USAGE = [
  'usage: kubespand gen wireguard --cidr CIDR --controlplanes N [--workers M] --endpoint-template TEMPLATE',
  '                               [--interface NAME] [--mtu N] [--keepalive DURATION] [-o DIR] [--force]',
  '',
  "Generates one 'kubespand up' config per node for a WireGuard mesh in the quick-start shape: control-plane",
  'nodes listen on 51111, every node peers with every control-plane node, persistent keepalive 5s, keys generated,',
  'tunnel addresses allocated in order from CIDR (control planes first).',
  '',
  '  --cidr CIDR               tunnel network, e.g. 10.10.0.0/24 or fd00:10::/64',
  '  --controlplanes N         number of control-plane nodes (1 or more)',
  '  --workers M               number of worker nodes (default 0)',
  '  --endpoint-template T     how peers reach a control-plane node: host or host:port (port default 51111)',
  '                            with {name} (controlplane-2), {index} (2: within its role), {n} (node number)',
  '  --interface NAME          WireGuard interface name (default wg0); {n} is replaced by the node number',
  '  --mtu N                   interface MTU (default 1420)',
  '  --keepalive DURATION      persistent keepalive (default 5s)',
  '  -o, --output DIR          write DIR/<node>.yaml (mode 0600: private keys) instead of stdout',
  '  --force                   replace files that exist',
].join('\n');

export const WIREGUARD_CONTROLPLANE_PORT = 51111;
export const WIREGUARD_KEEPALIVE = '5s';

export interface WireguardMeshOptions {
  cidr: string;
  controlplanes: number;
  workers: number;
  endpointTemplate: string;
  interface?: string;
  mtu?: number;
  keepalive?: string;
  /** 32 random bytes per call; injectable for tests. */
  random?: () => Uint8Array;
}

export interface GeneratedNode {
  name: string;
  role: 'controlplane' | 'worker';
  /** 1-based node number (control planes first). */
  n: number;
  /** Tunnel address with the CIDR's prefix length, e.g. 10.10.0.1/24. */
  address: string;
  publicKey: string;
  /** Control planes only: host:port peers dial. */
  endpoint: string | undefined;
  /** The `kubespand up` YAML. Holds the private key. */
  text: string;
}

function fill(template: string, node: { name: string; index: number; n: number }): string {
  return template.replaceAll('{name}', node.name).replaceAll('{index}', String(node.index)).replaceAll('{n}', String(node.n));
}

/** `host` → `host:51111`; `host:port` and `[v6]:port` as written; a bare IPv6 address gets brackets. */
function withPort(hostPort: string): string {
  if (/^\[.*\]:\d+$/.test(hostPort) || /^[^:]+:\d+$/.test(hostPort)) return hostPort;
  if (hostPort.includes(':')) return `[${hostPort.replace(/^\[|\]$/g, '')}]:${WIREGUARD_CONTROLPLANE_PORT}`;
  return `${hostPort}:${WIREGUARD_CONTROLPLANE_PORT}`;
}

/** The k-th host address (1-based) of a prefix; undefined when the prefix has fewer. */
function hostAddress(base: Uint8Array, bits: number, k: number): Uint8Array | undefined {
  const total = base.length * 8;
  const hostBits = total - bits;
  // IPv4 reserves the network and broadcast addresses (not for /31 and /32); IPv6 only the subnet-router anycast (::0)
  const usable = hostBits >= 64 ? Infinity : base.length === 4 && hostBits >= 2 ? 2 ** hostBits - 2 : base.length === 4 ? 2 ** hostBits : 2 ** hostBits - 1;
  if (k > usable) return undefined;
  const out = new Uint8Array(base);
  let carry = base.length === 4 && hostBits < 2 ? k - 1 : k;
  for (let i = out.length - 1; i >= 0 && carry > 0; i--) {
    const v = out[i]! + (carry % 256);
    out[i] = v & 0xff;
    carry = Math.floor(carry / 256) + (v > 0xff ? 1 : 0);
  }
  return out;
}

/** Pure: the per-node configs of the mesh. Throws naming the option for bad input. */
export function generateWireguardMesh(opts: WireguardMeshOptions): GeneratedNode[] {
  if (!Number.isInteger(opts.controlplanes) || opts.controlplanes < 1) throw new Error(`--controlplanes: must be a whole number of at least 1 (got ${opts.controlplanes})`);
  if (!Number.isInteger(opts.workers) || opts.workers < 0) throw new Error(`--workers: must be a whole number, 0 or more (got ${opts.workers})`);
  let prefix;
  try {
    prefix = maskPrefix(parsePrefix(opts.cidr, '--cidr'));
  } catch (err) {
    throw new Error(`--cidr: ${(err as Error).message.replace(/^--cidr: /, '')}`);
  }
  if (!opts.cidr.includes('/')) throw new Error(`--cidr: must be a network with a prefix length, e.g. 10.10.0.0/24 (got ${JSON.stringify(opts.cidr)})`);
  const total = opts.controlplanes + opts.workers;
  const v6 = prefix.address.length === 16;
  const random = opts.random ?? (() => randomBytes(32));
  const ifTemplate = opts.interface ?? 'wg0';
  const keepalive = opts.keepalive ?? WIREGUARD_KEEPALIVE;
  if (!opts.endpointTemplate) throw new Error('--endpoint-template: is required (how peers reach a control-plane node, e.g. 192.0.2.{n} or cp{index}.example.com)');

  const nodes = Array.from({ length: total }, (_, i) => {
    const n = i + 1;
    const role = n <= opts.controlplanes ? ('controlplane' as const) : ('worker' as const);
    const index = role === 'controlplane' ? n : n - opts.controlplanes;
    const name = `${role}-${index}`;
    const ip = hostAddress(prefix.address, prefix.bits, n);
    if (!ip) throw new Error(`--cidr: ${opts.cidr} has too few host addresses for ${total} nodes`);
    const privateKey = clampPrivateKey(random());
    const publicKey = keyToBase64(nodeCrypto.publicKey(privateKey));
    const endpoint = role === 'controlplane' ? withPort(fill(opts.endpointTemplate, { name, index, n })) : undefined;
    const ifname = fill(ifTemplate, { name, index, n });
    return { n, role, index, name, ip: formatIp(ip), privateKey, publicKey, endpoint, ifname };
  });
  return nodes.map((self) => {
    const peers = nodes
      .filter((p) => p.n !== self.n && (p.role === 'controlplane' || self.role === 'controlplane'))
      .map((p) => ({
        publicKey: p.publicKey,
        ...(p.endpoint ? { endpoint: p.endpoint } : {}),
        persistentKeepaliveInterval: keepalive,
        allowedIPs: [`${p.ip}/${v6 ? 128 : 32}`],
      }));
    const doc = {
      interface: self.ifname,
      mtu: opts.mtu ?? 1420,
      addresses: [`${self.ip}/${prefix.bits}`],
      wireguard: {
        privateKey: keyToBase64(self.privateKey),
        ...(self.role === 'controlplane' ? { listenPort: WIREGUARD_CONTROLPLANE_PORT } : {}),
        peers,
      },
    };
    const header = `# ${self.name}: kubespand up --config ${self.name}.yaml\n# ${self.role === 'controlplane' ? `listens on ${WIREGUARD_CONTROLPLANE_PORT}; peers with every other node` : 'peers with every control-plane node'}\n`;
    return { name: self.name, role: self.role, n: self.n, address: `${self.ip}/${prefix.bits}`, publicKey: self.publicKey, endpoint: self.endpoint, text: header + stringify(doc) };
  });
}

function runGenWireguard(argv: string[]): number {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        cidr: { type: 'string' },
        controlplanes: { type: 'string' },
        workers: { type: 'string' },
        'endpoint-template': { type: 'string' },
        interface: { type: 'string' },
        mtu: { type: 'string' },
        keepalive: { type: 'string' },
        output: { type: 'string', short: 'o' },
        force: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`kubespand gen wireguard: ${(err as Error).message}\n\n${WG_USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(WG_USAGE + '\n');
    return 0;
  }
  const int = (name: string, fallback?: number): number => {
    const v = values[name];
    if (v === undefined) {
      if (fallback === undefined) throw new Error(`--${name}: is required`);
      return fallback;
    }
    if (typeof v !== 'string' || !/^\d+$/.test(v)) throw new Error(`--${name}: must be a whole number (got ${JSON.stringify(v)})`);
    return Number(v);
  };
  let nodes: GeneratedNode[];
  try {
    if (values.cidr === undefined) throw new Error('--cidr: is required (e.g. 10.10.0.0/24)');
    const opts: WireguardMeshOptions = {
      cidr: String(values.cidr),
      controlplanes: int('controlplanes'),
      workers: int('workers', 0),
      endpointTemplate: String(values['endpoint-template'] ?? ''),
    };
    if (values.interface !== undefined) opts.interface = String(values.interface);
    if (values.mtu !== undefined) opts.mtu = int('mtu');
    if (values.keepalive !== undefined) opts.keepalive = String(values.keepalive);
    nodes = generateWireguardMesh(opts);
  } catch (err) {
    process.stderr.write(`kubespand gen wireguard: ${(err as Error).message}\n`);
    return 2;
  }
  const dir = values.output;
  if (dir === undefined || dir === '-') {
    process.stdout.write(nodes.map((n) => n.text).join('---\n'));
    return 0;
  }
  const out = String(dir);
  mkdirSync(out, { recursive: true, mode: 0o700 });
  const files = nodes.map((n) => join(out, `${n.name}.yaml`));
  const existing = files.filter((f) => existsSync(f));
  if (existing.length > 0 && values.force !== true) {
    process.stderr.write(`kubespand gen wireguard: ${existing.join(', ')} exist; use --force to replace them\n`);
    return 1;
  }
  nodes.forEach((n, i) => {
    writeFileSync(files[i]!, n.text, { mode: 0o600 });
    chmodSync(files[i]!, 0o600);
  });
  for (const n of nodes) process.stderr.write(`wrote ${join(out, `${n.name}.yaml`)}  ${n.address}  ${n.role}${n.endpoint ? `  endpoint ${n.endpoint}` : ''}\n`);
  return 0;
}

export const genCommand: Command = {
  summary: 'generate node configs (gen config) and WireGuard meshes (gen wireguard)',
  async run(argv) {
    if (argv[0] === 'wireguard') return runGenWireguard(argv.slice(1));
    let values: { 'with-kubespan'?: boolean; name?: string; endpoint?: string; from?: string; output?: string; force?: boolean; help?: boolean };
    let positionals: string[];
    try {
      ({ values, positionals } = parseArgs({
        args: argv,
        options: {
          'with-kubespan': { type: 'boolean' },
          name: { type: 'string' },
          endpoint: { type: 'string' },
          from: { type: 'string' },
          output: { type: 'string', short: 'o' },
          force: { type: 'boolean' },
          help: { type: 'boolean', short: 'h' },
        },
        allowPositionals: true,
      }));
    } catch (err) {
      process.stderr.write(`kubespand gen: ${(err as Error).message}\n\n${USAGE}\n`);
      return 2;
    }
    if (values.help) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    if (positionals.length !== 1 || positionals[0] !== 'config') {
      process.stderr.write(`kubespand gen: ${positionals.length === 0 ? 'what to generate? "config" or "wireguard"' : `unknown target ${JSON.stringify(positionals.join(' '))}; "config" or "wireguard"`}\n\n${USAGE}\n`);
      return 2;
    }
    if (values.from !== undefined && values.endpoint !== undefined) {
      process.stderr.write('kubespand gen: --endpoint cannot be combined with --from: the new node uses the discovery service of the --from file\n');
      return 2;
    }
    if (values.endpoint !== undefined) normaliseEndpoint(values.endpoint, '--endpoint'); // throws a clear error
    let text: string;
    try {
      if (values.from !== undefined) {
        const base = parseNodeConfigFile(values.from);
        const opts: { nodeName?: string; withKubespan?: boolean } = { withKubespan: values['with-kubespan'] === true };
        if (values.name !== undefined) opts.nodeName = values.name;
        text = generateNodeConfigFrom(base, opts);
      } else {
        const opts: { nodeName?: string; endpoint?: string; withKubespan: boolean } = { withKubespan: values['with-kubespan'] === true };
        if (values.name !== undefined) opts.nodeName = values.name;
        if (values.endpoint !== undefined) opts.endpoint = values.endpoint;
        text = generateNodeConfig(opts).text;
      }
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      process.stderr.write(err.message.replace(/^generated config: kubespand\.nodeName:/gm, '--name:') + '\n');
      return 1;
    }
    if (values.output === undefined || values.output === '-') {
      process.stdout.write(text);
      return 0;
    }
    writeSecretFile(values.output, text, values.force === true);
    process.stderr.write(`wrote ${values.output} (mode 0600: it holds the cluster secret)\n`);
    return 0;
  },
};
