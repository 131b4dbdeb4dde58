/**
 * Generated node configs, like `talosctl gen config --with-kubespan`: a new cluster (id and secret,
 * each base64 of 32 random bytes) with one node's config, or another node's config for an existing
 * cluster (`--from`). The text always passes `parseNodeConfig`.
 *
 * The output holds the cluster secret; the CLI writes it with mode 0600 (writeSecretFile).
 */
import { randomFillSync } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync, chmodSync } from 'node:fs';
import { Document } from 'yaml';
import type { Random } from '../noise/clock.js';
import { DEFAULT_DISCOVERY_ENDPOINT, DEFAULT_KUBESPAN_MTU, parseNodeConfig, type NodeConfig } from './config.js';

const systemFill: Pick<Random, 'fill'> = { fill: (out) => randomFillSync(out) };

/** 32 random bytes, standard base64 (Talos ≥ 1.14 generates the cluster id and secret this way). */
function random32Base64(random: Pick<Random, 'fill'>): string {
  const bytes = random.fill(new Uint8Array(32));
  const text = Buffer.from(bytes).toString('base64');
  bytes.fill(0);
  return text;
}

export interface ClusterIdentity {
  id: string;
  secret: string;
}

export function generateClusterIdentity(random: Pick<Random, 'fill'> = systemFill): ClusterIdentity {
  return { id: random32Base64(random), secret: random32Base64(random) };
}

export interface GenerateOptions {
  /** Kubernetes node name of the new node (kubespand.nodeName); omitted when not given. */
  nodeName?: string;
  /** Discovery service URL; default https://discovery.talos.dev/. */
  endpoint?: string;
  /** machine.network.kubespan.enabled (the CLI's --with-kubespan). Default true. */
  withKubespan?: boolean;
  random?: Pick<Random, 'fill'>;
}

interface Shape {
  cluster: {
    id: string;
    secret: string;
    discovery: { enabled: boolean; registries: { service: { endpoint: string; disabled?: boolean }; kubernetes: { disabled: boolean } } };
  };
  machine: {
    network: {
      kubespan: { enabled: boolean; advertiseKubernetesNetworks?: boolean; allowDownPeerBypass?: boolean; harvestExtraEndpoints?: boolean; mtu?: number };
    };
  };
  kubespand?: { nodeName?: string; discovery?: { caFiles: string[] } };
}

function render(shape: Shape, header: string[], sourceName: string): string {
  const doc = new Document(shape);
  doc.commentBefore = header.map((l) => (l === '' ? '' : ` ${l}`)).join('\n');
  const text = doc.toString({ lineWidth: 0 });
  // the generator must never emit something the parser refuses
  parseNodeConfig(text, sourceName);
  return text;
}

function header(extra: string[]): string[] {
  return [
    'kubespand node config (Talos machine-config shape; reference: docs/kubespan-config.md).',
    'It holds the cluster secret: keep it private (mode 0600), never commit it.',
    ...extra,
    'Another node of this cluster: kubespand gen config --from <this file> --name <node>',
  ];
}

/** A new cluster and the config of its first node, as YAML text. */
export function generateNodeConfig(opts: GenerateOptions = {}): { text: string; cluster: ClusterIdentity } {
  const cluster = generateClusterIdentity(opts.random);
  const shape: Shape = {
    cluster: {
      id: cluster.id,
      secret: cluster.secret,
      discovery: {
        enabled: true,
        registries: { service: { endpoint: opts.endpoint ?? DEFAULT_DISCOVERY_ENDPOINT }, kubernetes: { disabled: true } },
      },
    },
    machine: { network: { kubespan: { enabled: opts.withKubespan ?? true } } },
  };
  if (opts.nodeName !== undefined) shape.kubespand = { nodeName: opts.nodeName };
  const text = render(shape, header(['New cluster: every node of it needs the same cluster.id and cluster.secret.']), 'generated config');
  return { text, cluster };
}

/**
 * The config of another node of `base`'s cluster: the same cluster id, secret and discovery settings
 * (endpoint, registries, extra CA files) and the same KubeSpan switches and MTU; a new node name (or
 * none); node-local settings (filters, extra endpoints, pod CIDRs, paths, hostname, proxies,
 * nameservers) are left at their defaults.
 */
export function generateNodeConfigFrom(base: NodeConfig, opts: Pick<GenerateOptions, 'nodeName' | 'withKubespan'> = {}): string {
  const c = base.cluster;
  if (c.id === undefined || c.secretBase64 === undefined) {
    throw new Error(`${base.sourceName}: cluster.id and cluster.secret are needed to make another node's config for the same cluster`);
  }
  const ks = base.machine.network.kubespan;
  const kubespan: Shape['machine']['network']['kubespan'] = { enabled: ks.enabled || (opts.withKubespan ?? false) };
  if (ks.advertiseKubernetesNetworks) kubespan.advertiseKubernetesNetworks = true;
  if (ks.allowDownPeerBypass) kubespan.allowDownPeerBypass = true;
  if (ks.harvestExtraEndpoints) kubespan.harvestExtraEndpoints = true;
  if (ks.mtu !== DEFAULT_KUBESPAN_MTU) kubespan.mtu = ks.mtu;
  const service = c.discovery.registries.service;
  const shape: Shape = {
    cluster: {
      id: c.id,
      secret: c.secretBase64,
      discovery: {
        enabled: c.discovery.enabled,
        registries: {
          service: service.disabled ? { endpoint: service.endpoint, disabled: true } : { endpoint: service.endpoint },
          kubernetes: { disabled: c.discovery.registries.kubernetes.disabled },
        },
      },
    },
    machine: { network: { kubespan } },
  };
  const kubespand: NonNullable<Shape['kubespand']> = {};
  if (opts.nodeName !== undefined) kubespand.nodeName = opts.nodeName;
  if (base.kubespand.discovery.caFiles.length > 0) kubespand.discovery = { caFiles: [...base.kubespand.discovery.caFiles] };
  if (Object.keys(kubespand).length > 0) shape.kubespand = kubespand;
  return render(shape, header([`Same cluster as ${base.sourceName}.`]), 'generated config');
}

/**
 * Writes `text` to `path` with mode 0600. Refuses an existing file unless `force`, in which case it
 * is replaced atomically (a private temporary file renamed over it).
 */
export function writeSecretFile(path: string, text: string, force = false): void {
  if (!force) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (err) {
      if ((err as { code?: string }).code === 'EEXIST') throw new Error(`${path}: already exists (pass --force to replace it)`);
      throw err;
    }
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(path, 0o600); // in case the umask took bits away from the owner
    return;
  }
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    chmodSync(tmp, 0o600);
    renameSync(tmp, path);
  } catch (err) {
    unlinkSync(tmp);
    throw err;
  }
}
