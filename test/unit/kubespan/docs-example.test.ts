import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONTROL_SOCKET, DEFAULT_STATE_DIR, parseNodeConfig } from '../../../src/kubespan/config.js';

const DOC = readFileSync(join(import.meta.dirname, '..', '..', '..', 'docs', 'kubespan-config.md'), 'utf8');

describe('docs/kubespan-config.md', () => {
  it('its complete example is a valid config', () => {
    const blocks = [...DOC.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
    const example = blocks.find((b) => b.startsWith('cluster:'));
    expect(example).toBeDefined();
    const c = parseNodeConfig(example!, 'docs example');
    expect(c.machine.network.kubespan.enabled).toBe(true);
    expect(c.warnings).toEqual([]);
  });

  it('documents every key of the schema and the defaults in the code', () => {
    for (const key of [
      'cluster.id', 'cluster.secret', 'cluster.discovery.enabled', 'cluster.discovery.registries.service.endpoint',
      'cluster.discovery.registries.service.disabled', 'cluster.discovery.registries.kubernetes.disabled',
      'machine.network.kubespan.enabled', 'machine.network.kubespan.advertiseKubernetesNetworks',
      'machine.network.kubespan.allowDownPeerBypass', 'machine.network.kubespan.harvestExtraEndpoints',
      'machine.network.kubespan.mtu', 'machine.network.kubespan.filters.endpoints',
      'machine.network.kubespan.filters.excludeAdvertisedNetworks', 'machine.network.kubespan.extraAnnouncedEndpoints',
      'machine.network.nameservers', 'machine.env.http_proxy', 'machine.env.no_proxy', 'kubespand.nodeName',
      'kubespand.hostname', 'kubespand.podCIDRs', 'kubespand.stateDir', 'kubespand.controlSocket', 'kubespand.interface',
      'kubespand.listenPort', 'kubespand.identityLink', 'kubespand.discovery.caFiles', 'kubespand.logLevel', 'kubespand.metricsListen',
    ]) {
      expect(DOC, key).toContain(`\`${key}\``);
    }
    expect(DOC).toContain(`\`${DEFAULT_STATE_DIR}\``);
    expect(DOC).toContain(`\`${DEFAULT_CONTROL_SOCKET}\``);
  });
});
