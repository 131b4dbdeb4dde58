/** The node config of one KubeSpan node in a local namespace mesh (the demo and the netns tests). */
import { stringify } from 'yaml';

export interface MeshNodeConfig {
  clusterId: string;
  clusterSecret: string;
  discoveryEndpoint: string;
  nodeName: string;
  stateDir: string;
  controlSocket: string;
  interface: string;
  identityLink?: string;
  allowDownPeerBypass?: boolean;
  logLevel?: string;
  /** Default `<nodeName>.local`. */
  hostname?: string;
  metricsListen?: string;
  /** machine.env (e.g. http_proxy). */
  env?: Record<string, string>;
}

export function meshNodeConfig(c: MeshNodeConfig): string {
  return stringify({
    cluster: { id: c.clusterId, secret: c.clusterSecret, discovery: { enabled: true, registries: { service: { endpoint: c.discoveryEndpoint } } } },
    machine: { network: { kubespan: { enabled: true, allowDownPeerBypass: c.allowDownPeerBypass ?? false } }, ...(c.env ? { env: c.env } : {}) },
    kubespand: {
      nodeName: c.nodeName,
      hostname: c.hostname ?? `${c.nodeName}.local`,
      stateDir: c.stateDir,
      controlSocket: c.controlSocket,
      interface: c.interface,
      ...(c.identityLink ? { identityLink: c.identityLink } : {}),
      ...(c.logLevel ? { logLevel: c.logLevel } : {}),
      ...(c.metricsListen ? { metricsListen: c.metricsListen } : {}),
    },
  });
}
