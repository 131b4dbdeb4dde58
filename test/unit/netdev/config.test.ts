/**
 * The node config keys of issue 7: machine.network.kubespan.endpointLinks, machine.network.vip,
 * kubespand.identityLinkSelector and kubespand.etcd — accepted forms, defaults, and one clear problem
 * per mistake.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkConfigFiles, ConfigError, DEFAULT_VIP_LEASE_TTL_SEC, parseNodeConfig } from '../../../src/kubespan/config.js';
import { toDaemonSettings } from '../../../src/kubespan/settings.js';

const SECRET = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';

function config(network: string, kubespand = ''): string {
  return `cluster:\n  id: c1\n  secret: ${SECRET}\nmachine:\n  network:\n    kubespan:\n      enabled: true\n${network}kubespand:\n  hostname: n1\n${kubespand}`;
}

function problems(text: string): string[] {
  try {
    parseNodeConfig(text, 'n.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n');
    throw err;
  }
  return [];
}

describe('endpointLinks and identityLinkSelector', () => {
  it('parse to compact selectors; absent endpointLinks means every usable link', () => {
    const c = parseNodeConfig(
      config(
        '      endpointLinks:\n        - hardwareAddr: "52:54:00:*"\n          physical: true\n        - busPath: "0000:00:03.0"\n          driver: ""\n',
        '  identityLinkSelector:\n    permanentAddr: "3c:ec:ef:01:02:03"\n',
      ),
      'n.yaml',
    );
    expect(c.machine.network.kubespan.endpointLinks).toEqual([{ hardwareAddr: '52:54:00:*', physical: true }, { busPath: '0000:00:03.0' }]);
    expect(c.kubespand.identityLinkSelector).toEqual({ permanentAddr: '3c:ec:ef:01:02:03' });
    expect(c.warnings).toEqual([]);
    const s = toDaemonSettings(c);
    expect(s.node.endpointLinks).toEqual([{ hardwareAddr: '52:54:00:*', physical: true }, { busPath: '0000:00:03.0' }]);
    expect(s.node.identityLinkSelector).toEqual({ permanentAddr: '3c:ec:ef:01:02:03' });
    const plain = parseNodeConfig(config(''), 'n.yaml');
    expect(plain.machine.network.kubespan.endpointLinks).toBeUndefined();
    expect(toDaemonSettings(plain).node.endpointLinks).toBeUndefined();
  });

  it('refuses an empty selector, an empty list, upper-case MACs, unknown fields and a name plus a selector', () => {
    expect(problems(config('      endpointLinks:\n        - {}\n'))).toEqual([
      'n.yaml: machine.network.kubespan.endpointLinks[0]: is an empty device selector, which matches nothing (set busPath, hardwareAddr, permanentAddr, pciID, driver or physical) (got {})',
    ]);
    expect(problems(config('      endpointLinks: []\n'))).toEqual([
      'n.yaml: machine.network.kubespan.endpointLinks: is an empty list, so no address would be advertised; omit it to use every usable link (got [])',
    ]);
    expect(problems(config('      endpointLinks:\n        - hardwareAddr: "52:54:00:AB:*"\n'))).toEqual([
      'n.yaml: machine.network.kubespan.endpointLinks[0].hardwareAddr: hardware addresses are matched in lowercase colon form (write 3c:ec:ef:… not 3C:EC:EF:…) (got "52:54:00:AB:*")',
    ]);
    expect(problems(config('      endpointLinks:\n        - permanentAddr: "52-54-00-ab-cd-ef"\n'))).toEqual([
      'n.yaml: machine.network.kubespan.endpointLinks[0].permanentAddr: is not a hardware address pattern (hex pairs separated by ":", with "*" as the only wildcard) (got "52-54-00-ab-cd-ef")',
    ]);
    expect(problems(config('      endpointLinks:\n        - drivr: e1000e\n'))).toEqual(['n.yaml: machine.network.kubespan.endpointLinks[0].drivr: unknown key; did you mean "driver"? (got "e1000e")']);
    expect(problems(config('', '  identityLink: eth0\n  identityLinkSelector:\n    driver: e1000e\n'))).toEqual([
      'n.yaml: kubespand.identityLinkSelector: cannot be combined with kubespand.identityLink; give one of them',
    ]);
  });

  it('warns about a lower-case PCI id (the kernel form is upper-case)', () => {
    const c = parseNodeConfig(config('', '  identityLinkSelector:\n    pciID: "8086:15bc"\n'), 'n.yaml');
    expect(c.warnings).toEqual(['n.yaml: kubespand.identityLinkSelector.pciID: has lower-case hex; PCI ids are matched case-sensitively in the kernel\'s upper-case form (e.g. 8086:15BC) (got "8086:15bc")']);
  });
});

describe('machine.network.vip and kubespand.etcd', () => {
  const etcd = '  etcd:\n    endpoints: [https://10.5.0.2:2379, https://10.5.0.3:2379]\n    caFile: /etc/kubespand/etcd-ca.pem\n    certFile: /etc/kubespand/etcd.pem\n    keyFile: /etc/kubespand/etcd-key.pem\n';

  it('a VIP on a named link or a selected one, with the etcd cluster and the default lease TTL', () => {
    const c = parseNodeConfig(config('    vip:\n      ip: 10.5.0.100\n      link: eth0\n', etcd), 'n.yaml');
    expect(c.machine.network.vip).toEqual({ ip: '10.5.0.100', link: 'eth0', deviceSelector: undefined });
    expect(c.kubespand.etcd).toEqual({
      endpoints: ['https://10.5.0.2:2379', 'https://10.5.0.3:2379'],
      caFile: '/etc/kubespand/etcd-ca.pem',
      certFile: '/etc/kubespand/etcd.pem',
      keyFile: '/etc/kubespand/etcd-key.pem',
      leaseTTL: DEFAULT_VIP_LEASE_TTL_SEC,
    });
    expect(c.warnings).toEqual([]);
    const v6 = parseNodeConfig(config('    vip:\n      ip: "FD00:5::0064"\n      deviceSelector:\n        hardwareAddr: "52:54:*"\n', `${etcd}    leaseTTL: 3\n`), 'n.yaml');
    expect(v6.machine.network.vip).toEqual({ ip: 'fd00:5::64', link: undefined, deviceSelector: { hardwareAddr: '52:54:*' } });
    expect(v6.kubespand.etcd?.leaseTTL).toBe(3);
    const s = toDaemonSettings(v6);
    expect(s.vip).toEqual({
      ip: 'fd00:5::64',
      deviceSelector: { hardwareAddr: '52:54:*' },
      owner: 'n1',
      etcd: { endpoints: ['https://10.5.0.2:2379', 'https://10.5.0.3:2379'], caFile: '/etc/kubespand/etcd-ca.pem', certFile: '/etc/kubespand/etcd.pem', keyFile: '/etc/kubespand/etcd-key.pem' },
      leaseTtlSec: 3,
    });
    expect(toDaemonSettings(parseNodeConfig(config(''), 'n.yaml')).vip).toBeUndefined();
  });

  it('one problem per mistake', () => {
    expect(problems(config('    vip:\n      ip: 10.5.0.300\n      link: eth0\n', etcd))).toEqual([
      'n.yaml: machine.network.vip.ip: is not an IP address: invalid IP address "10.5.0.300": IPv4 part 300 exceeds 255 (got "10.5.0.300")',
    ]);
    expect(problems(config('    vip:\n      ip: 10.5.0.100\n', etcd))).toEqual(['n.yaml: machine.network.vip: needs the link that carries the address: set link or deviceSelector']);
    expect(problems(config('    vip:\n      ip: 10.5.0.100\n      link: eth0\n      deviceSelector:\n        driver: virtio_net\n', etcd))).toEqual([
      'n.yaml: machine.network.vip: sets both link and deviceSelector; give exactly one',
    ]);
    expect(problems(config('    vip:\n      ip: 10.5.0.100\n      link: eth0\n'))).toEqual([
      'n.yaml: kubespand.etcd.endpoints: is required when machine.network.vip is set: the nodes elect the VIP owner through etcd (got nothing)',
    ]);
    expect(problems(config('    vip:\n      ip: 10.5.0.100\n      link: eth0\n', '  etcd:\n    endpoints: [10.5.0.2:2379, "https://h:2379/v3", "ftp://h"]\n'))).toEqual([
      'n.yaml: kubespand.etcd.endpoints[0]: is not a URL (want https://host:2379) (got "10.5.0.2:2379")',
      'n.yaml: kubespand.etcd.endpoints[1]: must have no path, query or fragment (want https://host:2379) (got "https://h:2379/v3")',
      'n.yaml: kubespand.etcd.endpoints[2]: must be an http:// or https:// URL (got "ftp://h")',
    ]);
    expect(problems(config('    vip:\n      ip: 10.5.0.100\n      link: eth0\n', '  etcd:\n    endpoints: [https://h:2379]\n    certFile: /c.pem\n    leaseTTL: 1\n'))).toEqual([
      'n.yaml: kubespand.etcd.leaseTTL: must be 2–300 seconds (got 1)',
      'n.yaml: kubespand.etcd.keyFile: is required with the other half of the client certificate (certFile and keyFile go together)',
    ]);
  });

  it('warns about plaintext etcd and about etcd without a VIP', () => {
    const c = parseNodeConfig(config('', '  etcd:\n    endpoints: [http://10.5.0.2:2379]\n'), 'n.yaml');
    expect(c.warnings).toEqual([
      'n.yaml: kubespand.etcd.endpoints: has a plaintext http:// endpoint: anyone on the path can read and forge the VIP election',
      'n.yaml: kubespand.etcd: is set but machine.network.vip is not: etcd is only used for the VIP election',
    ]);
  });

  it('checkConfigFiles reports etcd TLS files that cannot be read', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ksv-cfg-'));
    try {
      writeFileSync(join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\n');
      const c = parseNodeConfig(config('    vip:\n      ip: 10.5.0.100\n      link: eth0\n', `  etcd:\n    endpoints: [https://h:2379]\n    caFile: ${dir}/ca.pem\n    certFile: ${dir}/missing.pem\n    keyFile: ${dir}\n`), 'n.yaml');
      expect(checkConfigFiles(c)).toEqual([
        { path: 'kubespand.etcd.certFile', message: `cannot be read: no such file (got ${JSON.stringify(`${dir}/missing.pem`)})` },
        { path: 'kubespand.etcd.keyFile', message: `is not a regular file (got ${JSON.stringify(dir)})` },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
