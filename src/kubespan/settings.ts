/** Maps a validated node config file (src/kubespan/config.ts) to the daemon's settings. */
import { formatPrefix } from '../noise/allowed-ips.js';
import type { NodeConfig } from './config.js';
import type { DaemonSettings } from './daemon.js';

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
    },
  };
}
