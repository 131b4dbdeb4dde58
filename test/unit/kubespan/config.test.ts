import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import { checkConfigFiles, ConfigError, parseNodeConfig, parseNodeConfigFile, trustedCaFiles } from '../../../src/kubespan/config.js';
import { formatPrefix } from '../../../src/noise/allowed-ips.js';

const SECRET = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';
const CLUSTER_ID = '8XuV9TZHW08DOk3bVxQjH9ih_TBKjnh-j44tsCLSBzo=';

const GOOD = `
cluster:
  id: ${CLUSTER_ID}
  secret: ${SECRET}
  discovery:
    enabled: true
    registries:
      service:
        endpoint: https://discovery.example.com:8443/
      kubernetes:
        disabled: true
machine:
  network:
    kubespan:
      enabled: true
      advertiseKubernetesNetworks: true
      allowDownPeerBypass: true
      harvestExtraEndpoints: true
      mtu: 1380
      filters:
        endpoints:
          - 0.0.0.0/0
          - "!192.168.0.0/16"
          - 2001::/16
        excludeAdvertisedNetworks:
          - 10.96.0.0/12
      extraAnnouncedEndpoints:
        - 203.0.113.4:51821
        - "[2001:db8::4]:51820"
    nameservers: [10.0.0.53, "2001:4860:4860::8888"]
  env:
    https_proxy: http://proxy.corp:3128
    no_proxy: .corp,10.0.0.0/8
kubespand:
  nodeName: worker-1.example
  hostname: worker-1
  podCIDRs: [10.244.1.0/24, "fd00:10:244:1::/64"]
  stateDir: /var/lib/kubespand-test
  controlSocket: /run/kubespand/test.sock
  interface: ks0
  listenPort: 51900
  identityLink: eth1
  discovery:
    caFiles: [/etc/kubespand/ca.pem]
  logLevel: debug
  metricsListen: "127.0.0.1:9100"
`;

/** The problems of a bad config, as the lines of the ConfigError message. */
function problems(text: string): string[] {
  try {
    parseNodeConfig(text, 'node.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const e = err as ConfigError;
    expect(e.message.split('\n')).toHaveLength(e.problems.length);
    return e.message.split('\n');
  }
  throw new Error('config was accepted');
}

/** The minimal valid KubeSpan config with one change applied to its parsed form. */
function variant(change: (doc: Record<string, any>) => void): string {
  const doc = { cluster: { id: CLUSTER_ID, secret: SECRET }, machine: { network: { kubespan: { enabled: true } } } } as Record<string, any>;
  change(doc);
  return stringify(doc);
}

describe('parseNodeConfig: good files', () => {
  it('returns typed, decoded values', () => {
    const c = parseNodeConfig(GOOD, 'node.yaml');
    expect(c.sourceName).toBe('node.yaml');
    expect(c.cluster.id).toBe(CLUSTER_ID);
    expect(c.cluster.secretBase64).toBe(SECRET);
    expect(Buffer.from(c.cluster.secret!)).toEqual(Buffer.from(Array.from({ length: 32 }, (_, i) => i)));
    expect(c.cluster.discovery).toEqual({
      enabled: true,
      registries: {
        service: { endpoint: 'https://discovery.example.com:8443/', disabled: false, target: { host: 'discovery.example.com', port: 8443, tls: true, target: 'discovery.example.com:8443' } },
        kubernetes: { disabled: true },
      },
    });
    const ks = c.machine.network.kubespan;
    expect(ks).toMatchObject({ enabled: true, advertiseKubernetesNetworks: true, allowDownPeerBypass: true, harvestExtraEndpoints: true, mtu: 1380 });
    expect(ks.filters.endpoints).toEqual(['0.0.0.0/0', '!192.168.0.0/16', '2001::/16']);
    expect(ks.filters.excludeAdvertisedNetworks.map(formatPrefix)).toEqual(['10.96.0.0/12']);
    expect(ks.extraAnnouncedEndpoints).toEqual([
      { address: '203.0.113.4', port: 51821 },
      { address: '2001:db8::4', port: 51820 },
    ]);
    expect(c.machine.network.nameservers).toEqual(['10.0.0.53', '2001:4860:4860::8888']);
    expect(c.machine.env).toEqual({ https_proxy: 'http://proxy.corp:3128', no_proxy: '.corp,10.0.0.0/8' });
    expect({ ...c.kubespand, podCIDRs: c.kubespand.podCIDRs.map(formatPrefix) }).toEqual({
      nodeName: 'worker-1.example',
      hostname: 'worker-1',
      podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'],
      stateDir: '/var/lib/kubespand-test',
      controlSocket: '/run/kubespand/test.sock',
      interface: 'ks0',
      listenPort: 51900,
      identityLink: 'eth1',
      discovery: { caFiles: ['/etc/kubespand/ca.pem'] },
      logLevel: 'debug',
      metricsListen: { host: '127.0.0.1', port: 9100 },
    });
    expect(c.warnings).toEqual([]);
    expect(trustedCaFiles(c)).toEqual(['/etc/ssl/certs/ca-certificates.crt', '/etc/kubespand/ca.pem']);
  });

  it('fills every default (spec §4.1) for a minimal KubeSpan config', () => {
    const c = parseNodeConfig(variant(() => {}), 'node.yaml');
    expect(c.cluster.discovery).toEqual({
      enabled: true,
      registries: {
        service: { endpoint: 'https://discovery.talos.dev/', disabled: false, target: { host: 'discovery.talos.dev', port: 443, tls: true, target: 'discovery.talos.dev:443' } },
        kubernetes: { disabled: true },
      },
    });
    expect(c.machine.network.kubespan).toEqual({
      enabled: true,
      advertiseKubernetesNetworks: false,
      allowDownPeerBypass: false,
      harvestExtraEndpoints: false,
      mtu: 1420,
      filters: { endpoints: [], excludeAdvertisedNetworks: [] },
      extraAnnouncedEndpoints: [],
    });
    expect(c.machine.network.nameservers).toEqual([]);
    expect(c.machine.env).toEqual({});
    expect(c.kubespand).toEqual({
      nodeName: undefined,
      hostname: hostname(),
      podCIDRs: [],
      stateDir: '/var/lib/kubespand',
      controlSocket: '/run/kubespand/kubespand.sock',
      interface: 'kubespan',
      listenPort: 51820,
      identityLink: undefined,
      discovery: { caFiles: [] },
      logLevel: 'info',
      metricsListen: undefined,
    });
  });

  it('treats "key:" with no value as unset, and mtu 0 as the default (legacy)', () => {
    const c = parseNodeConfig(
      `cluster:\n  id: x\n  secret: ${SECRET}\n  discovery:\nmachine:\n  network:\n    kubespan:\n      enabled: true\n      mtu: 0\n      filters:\n        endpoints:\nkubespand:\n`,
      'n.yaml',
    );
    expect(c.machine.network.kubespan.mtu).toBe(1420);
    expect(c.machine.network.kubespan.filters.endpoints).toEqual([]);
    expect(c.cluster.discovery.enabled).toBe(true);
  });

  it('accepts a pasted Talos snippet and an empty file (KubeSpan off, with a warning)', () => {
    const talos = `machine:\n  network:\n    kubespan:\n      enabled: true\ncluster:\n  id: ${CLUSTER_ID}\n  secret: ${SECRET}\n  discovery:\n    enabled: true\n    registries:\n      kubernetes:\n        disabled: false\n      service: {}\n`;
    const c = parseNodeConfig(talos, 'talos.yaml');
    expect(c.warnings).toEqual([expect.stringMatching(/^talos\.yaml: cluster\.discovery\.registries\.kubernetes\.disabled: is false, but kubespand has no Kubernetes registry/)]);
    const empty = parseNodeConfig('', 'empty.yaml');
    expect(empty.machine.network.kubespan.enabled).toBe(false);
    expect(empty.cluster.id).toBeUndefined();
    expect(empty.warnings).toEqual(['empty.yaml: machine.network.kubespan.enabled: is false: kubespand will not build a mesh']);
  });

  it('warns about filters made only of negations and about plaintext discovery', () => {
    const c = parseNodeConfig(
      variant((d) => {
        d.machine.network.kubespan.filters = { endpoints: ['!10.0.0.0/8'] };
        d.cluster.discovery = { registries: { service: { endpoint: 'http://10.0.0.1:3000' } } };
      }),
      'n.yaml',
    );
    expect(c.warnings).toEqual([
      expect.stringMatching(/^n\.yaml: machine\.network\.kubespan\.filters\.endpoints: has only negated entries, so no address is advertised/),
      expect.stringMatching(/^n\.yaml: cluster\.discovery\.registries\.service\.endpoint: is plaintext http:\/\//),
    ]);
  });

  it('never prints the secret when the config is logged', () => {
    const c = parseNodeConfig(GOOD, 'node.yaml');
    expect(JSON.stringify(c)).not.toContain(SECRET);
    expect(inspect(c, { depth: 10 })).not.toContain(SECRET);
    expect(JSON.stringify(c)).toContain(CLUSTER_ID);
    expect(JSON.parse(JSON.stringify(c)).cluster.secretBase64).toBe('(hidden)');
  });
});

describe('parseNodeConfig: bad files give one clear error each, naming the path', () => {
  it.each<[string, (d: Record<string, any>) => void, string]>([
    ['missing secret', (d) => delete d.cluster.secret, 'node.yaml: cluster.secret: is required when machine.network.kubespan.enabled is true (got nothing)'],
    ['missing cluster id', (d) => delete d.cluster.id, 'node.yaml: cluster.id: is required when machine.network.kubespan.enabled is true (got nothing)'],
    ['secret of 16 bytes', (d) => (d.cluster.secret = Buffer.alloc(16, 7).toString('base64')), 'node.yaml: cluster.secret: must decode to exactly 32 bytes, decodes to 16 (value hidden)'],
    ['secret that is not base64', (d) => (d.cluster.secret = 'not base64 at all!!'), 'node.yaml: cluster.secret: is not standard base64 (A–Z, a–z, 0–9, +, / with = padding) (value hidden)'],
    ['url-safe secret', (d) => (d.cluster.secret = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh_-'), 'node.yaml: cluster.secret: is not standard base64 (A–Z, a–z, 0–9, +, / with = padding) (value hidden)'],
    [
      'bad CIDR in a filter',
      (d) => (d.machine.network.kubespan.filters = { endpoints: ['0.0.0.0/0', '!10.0.0.0/33'] }),
      'node.yaml: machine.network.kubespan.filters.endpoints[1]: is not a CIDR or IP address, optionally prefixed with "!" (got "!10.0.0.0/33")',
    ],
    [
      'bad CIDR in excludeAdvertisedNetworks',
      (d) => (d.machine.network.kubespan.filters = { excludeAdvertisedNetworks: ['10.0.0.300/8'] }),
      'node.yaml: machine.network.kubespan.filters.excludeAdvertisedNetworks[0]: is not a CIDR or IP address: invalid IP prefix "10.0.0.300/8": IPv4 part 300 exceeds 255 (got "10.0.0.300/8")',
    ],
    ['mtu below 1280', (d) => (d.machine.network.kubespan.mtu = 1200), 'node.yaml: machine.network.kubespan.mtu: must be at least 1280 (the IPv6 minimum MTU) (got 1200)'],
    ['mtu not an integer', (d) => (d.machine.network.kubespan.mtu = '1420'), 'node.yaml: machine.network.kubespan.mtu: must be an integer (got "1420")'],
    ['unknown key (typo)', (d) => (d.machine.network.kubespan.allowDownPeerByPass = true), 'node.yaml: machine.network.kubespan.allowDownPeerByPass: unknown key; did you mean "allowDownPeerBypass"? (got true)'],
    ['unknown top-level key', (d) => (d.debug = false), 'node.yaml: debug: unknown key (known keys here: cluster, machine, kubespand) (got false)'],
    ['unknown key set to null', (d) => (d.machine.network.kubespn = null), 'node.yaml: machine.network.kubespn: unknown key; did you mean "kubespan"? (got null)'],
    [
      'bad discovery endpoint scheme',
      (d) => (d.cluster.discovery = { registries: { service: { endpoint: 'ftp://discovery.example.com/' } } }),
      'node.yaml: cluster.discovery.registries.service.endpoint: has scheme "ftp", want http, https or grpc (got "ftp://discovery.example.com/")',
    ],
    [
      'discovery endpoint that is not a URL',
      (d) => (d.cluster.discovery = { registries: { service: { endpoint: 'discovery.example.com' } } }),
      'node.yaml: cluster.discovery.registries.service.endpoint: is not a URL (want http://, https:// or grpc://host[:port]) (got "discovery.example.com")',
    ],
    ['enabled is a string', (d) => (d.machine.network.kubespan.enabled = 'yes'), 'node.yaml: machine.network.kubespan.enabled: must be true or false (got "yes")'],
    ['discovery disabled with KubeSpan on', (d) => (d.cluster.discovery = { enabled: false }), 'node.yaml: cluster.discovery.enabled: must be true when machine.network.kubespan.enabled is true: KubeSpan finds its peers through discovery (got false)'],
    ['IPv6 extra endpoint without brackets', (d) => (d.machine.network.kubespan.extraAnnouncedEndpoints = ['2001:db8::1:51820']), 'node.yaml: machine.network.kubespan.extraAnnouncedEndpoints[0]: is not ip:port (write an IPv6 endpoint as [address]:port) (got "2001:db8::1:51820")'],
    ['extra endpoint port 0', (d) => (d.machine.network.kubespan.extraAnnouncedEndpoints = ['1.2.3.4:0']), 'node.yaml: machine.network.kubespan.extraAnnouncedEndpoints[0]: port 0 is out of range 1–65535 (got "1.2.3.4:0")'],
    ['nameserver that is a name', (d) => (d.machine.network = { ...d.machine.network, nameservers: ['dns.google'] }), 'node.yaml: machine.network.nameservers[0]: is not an IP address: invalid IP address "dns.google": IPv4 needs four dot-separated decimal parts (got "dns.google")'],
    ['relative stateDir', (d) => (d.kubespand = { stateDir: 'state' }), 'node.yaml: kubespand.stateDir: must be an absolute path (got "state")'],
    ['node name with capitals', (d) => (d.kubespand = { nodeName: 'Worker_1' }), 'node.yaml: kubespand.nodeName: is not a Kubernetes node name (lowercase RFC 1123 subdomain: a–z, 0–9, "-", ".", at most 253 characters) (got "Worker_1")'],
    ['interface name too long', (d) => (d.kubespand = { interface: 'kubespan-interface' }), 'node.yaml: kubespand.interface: is not a Linux interface name (1–15 characters, no spaces, "/" or ":") (got "kubespan-interface")'],
    ['listen port too big', (d) => (d.kubespand = { listenPort: 70000 }), 'node.yaml: kubespand.listenPort: listenPort must be 1–65535 (got 70000)'],
    ['unknown log level', (d) => (d.kubespand = { logLevel: 'verbose' }), 'node.yaml: kubespand.logLevel: must be one of fatal, error, warn, info, debug, trace, silent (got "verbose")'],
    ['pod CIDRs not a list', (d) => (d.kubespand = { podCIDRs: '10.244.0.0/16' }), 'node.yaml: kubespand.podCIDRs: must be a list (got "10.244.0.0/16")'],
    ['section not a mapping', (d) => (d.machine.network.kubespan = true), 'node.yaml: machine.network.kubespan: must be a mapping (got true)'],
    ['proxy credentials are masked', (d) => (d.machine.env = { https_proxy: 'ftp://user:hunter2@proxy:21' }), 'node.yaml: machine.env.https_proxy: uses ftp; only http:// proxies (HTTP CONNECT) are supported (got "ftp://***@proxy:21")'],
  ])('%s', (_name, change, expected) => {
    expect(problems(variant(change))).toEqual([expected]);
  });

  it('lists every problem at once', () => {
    const lines = problems(
      variant((d) => {
        delete d.cluster.secret;
        d.machine.network.kubespan.mtu = 9;
        d.machine.network.kubespan.filters = { endpoints: ['nope'] };
        d.kubespand = { stateDir: 'rel', bogus: 1 };
      }),
    );
    expect(lines).toHaveLength(5);
    expect(lines.map((l) => l.split(': ')[1])).toEqual([
      'machine.network.kubespan.mtu',
      'machine.network.kubespan.filters.endpoints[0]',
      'kubespand.stateDir',
      'kubespand.bogus',
      'cluster.secret',
    ]);
  });

  it('never echoes the secret, whatever is wrong with it', () => {
    for (const secret of ['c2VjcmV0LXNlY3JldC1zZWNyZXQ=', 12345, 'has spaces in it', ['a', 'list']]) {
      const message = problems(variant((d) => (d.cluster.secret = secret))).join('\n');
      expect(message).toMatch(/cluster\.secret: .*\(value hidden\)$/);
      expect(message).not.toContain(String(secret));
      if (Array.isArray(secret)) expect(message).not.toContain('list');
    }
  });

  it('never echoes a key that is not a plain name: a damaged line can merge a proxy password into its key', () => {
    // found by the long node-config fuzz run after 825,841 cases: one flipped bit turned the space after
    // `http_proxy:` into "!", so the quoted URL's text up to the password's ": " became a key
    const password = 'P0000000000aaa: aaaaaaa';
    const text = variant((d) => (d.machine.env = { http_proxy: `socks5://u:${password}@proxy.example:3128`, no_proxy: 'localhost' })).replace('http_proxy: "', 'http_proxy:!"');
    expect(text).toContain(`http_proxy:!"socks5://u:${password}@proxy.example:3128"`);
    const lines = problems(text);
    expect(lines).toEqual([
      'node.yaml: machine.env.(a key that is not a plain name): unknown key (known keys here: http_proxy, https_proxy, no_proxy, grpc_proxy, no_grpc_proxy, HTTP_PROXY, HTTPS_PROXY, NO_PROXY, GRPC_PROXY) (got "***@proxy.example:3128\\"")',
    ]);
    expect(lines.join('\n')).not.toContain('P0000000000aaa');
    // typos of names are still named
    const typos = problems(variant((d) => (d.machine.env = { 'http-proxy': 'x', no_proxy_2: 'y', 'kube.span': 'z' })));
    expect(typos.map((l) => l.split(': unknown key')[0])).toEqual(['node.yaml: machine.env.http-proxy', 'node.yaml: machine.env.no_proxy_2', 'node.yaml: machine.env.kube.span']);
  });

  it('reports YAML syntax errors and duplicate keys with their line', () => {
    expect(problems('cluster:\n  id: a\n  id: b\n')[0]).toMatch(/^node\.yaml: line 3, column 3: YAML syntax error: Map keys must be unique/);
    expect(problems('cluster: [unclosed\n')[0]).toMatch(/^node\.yaml: line \d+, column \d+: YAML syntax error: /);
    expect(problems('cluster:\n  id: a\n---\nmachine: {}\n')).toEqual([
      'node.yaml: line 3, column 1: the file holds more than one YAML document ("---"); put cluster:, machine: and kubespand: in one document',
    ]);
    expect(problems('cluster:\n\tid: a\n')[0]).toMatch(/^node\.yaml: line 2, column 1: YAML syntax error: Tabs are not allowed/);
    expect(problems('cluster: &a\n  id: *a\n')).toEqual(['node.yaml: cluster.id: must be a string (got a mapping)']);
    expect(problems('- just\n- a list\n')).toEqual(['node.yaml: must be a YAML mapping with cluster:, machine: and kubespand: sections (got ["just","a list"])']);
  });

  it('parseNodeConfigFile names an unreadable file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ksk-config-'));
    try {
      expect(() => parseNodeConfigFile(join(dir, 'missing.yaml'))).toThrow(`${join(dir, 'missing.yaml')}: cannot read the config file: no such file`);
      const file = join(dir, 'node.yaml');
      writeFileSync(file, GOOD);
      expect(parseNodeConfigFile(file).sourceName).toBe(file);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('checkConfigFiles reports CA files that are missing or hold no certificate', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ksk-config-'));
    try {
      const junk = join(dir, 'junk.pem');
      const good = join(dir, 'ca.pem');
      writeFileSync(junk, 'hello');
      writeFileSync(good, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
      const doc = parseYaml(GOOD);
      doc.kubespand.discovery.caFiles = [good, join(dir, 'nope.pem'), junk];
      const c = parseNodeConfig(stringify(doc), 'node.yaml');
      expect(checkConfigFiles(c)).toEqual([
        { path: 'kubespand.discovery.caFiles[1]', message: `cannot be read: no such file (got ${JSON.stringify(join(dir, 'nope.pem'))})` },
        { path: 'kubespand.discovery.caFiles[2]', message: `holds no PEM certificate (got ${JSON.stringify(junk)})` },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
