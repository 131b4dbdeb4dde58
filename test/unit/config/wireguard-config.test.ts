/**
 * The `kubespand up --config` YAML: good files decode to typed values with the right defaults, and
 * every class of bad input is reported as `<file>: <path>: <problem> (got <value>)`, all problems at
 * once, without ever echoing a private or preshared key.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import nacl from 'tweetnacl';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  ConfigError,
  DEFAULT_MTU,
  parseGoDurationSeconds,
  parseWireguardConfig,
  parseWireguardConfigFile,
  resolveConfigEndpoint,
  type WireguardDeviceConfig,
} from '../../../src/config/wireguard-config.js';
import { formatIp, formatPrefix } from '../../../src/noise/allowed-ips.js';

function keyPair(seed: number): { priv: string; pub: string; privBytes: Uint8Array; pubBytes: Uint8Array } {
  // deliberately NOT clamped, to see the parser clamp it
  const privBytes = new Uint8Array(32).map((_, i) => (seed * 29 + i * 13 + 1) & 0xff);
  const pubBytes = nacl.scalarMult.base(privBytes);
  return { priv: Buffer.from(privBytes).toString('base64'), pub: Buffer.from(pubBytes).toString('base64'), privBytes, pubBytes };
}

const ME = keyPair(1);
const P1 = keyPair(2);
const P2 = keyPair(3);
const PSK = Buffer.from(new Uint8Array(32).map((_, i) => 90 + i)).toString('base64');

const FULL = `# a full file
interface: kubespan0
mtu: 1380
addresses:
  - 10.10.0.1/24
  - fd00::1/64
wireguard:
  privateKey: ${ME.priv}
  listenPort: 51820
  firewallMark: 0x20
  peers:
    - publicKey: ${P1.pub}
      presharedKey: ${PSK}
      endpoint: 192.0.2.10:51820
      persistentKeepaliveInterval: 25s
      allowedIPs: [10.10.0.2/32, fd00::2/128, 10.20.1.9/16]
    - publicKey: ${P2.pub}
      endpoint: "[FD00:0::9]:4242"
      persistentKeepaliveInterval: 1m30s
      allowedIPs: []
    - publicKey: ${keyPair(4).pub}
      endpoint: node-3.example.com:51820
      allowedIPs: [0.0.0.0/0]
`;

function problemsOf(text: string, source = 'cfg.yaml'): string[] {
  try {
    parseWireguardConfig(text, source);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

/** A valid config object to break one field of. */
function base(): Record<string, unknown> & { wireguard: Record<string, unknown> & { peers: Record<string, unknown>[] } } {
  return {
    interface: 'ksu0',
    addresses: ['10.10.0.1/24'],
    wireguard: {
      privateKey: ME.priv,
      peers: [{ publicKey: P1.pub, presharedKey: PSK, endpoint: '192.0.2.1:51820', persistentKeepaliveInterval: '25s', allowedIPs: ['10.10.0.2/32'] }],
    },
  };
}

describe('good files', () => {
  it('decodes every field of a full file', () => {
    const cfg = parseWireguardConfig(FULL, 'full.yaml');
    expect(cfg.source).toBe('full.yaml');
    expect(cfg.interface).toBe('kubespan0');
    expect(cfg.mtu).toBe(1380);
    // interface addresses keep their host bits
    expect(cfg.addresses.map((a) => `${formatIp(a.address)}/${a.bits}`)).toEqual(['10.10.0.1/24', 'fd00::1/64']);
    const clamped = Uint8Array.from(ME.privBytes);
    clamped[0]! &= 248;
    clamped[31] = (clamped[31]! & 127) | 64;
    expect(Buffer.from(cfg.wireguard.privateKey).equals(Buffer.from(clamped))).toBe(true);
    expect(Buffer.from(cfg.wireguard.publicKey).toString('base64')).toBe(ME.pub);
    expect(cfg.wireguard.listenPort).toBe(51820);
    expect(cfg.wireguard.firewallMark).toBe(0x20);
    const [a, b, c] = cfg.wireguard.peers;
    expect(Buffer.from(a!.publicKey).toString('base64')).toBe(P1.pub);
    expect(Buffer.from(a!.presharedKey!).toString('base64')).toBe(PSK);
    expect(a!.endpoint).toEqual({ host: '192.0.2.10', port: 51820, isIp: true });
    expect(a!.persistentKeepaliveSec).toBe(25);
    // allowed IPs are masked, in file order
    expect(a!.allowedIps.map(formatPrefix)).toEqual(['10.10.0.2/32', 'fd00::2/128', '10.20.0.0/16']);
    expect(b!.presharedKey).toBeNull();
    expect(b!.endpoint).toEqual({ host: 'fd00::9', port: 4242, isIp: true });
    expect(b!.persistentKeepaliveSec).toBe(90);
    expect(b!.allowedIps).toEqual([]);
    expect(c!.endpoint).toEqual({ host: 'node-3.example.com', port: 51820, isIp: false });
    expect(c!.persistentKeepaliveSec).toBe(0);
  });

  it('applies the defaults: mtu 1420, no addresses, random port, no fwmark, no peers', () => {
    const cfg = parseWireguardConfig(`interface: wg0\nwireguard:\n  privateKey: ${ME.priv}\n`, 'min.yaml');
    expect(DEFAULT_MTU).toBe(1420);
    expect(cfg).toMatchObject({ interface: 'wg0', mtu: 1420, addresses: [], wireguard: { listenPort: 0, firewallMark: 0, peers: [] } });
  });

  it('accepts the limits of every range', () => {
    const c = base();
    c.mtu = 1280;
    c.wireguard.listenPort = 65535;
    c.wireguard.firewallMark = 4294967295;
    c.wireguard.peers[0]!.persistentKeepaliveInterval = '18h12m15s';
    c.wireguard.peers[0]!.endpoint = '[fe80::1%eth0]:65535';
    c.interface = 'x'.repeat(15);
    const cfg = parseWireguardConfig(stringify(c), 'limits.yaml');
    expect([cfg.mtu, cfg.wireguard.listenPort, cfg.wireguard.firewallMark, cfg.wireguard.peers[0]!.persistentKeepaliveSec]).toEqual([1280, 65535, 4294967295, 65535]);
    expect(cfg.wireguard.peers[0]!.endpoint).toEqual({ host: 'fe80::1%eth0', port: 65535, isIp: true });
    c.wireguard.peers[0]!.endpoint = '[::ffff:192.0.2.1]:1';
    expect(parseWireguardConfig(stringify(c), 'limits.yaml').wireguard.peers[0]!.endpoint).toEqual({ host: '192.0.2.1', port: 1, isIp: true });
    c.mtu = 65535;
    expect(parseWireguardConfig(stringify(c), 'limits.yaml').mtu).toBe(65535);
  });

  it('keeps keys out of JSON and util.inspect', () => {
    const cfg: WireguardDeviceConfig = parseWireguardConfig(FULL, 'full.yaml');
    const privBytesText = inspect(Array.from(cfg.wireguard.privateKey));
    for (const text of [JSON.stringify(cfg), inspect(cfg, { depth: 10 })]) {
      expect(text).not.toContain(ME.priv);
      expect(text).not.toContain(PSK);
      expect(text).not.toContain(privBytesText.slice(1, 40));
    }
    expect(inspect(cfg, { depth: 10 })).toMatch(/redacted/);
  });

  it('reads a file and names it in problems', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ksu-cfg-'));
    try {
      const good = join(dir, 'good.yaml');
      writeFileSync(good, FULL);
      expect((await parseWireguardConfigFile(good)).interface).toBe('kubespan0');
      const bad = join(dir, 'bad.yaml');
      writeFileSync(bad, FULL.replace('mtu: 1380', 'mtu: 100'));
      await expect(parseWireguardConfigFile(bad)).rejects.toThrow(`${bad}: mtu: must be an integer 1280..65535`);
      await expect(parseWireguardConfigFile(join(dir, 'missing.yaml'))).rejects.toThrow(`${join(dir, 'missing.yaml')}: cannot read the file: ENOENT`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('resolves endpoints at apply time: IPs as they are, names through the resolver', async () => {
    expect(await resolveConfigEndpoint({ host: 'fd00::9', port: 1, isIp: true })).toEqual({ address: 'fd00::9', port: 1 });
    const local = await resolveConfigEndpoint({ host: 'localhost', port: 51820, isIp: false });
    expect(['127.0.0.1', '::1']).toContain(local.address);
    expect(local.port).toBe(51820);
  });
});

describe('Go durations', () => {
  it.each([
    ['0', 0],
    ['0s', 0],
    ['25s', 25],
    ['1m30s', 90],
    ['1.5m', 90],
    ['2000ms', 2],
    ['1h', 3600],
    ['+10s', 10],
    ['18h12m15s', 65535],
    ['1000000000ns', 1],
  ])('%s = %d s', (text, seconds) => {
    expect(parseGoDurationSeconds(text)).toBe(seconds);
  });

  it.each([
    ['25', /Go duration/],
    ['25 s', /Go duration/],
    ['', /Go duration/],
    ['s', /Go duration/],
    ['1x', /Go duration/],
    ['1m30', /Go duration/],
    ['-1s', /negative/],
    ['1.5s', /whole number of seconds/],
    ['18h12m16s', /at most 65535s/],
  ])('%j is refused (%s)', (text, message) => {
    expect(() => parseGoDurationSeconds(text)).toThrow(message);
  });
});

describe('bad files: one problem each, named by path, with the value', () => {
  const cases: [string, (c: ReturnType<typeof base>) => void, string][] = [
    ['interface missing', (c) => delete c.interface, 'cfg.yaml: interface: is required'],
    ['interface too long', (c) => (c.interface = 'x'.repeat(16)), `cfg.yaml: interface: must be at most 15 bytes (Linux IFNAMSIZ), is 16 (got "${'x'.repeat(16)}")`],
    ['interface with a slash', (c) => (c.interface = 'a/b'), `cfg.yaml: interface: must not contain '/', ':' or whitespace (got "a/b")`],
    ['interface empty', (c) => (c.interface = ''), 'cfg.yaml: interface: must not be empty (got "")'],
    ['interface not a string', (c) => (c.interface = 7), 'cfg.yaml: interface: must be an interface name string (got 7)'],
    ['mtu too small', (c) => (c.mtu = 1279), 'cfg.yaml: mtu: must be an integer 1280..65535 (IPv6 needs at least 1280) (got 1279)'],
    ['mtu too large', (c) => (c.mtu = 65536), 'cfg.yaml: mtu: must be an integer 1280..65535 (IPv6 needs at least 1280) (got 65536)'],
    ['mtu fractional', (c) => (c.mtu = 1400.5), 'cfg.yaml: mtu: must be an integer 1280..65535 (IPv6 needs at least 1280) (got 1400.5)'],
    ['mtu as a string', (c) => (c.mtu = '1420'), 'cfg.yaml: mtu: must be an integer 1280..65535 (IPv6 needs at least 1280) (got "1420")'],
    ['address without prefix length', (c) => (c.addresses = ['10.10.0.1']), 'cfg.yaml: addresses[0]: must be an address with a prefix length, like 10.10.0.1/24 or fd00::1/64 (got "10.10.0.1")'],
    ['address prefix too long', (c) => (c.addresses = ['10.232.0.1/33']), 'cfg.yaml: addresses[0]: prefix length must be a decimal number 0..32 (got "10.232.0.1/33")'],
    ['address not an IP', (c) => (c.addresses = ['fd00::g/64']), 'cfg.yaml: addresses[0]: invalid IP address "fd00::g": group "g" is not 1–4 hex digits (got "fd00::g/64")'],
    ['addresses not a list', (c) => (c.addresses = '10.0.0.1/24'), 'cfg.yaml: addresses: must be a list of CIDR addresses (got "10.0.0.1/24")'],
    ['duplicate address', (c) => (c.addresses = ['10.0.0.1/24', '10.0.0.1/16']), 'cfg.yaml: addresses[1]: address 10.0.0.1 is already listed at addresses[0] (got "10.0.0.1/16")'],
    ['wireguard missing', (c) => delete (c as Record<string, unknown>).wireguard, 'cfg.yaml: wireguard: is required'],
    ['privateKey missing', (c) => delete c.wireguard.privateKey, 'cfg.yaml: wireguard.privateKey: is required'],
    ['listenPort negative', (c) => (c.wireguard.listenPort = -1), 'cfg.yaml: wireguard.listenPort: must be an integer 0..65535 (0 = random) (got -1)'],
    ['listenPort too large', (c) => (c.wireguard.listenPort = 70000), 'cfg.yaml: wireguard.listenPort: must be an integer 0..65535 (0 = random) (got 70000)'],
    ['listenPort a string', (c) => (c.wireguard.listenPort = 'any'), 'cfg.yaml: wireguard.listenPort: must be an integer 0..65535 (0 = random) (got "any")'],
    ['firewallMark too large', (c) => (c.wireguard.firewallMark = 2 ** 32), 'cfg.yaml: wireguard.firewallMark: must be an integer 0..4294967295 (got 4294967296)'],
    ['firewallMark negative', (c) => (c.wireguard.firewallMark = -5), 'cfg.yaml: wireguard.firewallMark: must be an integer 0..4294967295 (got -5)'],
    ['peers not a list', (c) => (c.wireguard.peers = { a: 1 } as never), 'cfg.yaml: wireguard.peers: must be a list of peers (got {"a":1})'],
    ['peer publicKey missing', (c) => delete c.wireguard.peers[0]!.publicKey, 'cfg.yaml: wireguard.peers[0].publicKey: is required'],
    ['peer publicKey malformed', (c) => (c.wireguard.peers[0]!.publicKey = 'abc='), 'cfg.yaml: wireguard.peers[0].publicKey: must be a WireGuard key: 44 characters of standard base64 encoding 32 bytes (as `wg genkey` prints) (got "abc=")'],
    ['endpoint without port', (c) => (c.wireguard.peers[0]!.endpoint = '192.0.2.1'), 'cfg.yaml: wireguard.peers[0].endpoint: must include a port: ip:port, [ipv6]:port or host:port (got "192.0.2.1")'],
    ['endpoint port 0', (c) => (c.wireguard.peers[0]!.endpoint = '192.0.2.1:0'), 'cfg.yaml: wireguard.peers[0].endpoint: port must be a decimal number 1..65535 (got "192.0.2.1:0")'],
    ['endpoint port too large', (c) => (c.wireguard.peers[0]!.endpoint = 'h.example:65536'), 'cfg.yaml: wireguard.peers[0].endpoint: port must be a decimal number 1..65535 (got "h.example:65536")'],
    ['endpoint v6 without brackets', (c) => (c.wireguard.peers[0]!.endpoint = 'fd00::1:51820'), 'cfg.yaml: wireguard.peers[0].endpoint: an IPv6 endpoint needs brackets: [ipv6]:port (got "fd00::1:51820")'],
    ['endpoint v4 in brackets', (c) => (c.wireguard.peers[0]!.endpoint = '[1.2.3.4]:5'), 'cfg.yaml: wireguard.peers[0].endpoint: brackets are only for IPv6 addresses (got "[1.2.3.4]:5")'],
    ['endpoint bad IPv4', (c) => (c.wireguard.peers[0]!.endpoint = '10.0.0.300:1'), 'cfg.yaml: wireguard.peers[0].endpoint: invalid IP address "10.0.0.300": IPv4 part 300 exceeds 255 (got "10.0.0.300:1")'],
    ['endpoint bad host name', (c) => (c.wireguard.peers[0]!.endpoint = 'bad_host.example:1'), 'cfg.yaml: wireguard.peers[0].endpoint: host must be an IP address or a DNS name (got "bad_host.example:1")'],
    ['keepalive not a duration', (c) => (c.wireguard.peers[0]!.persistentKeepaliveInterval = '25 parsecs'), 'cfg.yaml: wireguard.peers[0].persistentKeepaliveInterval: must be a Go duration like "25s", "1m30s" or "0s" (got "25 parsecs")'],
    ['keepalive as a number', (c) => (c.wireguard.peers[0]!.persistentKeepaliveInterval = 25), 'cfg.yaml: wireguard.peers[0].persistentKeepaliveInterval: must be a Go duration string like "25s" (got 25)'],
    ['keepalive too long', (c) => (c.wireguard.peers[0]!.persistentKeepaliveInterval = '19h'), 'cfg.yaml: wireguard.peers[0].persistentKeepaliveInterval: must be at most 65535s (got "19h")'],
    ['allowedIPs missing', (c) => delete c.wireguard.peers[0]!.allowedIPs, 'cfg.yaml: wireguard.peers[0].allowedIPs: is required'],
    ['allowed IP malformed', (c) => (c.wireguard.peers[0]!.allowedIPs = ['10.232.0.300/32']), 'cfg.yaml: wireguard.peers[0].allowedIPs[0]: invalid IP prefix "10.232.0.300/32": IPv4 part 300 exceeds 255 (got "10.232.0.300/32")'],
    ['allowed IP without length', (c) => (c.wireguard.peers[0]!.allowedIPs = ['10.0.0.1']), 'cfg.yaml: wireguard.peers[0].allowedIPs[0]: must be a CIDR prefix like 10.10.0.0/24 or fd00::/64 (got "10.0.0.1")'],
    ['allowed IP listed twice', (c) => (c.wireguard.peers[0]!.allowedIPs = ['10.0.0.0/8', '10.1.2.3/8']), 'cfg.yaml: wireguard.peers[0].allowedIPs[1]: 10.0.0.0/8 is listed twice for this peer (got "10.1.2.3/8")'],
    [
      'allowed IP on two peers',
      (c) => c.wireguard.peers.push({ publicKey: P2.pub, allowedIPs: ['10.10.0.2/32'] }),
      'cfg.yaml: wireguard.peers[1].allowedIPs[0]: 10.10.0.2/32 is also an allowed IP of wireguard.peers[0] (a prefix routes to one peer) (got "10.10.0.2/32")',
    ],
    ['duplicate peer key', (c) => c.wireguard.peers.push({ publicKey: P1.pub, allowedIPs: [] }), `cfg.yaml: wireguard.peers[1].publicKey: duplicates the key of wireguard.peers[0] (got "${P1.pub}")`],
    ["peer is the device's own key", (c) => (c.wireguard.peers[0]!.publicKey = ME.pub), `cfg.yaml: wireguard.peers[0].publicKey: is this device's own public key (derived from wireguard.privateKey) (got "${ME.pub}")`],
    ['unknown top-level field', (c) => (c.listen_port = 1), 'cfg.yaml: listen_port: unknown field'],
    ['unknown peer field (typo)', (c) => (c.wireguard.peers[0]!.allowedIps = []), 'cfg.yaml: wireguard.peers[0].allowedIps: unknown field'],
  ];

  it.each(cases)('%s', (_name, mutate, expected) => {
    const c = base();
    mutate(c);
    expect(problemsOf(stringify(c))).toEqual([expected]);
  });

  it('the base config of these cases is itself valid', () => {
    expect(parseWireguardConfig(stringify(base()), 'cfg.yaml').wireguard.peers).toHaveLength(1);
  });
});

describe('secrets and syntax', () => {
  const badPriv = Buffer.alloc(31, 0x5a).toString('base64');
  it.each([
    ['privateKey decoding to 31 bytes', (c: ReturnType<typeof base>) => (c.wireguard.privateKey = badPriv), 'wireguard.privateKey', badPriv],
    ['privateKey not a string', (c: ReturnType<typeof base>) => (c.wireguard.privateKey = 123456789), 'wireguard.privateKey', '123456789'],
    ['presharedKey not base64', (c: ReturnType<typeof base>) => (c.wireguard.peers[0]!.presharedKey = 'not a key!'), 'wireguard.peers[0].presharedKey', 'not a key!'],
    ['presharedKey one character short', (c: ReturnType<typeof base>) => (c.wireguard.peers[0]!.presharedKey = PSK.slice(1)), 'wireguard.peers[0].presharedKey', PSK.slice(1)],
  ])('%s: names the field, never the value', (_name, mutate, path, secret) => {
    const c = base();
    mutate(c);
    const problems = problemsOf(stringify(c));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^cfg\\.yaml: ${path.replace(/[.[\]]/g, '\\$&')}: must be `));
    expect(problems[0]).toContain('(value not shown: it is secret)');
    expect(problems[0]).not.toContain(secret);
    // nor the other, valid, secrets of the file
    expect(problems[0]).not.toContain(ME.priv);
    expect(problems[0]).not.toContain(PSK);
  });

  it('names an unknown key only when it is a plain name: a damaged line can merge its value into the key', () => {
    // the same rule as the node config, where a flipped bit made `http_proxy:!"socks5://u:<password>` a key
    const c = base();
    (c as Record<string, unknown>).endpoint = 'peer.example:51820,pw: hunter2hunter2';
    const text = stringify(c).replace('endpoint: "', 'endpoint:!"');
    expect(text).toContain('endpoint:!"peer.example:51820,pw: hunter2hunter2"');
    const problems = problemsOf(text);
    expect(problems).toEqual(['cfg.yaml: (a key that is not a plain name): unknown field']);
    expect(problems.join('\n')).not.toContain('peer.example');
  });

  it('lists EVERY problem of a file, in one error, each line prefixed with the file', () => {
    const c = base();
    c.mtu = 5;
    c.interface = 'way-too-long-interface-name';
    c.wireguard.listenPort = -1;
    c.wireguard.privateKey = badPriv;
    c.wireguard.peers[0]!.endpoint = 'nope';
    c.wireguard.peers[0]!.allowedIPs = ['x/1', '10.0.0.0/8'];
    c.wireguard.peers.push({ publicKey: P1.pub, allowedIPs: ['10.0.0.0/8'], bogus: true });
    let err: unknown;
    try {
      parseWireguardConfig(stringify(c), '/etc/kubespand/up.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect((err as ConfigError).message).toBe(problems.join('\n'));
    const paths = problems.map((p) => {
      expect(p.startsWith('/etc/kubespand/up.yaml: ')).toBe(true);
      return p.split(': ')[1];
    });
    expect(paths.sort()).toEqual(
      [
        'interface',
        'mtu',
        'wireguard.listenPort',
        'wireguard.privateKey',
        'wireguard.peers[0].endpoint',
        'wireguard.peers[0].allowedIPs[0]',
        'wireguard.peers[1].bogus',
        'wireguard.peers[1].publicKey',
        'wireguard.peers[1].allowedIPs[0]',
      ].sort(),
    );
    expect((err as ConfigError).message).not.toContain(badPriv);
  });

  it('reports YAML syntax errors with their position, and never quotes the source', () => {
    const text = `interface: wg0\nwireguard:\n  privateKey: "${ME.priv}\n  listenPort: 1\n`;
    const problems = problemsOf(text, 'broken.yaml');
    expect(problems.length).toBeGreaterThan(0);
    expect(problems[0]).toMatch(/^broken\.yaml: line \d+, column \d+: invalid YAML: /);
    expect(problems.join('\n')).not.toContain(ME.priv);
  });

  it('refuses duplicate YAML keys, an empty file and a non-mapping document', () => {
    expect(problemsOf(`interface: a\ninterface: b\n`)[0]).toMatch(/^cfg\.yaml: line 2, column 1: invalid YAML: Map keys must be unique/);
    expect(problemsOf('')).toEqual(['cfg.yaml: the file is empty']);
    expect(problemsOf('- 1\n- 2\n')).toEqual(['cfg.yaml: (top level): must be a mapping with interface, mtu, addresses and wireguard (got [1,2])']);
  });
});
