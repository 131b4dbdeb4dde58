/**
 * `kubespand gen wireguard`: first the generator itself (pure), then the generated quick-start mesh
 * brought up with `kubespand up` in five namespaces on one bridge:
 *
 *   cp1 10.231.1.1   cp2 10.231.1.2   cp3 10.231.1.3   w1 10.231.1.4   w2 10.231.1.5
 *        \______________\_______________|______________/______________/
 *                               br0 in the hub namespace
 *   tunnel 10.231.2.0/24: node n is 10.231.2.n (control planes first)
 *
 * Shows: every node pings every control-plane node over the tunnel (and the handshakes prove it went
 * through WireGuard); `wg show` on each lists exactly the expected peers, with keepalive 5 s, the
 * right allowed IPs, and control planes listening on 51111.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { generateWireguardMesh, genCommand } from '../../src/cli/gen.js';
import { parseWireguardConfig } from '../../src/config/wireguard-config.js';
import { nodeCrypto } from '../../src/noise/crypto-node.js';
import { keyFromBase64, keyToBase64 } from '../../src/noise/keys.js';
import { eventually, sh, Topology, type Spawned } from '../support/netns.js';
import { KUBESPAND_BIN, ping, uapiSocketPath, wgDump } from '../support/wg-impl.js';

describe('generateWireguardMesh (pure)', () => {
  it('the quick-start shape: CPs on 51111 peer with everyone, workers with CPs only, keepalive 5s, addresses in order', () => {
    const nodes = generateWireguardMesh({ cidr: '10.10.0.0/24', controlplanes: 3, workers: 2, endpointTemplate: '192.0.2.{n}' });
    expect(nodes.map((n) => `${n.name} ${n.address} ${n.endpoint ?? '-'}`)).toEqual([
      'controlplane-1 10.10.0.1/24 192.0.2.1:51111',
      'controlplane-2 10.10.0.2/24 192.0.2.2:51111',
      'controlplane-3 10.10.0.3/24 192.0.2.3:51111',
      'worker-1 10.10.0.4/24 -',
      'worker-2 10.10.0.5/24 -',
    ]);
    const byKey = new Map(nodes.map((n) => [n.publicKey, n]));
    for (const n of nodes) {
      const c = parseWireguardConfig(n.text, n.name); // every file is a valid `kubespand up` config
      expect(keyToBase64(c.wireguard.publicKey)).toBe(n.publicKey);
      expect(c.wireguard.listenPort).toBe(n.role === 'controlplane' ? 51111 : 0);
      const peers = c.wireguard.peers.map((p) => byKey.get(keyToBase64(p.publicKey))!);
      const want = nodes.filter((o) => o !== n && (o.role === 'controlplane' || n.role === 'controlplane'));
      expect(peers.map((p) => p.name)).toEqual(want.map((o) => o.name));
      for (const [i, p] of c.wireguard.peers.entries()) {
        expect(p.persistentKeepaliveSec).toBe(5);
        expect(p.allowedIps.map((a) => `${[...a.address].join('.')}/${a.bits}`)).toEqual([`${want[i]!.address.split('/')[0]}/32`]);
        expect(p.endpoint === null ? undefined : `${p.endpoint.host}:${p.endpoint.port}`).toBe(want[i]!.endpoint);
      }
    }
    expect(new Set(nodes.map((n) => n.publicKey)).size).toBe(5);
  });

  it('keys are X25519 pairs; IPv6 CIDRs give /128 peers; host bits of the CIDR are masked; the template knows {name} and {index}', () => {
    const nodes = generateWireguardMesh({ cidr: 'fd00:10::77/64', controlplanes: 2, workers: 1, endpointTemplate: '{name}.example:{index}0', interface: 'wg{n}' });
    const doc = parse(nodes[2]!.text) as { interface: string; addresses: string[]; wireguard: { privateKey: string; peers: { allowedIPs: string[]; endpoint: string }[] } };
    expect(doc.interface).toBe('wg3');
    expect(doc.addresses).toEqual(['fd00:10::3/64']);
    expect(doc.wireguard.peers.map((p) => [p.endpoint, p.allowedIPs[0]])).toEqual([
      ['controlplane-1.example:10', 'fd00:10::1/128'],
      ['controlplane-2.example:20', 'fd00:10::2/128'],
    ]);
    expect(keyToBase64(nodeCrypto.publicKey(keyFromBase64(doc.wireguard.privateKey, 'k')))).toBe(nodes[2]!.publicKey);
  });

  it('refuses bad options with the option named', () => {
    const base = { cidr: '10.10.0.0/24', controlplanes: 3, workers: 2, endpointTemplate: 'x' };
    expect(() => generateWireguardMesh({ ...base, cidr: '10.10.0.0/30' })).toThrow('--cidr: 10.10.0.0/30 has too few host addresses for 5 nodes');
    expect(() => generateWireguardMesh({ ...base, cidr: '10.10.0.300/24' })).toThrow(/^--cidr: /);
    expect(() => generateWireguardMesh({ ...base, cidr: '10.10.0.1' })).toThrow(/^--cidr: must be a network with a prefix length/);
    expect(() => generateWireguardMesh({ ...base, controlplanes: 0 })).toThrow('--controlplanes: must be a whole number of at least 1 (got 0)');
    expect(() => generateWireguardMesh({ ...base, endpointTemplate: '' })).toThrow(/^--endpoint-template: is required/);
  });
});

const TAG_NET = '10.231';
const ROLES = ['cp1', 'cp2', 'cp3', 'w1', 'w2'];

describe.sequential('kubespand gen wireguard → kubespand up in namespaces', () => {
  let topo: Topology;
  let dir: string;
  const ns: string[] = [];
  const procs: Spawned[] = [];
  let ifnames: string[] = [];
  let nodes: ReturnType<typeof generateWireguardMesh> = [];

  beforeAll(async () => {
    topo = new Topology('ksv');
    dir = mkdtempSync(join(tmpdir(), 'ksv-mesh-'));
    const hub = topo.netns('hub');
    topo.exec(hub, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
    topo.exec(hub, 'ip', ['link', 'set', 'br0', 'up']);
    ROLES.forEach((role, i) => {
      const n = topo.netns(role);
      ns.push(n);
      const { ifB } = topo.veth(n, [`${TAG_NET}.1.${i + 1}/24`], hub, []);
      topo.exec(hub, 'ip', ['link', 'set', ifB, 'master', 'br0']);
    });
    // generate with the CLI itself (files, modes), one interface name per node: the UAPI socket dir is shared
    const args = ['wireguard', '--cidr', `${TAG_NET}.2.0/24`, '--controlplanes', '3', '--workers', '2', '--endpoint-template', `${TAG_NET}.1.{n}`, '--interface', `${topo.tag}w{n}`, '-o', dir];
    const out = sh(KUBESPAND_BIN, ['gen', ...args]);
    expect(out).toBe('');
    ifnames = ROLES.map((_, i) => `${topo.tag}w${i + 1}`);
    for (const f of ifnames) topo.onDestroy(() => rmSync(uapiSocketPath(f), { force: true }));
    // the same topology from the pure generator gives names, addresses and key order; keys come from the files
    nodes = generateWireguardMesh({ cidr: `${TAG_NET}.2.0/24`, controlplanes: 3, workers: 2, endpointTemplate: `${TAG_NET}.1.{n}` });
    ROLES.forEach((_, i) => {
      const file = join(dir, `${nodes[i]!.name}.yaml`);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const c = parseWireguardConfig(readFileSync(file, 'utf8'), file);
      nodes[i] = { ...nodes[i]!, publicKey: keyToBase64(c.wireguard.publicKey) };
    });
    ROLES.forEach((_, i) => procs.push(topo.spawn(ns[i]!, KUBESPAND_BIN, ['up', '--config', join(dir, `${nodes[i]!.name}.yaml`)])));
    await Promise.all(procs.map((p) => p.waitFor(/is up \(listening on UDP/, 20_000)));
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('every node pings every control-plane node over the tunnel', async () => {
    for (let i = 0; i < ROLES.length; i++) {
      for (let cp = 0; cp < 3; cp++) {
        if (cp === i) continue;
        const dst = `${TAG_NET}.2.${cp + 1}`;
        const r = await eventually(() => {
          const p = ping(topo, ns[i]!, dst, { count: 1, waitS: 1 });
          return p.received === 1 ? p : null;
        }, 15_000, 100);
        expect(r.received, `${ROLES[i]} → ${dst}`).toBe(1);
      }
    }
    // the pings went through WireGuard: every node handshook with each CP it pinged, on the CP's port 51111
    for (let i = 0; i < ROLES.length; i++) {
      const dump = wgDump(topo, ns[i]!, ifnames[i]!);
      for (let cp = 0; cp < 3; cp++) {
        if (cp === i) continue;
        const peer = dump.peers.find((p) => p.publicKey === nodes[cp]!.publicKey)!;
        expect(peer.latestHandshake, `${ROLES[i]} ↔ ${ROLES[cp]}`).toBeGreaterThan(0);
        expect(peer.rxBytes).toBeGreaterThan(0);
        expect(peer.endpoint).toBe(`${TAG_NET}.1.${cp + 1}:51111`);
      }
    }
  });

  it('wg show lists the expected peers on every node (keepalive 5 s, one /32 each, CPs on 51111)', () => {
    for (let i = 0; i < ROLES.length; i++) {
      const dump = wgDump(topo, ns[i]!, ifnames[i]!);
      expect(dump.publicKey).toBe(nodes[i]!.publicKey);
      const isCp = i < 3;
      if (isCp) expect(dump.listenPort).toBe(51111);
      const expected = nodes.filter((o, j) => j !== i && (j < 3 || isCp));
      expect(dump.peers.map((p) => p.publicKey).sort()).toEqual(expected.map((o) => o.publicKey).sort());
      for (const p of dump.peers) {
        const o = nodes.find((x) => x.publicKey === p.publicKey)!;
        expect(p.allowedIPs).toEqual([`${o.address.split('/')[0]}/32`]);
        expect(p.persistentKeepalive).toBe(5);
      }
    }
    // a control plane learned each worker's endpoint from its keepalives (none was configured)
    const cp1 = wgDump(topo, ns[0]!, ifnames[0]!);
    for (const w of [3, 4]) expect(cp1.peers.find((p) => p.publicKey === nodes[w]!.publicKey)?.endpoint).toMatch(new RegExp(`^${TAG_NET.replace('.', '\\.')}\\.1\\.${w + 1}:\\d+$`));
  });

  it('gen refuses to overwrite without --force', async () => {
    const stderr: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => (stderr.push(String(s)), true)) as typeof process.stderr.write;
    let code: number;
    try {
      code = await genCommand.run(['wireguard', '--cidr', `${TAG_NET}.2.0/24`, '--controlplanes', '3', '--workers', '2', '--endpoint-template', 'x', '-o', dir]);
    } finally {
      process.stderr.write = write;
    }
    expect(code).toBe(1);
    expect(stderr.join('')).toMatch(/controlplane-1\.yaml.* exist; use --force to replace them/);
  });
});
