/** Maps a validated node config file (src/kubespan/config.ts) to the daemon's settings. */
import { formatPrefix } from '../noise/allowed-ips.js';
import type { NodeConfig } from './config.js';
import type { DaemonSettings } from './daemon.js';
import type { VipSettings } from '../vip/index.js';

/** machine.network.vip + kubespand.etcd → the VIP manager's settings; the node name (else hostname) is its name in the election. */
function vipSettings(cfg: NodeConfig): VipSettings | undefined {
  const vip = cfg.machine.network.vip;
  const etcd = cfg.kubespand.etcd;
  if (!vip || !etcd) return undefined;
  return {
    ip: vip.ip,
    ...(vip.link ? { link: vip.link } : {}),
    ...(vip.deviceSelector ? { deviceSelector: vip.deviceSelector } : {}),
    owner: cfg.kubespand.nodeName ?? cfg.kubespand.hostname,
    etcd: {
      endpoints: etcd.endpoints,
      ...(etcd.caFile ? { caFile: etcd.caFile } : {}),
      ...(etcd.certFile ? { certFile: etcd.certFile } : {}),
      ...(etcd.keyFile ? { keyFile: etcd.keyFile } : {}),
    },
    leaseTtlSec: etcd.leaseTTL,
  };
}

export function toDaemonSettings(cfg: NodeConfig): DaemonSettings {
  const ks = cfg.machine.network.kubespan;
  if (!ks.enabled) throw new Error(`${cfg.sourceName}: machine.network.kubespan.enabled: KubeSpan is not enabled in this config (got false)`);
  if (!cfg.cluster.id || !cfg.cluster.secretBase64) throw new Error(`${cfg.sourceName}: cluster: KubeSpan needs cluster.id and cluster.secret`);
  const service = cfg.cluster.discovery.registries.service;
  const env = cfg.machine.env;
  // an explicit empty value is kept: it switches off a proxy set in the environment
  const proxy = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined)) as Record<string, string>;
  return {
    clusterId: cfg.cluster.id,
    clusterSecret: cfg.cluster.secretBase64,
    discovery: {
      enabled: cfg.cluster.discovery.enabled && !service.disabled,
      endpoint: service.endpoint,
      caFiles: cfg.kubespand.discovery.caFiles,
      nameservers: cfg.machine.network.nameservers,
      ...(Object.keys(proxy).length ? { proxy } : {}),
    },
    kubespan: {
      mtu: ks.mtu,
      allowDownPeerBypass: ks.allowDownPeerBypass,
      harvestExtraEndpoints: ks.harvestExtraEndpoints,
      advertiseKubernetesNetworks: ks.advertiseKubernetesNetworks,
      endpointFilters: ks.filters.endpoints,
      excludeAdvertisedNetworks: ks.filters.excludeAdvertisedNetworks.map(formatPrefix),
      extraAnnouncedEndpoints: ks.extraAnnouncedEndpoints,
    },
    node: {
      nodeName: cfg.kubespand.nodeName ?? '',
      hostname: cfg.kubespand.hostname,
      podCIDRs: cfg.kubespand.podCIDRs.map(formatPrefix),
      stateDir: cfg.kubespand.stateDir,
      interface: cfg.kubespand.interface,
      listenPort: cfg.kubespand.listenPort,
      ...(cfg.kubespand.identityLink ? { identityLink: cfg.kubespand.identityLink } : {}),
      ...(cfg.kubespand.identityLinkSelector ? { identityLinkSelector: cfg.kubespand.identityLinkSelector } : {}),
      ...(ks.endpointLinks ? { endpointLinks: ks.endpointLinks } : {}),
    },
    ...(vipSettings(cfg) ? { vip: vipSettings(cfg)! } : {}),
  };
}
