/**
 * `kubespand up --config file.yaml` in one namespace against wireguard-go (configured with `wg`) in the
 * other, on the same two-namespace bed as interop.test.ts. The YAML is written by the test. Then invalid
 * configs: each must be refused before anything exists (no TUN, no UAPI socket), with an error that names
 * the field (and the value, except for keys).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, type TestContext } from 'vitest';
import { stringify } from 'yaml';
import { Topology, eventually } from '../support/netns.js';
import {
  BED,
  KUBESPAND_BIN,
  dumpPeer,
  genKeyPair,
  genPsk,
  ifName,
  ipUp,
  ping,
  startWg,
  uapiSocketPath,
  waitForUapi,
  wgDump,
  wgSet,
  type WgKeyPair,
} from '../support/wg-impl.js';
import type { Spawned } from '../support/netns.js';

const MTU = 1380;
const FWMARK = 0x2a;
const KEEPALIVE_S = 25;

interface UpConfig {
  interface: string;
  mtu: number;
  addresses: string[];
  wireguard: {
    privateKey: string;
    listenPort: number;
    firewallMark: number;
    peers: {
      publicKey: string;
      presharedKey: string;
      endpoint: string;
      persistentKeepaliveInterval: string;
      allowedIPs: string[];
    }[];
  };
}

function validConfig(ifname: string, keys: WgKeyPair, peer: WgKeyPair, psk: string): UpConfig {
  return {
    interface: ifname,
    mtu: MTU,
    addresses: [`${BED.a.tunnel4}/${BED.tunnelPrefix4}`, `${BED.a.tunnel6}/${BED.tunnelPrefix6}`],
    wireguard: {
      privateKey: keys.privateKey,
      listenPort: BED.a.listenPort,
      firewallMark: FWMARK,
      peers: [
        {
          publicKey: peer.publicKey,
          presharedKey: psk,
          endpoint: `${BED.b.outer4}:${BED.b.listenPort}`,
          persistentKeepaliveInterval: `${KEEPALIVE_S}s`,
          allowedIPs: [`${BED.b.tunnel4}/32`, `${BED.b.tunnel6}/128`],
        },
      ],
    },
  };
}

interface IpAddrInfo {
  ifname: string;
  mtu: number;
  flags: string[];
  addr_info: { local: string; prefixlen: number }[];
}

function ipAddrShow(topo: Topology, ns: string, ifname: string): IpAddrInfo {
  const parsed = JSON.parse(topo.exec(ns, 'ip', ['-j', 'addr', 'show', 'dev', ifname])) as IpAddrInfo[];
  const info = parsed[0];
  if (!info) throw new Error(`ip -j addr show dev ${ifname} in ${ns}: no such interface`);
  return info;
}

function linkExists(topo: Topology, ns: string, ifname: string): boolean {
  const links = JSON.parse(topo.exec(ns, 'ip', ['-j', 'link', 'show'])) as { ifname: string }[];
  return links.some((l) => l.ifname === ifname);
}

describe.sequential('kubespand up --config against wireguard-go', () => {
  let topo: Topology | undefined;
  let dir: string | undefined;
  let setupError: unknown;
  let bed:
    | { nsA: string; nsB: string; ifA: string; ifB: string; keysA: WgKeyPair; keysB: WgKeyPair; up: Spawned; wgGo: Spawned }
    | undefined;

  afterAll(async () => {
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function need(ctx: TestContext): NonNullable<typeof bed> & { topo: Topology } {
    if (setupError !== undefined || !topo || !bed) throw new Error(`the up --config bed was not built: ${setupError instanceof Error ? setupError.message : String(setupError)}`);
    const b = bed;
    ctx.onTestFailed(() => {
      process.stderr.write(`--- kubespand up output ---\n${b.up.output().slice(-3000)}\n--- wireguard-go output ---\n${b.wgGo.output().slice(-3000)}\n`);
    });
    return { ...b, topo };
  }

  it('brings the device up from YAML and handshakes with wireguard-go on its own (persistent keepalive)', async (ctx) => {
    try {
      topo = new Topology('ksn');
      dir = mkdtempSync(join(tmpdir(), 'ksn-up-'));
      const nsA = topo.netns('ua');
      const nsB = topo.netns('ub');
      topo.veth(nsA, [`${BED.a.outer4}/${BED.outerPrefix4}`, `${BED.a.outer6}/${BED.outerPrefix6}`], nsB, [
        `${BED.b.outer4}/${BED.outerPrefix4}`,
        `${BED.b.outer6}/${BED.outerPrefix6}`,
      ]);
      const ifA = ifName(topo, 'U', 1);
      const ifB = ifName(topo, 'W', 1);
      const keysA = genKeyPair();
      const keysB = genKeyPair();
      const psk = genPsk();

      // wireguard-go first, fully configured as a pure responder, so kubespand's first initiation lands
      const wgGo = await startWg(topo, nsB, ifB, 'wireguard-go');
      wgSet(topo, nsB, ifB, {
        privateKey: keysB.privateKey,
        listenPort: BED.b.listenPort,
        peers: [{ publicKey: keysA.publicKey, presharedKey: psk, allowedIPs: [`${BED.a.tunnel4}/32`, `${BED.a.tunnel6}/128`] }],
      });
      ipUp(topo, nsB, ifB, [`${BED.b.tunnel4}/${BED.tunnelPrefix4}`, `${BED.b.tunnel6}/${BED.tunnelPrefix6}`]);

      const file = join(dir, 'kubespan.yaml');
      writeFileSync(file, stringify(validConfig(ifA, keysA, keysB, psk)), { mode: 0o600 });
      const env: NodeJS.ProcessEnv = { ...process.env };
      const up = topo.spawn(nsA, KUBESPAND_BIN, ['up', '--config', file], { env });
      topo.onDestroy(() => rmSync(uapiSocketPath(ifA), { force: true }));
      bed = { nsA, nsB, ifA, ifB, keysA, keysB, up, wgGo };
      await waitForUapi(topo, nsA, ifA, up, 'kubespand up');
    } catch (err) {
      setupError = err;
      throw err;
    }
    const { topo: t, nsA, nsB, ifA, ifB, keysA } = need(ctx);
    // `up` adds the addresses and brings the link up itself
    await eventually(() => {
      const info = ipAddrShow(t, nsA, ifA);
      return info.flags.includes('UP') && info.addr_info.some((a) => a.local === BED.a.tunnel4) && info.addr_info.some((a) => a.local === BED.a.tunnel6);
    }, 10_000).catch(() => {
      throw new Error(`kubespand up did not bring ${ifA} up with its addresses: ${t.exec(nsA, 'ip', ['addr', 'show', 'dev', ifA])}`);
    });
    // no traffic was sent: the handshake comes from the persistent keepalive sent when the device goes up
    await eventually(() => {
      const p = dumpPeer(t, nsB, ifB, keysA.publicKey);
      return p.latestHandshake > 0 && p.endpoint === `${BED.a.outer4}:${BED.a.listenPort}`;
    }, 15_000).catch(() => {
      throw new Error(`wireguard-go saw no handshake from kubespand up: ${t.exec(nsB, 'wg', ['show', ifB, 'dump']).split('\n').slice(1).join('\n')}`);
    });
  });

  it('pings both ways over IPv4 and IPv6', (ctx) => {
    const { topo, nsA, nsB } = need(ctx);
    for (const [ns, dst] of [
      [nsA, BED.b.tunnel4],
      [nsB, BED.a.tunnel4],
      [nsA, BED.b.tunnel6],
      [nsB, BED.a.tunnel6],
    ] as const) {
      const r = ping(topo, ns, dst);
      expect(r.received, `ping ${dst} from ${ns}: ${r.output}`).toBe(r.transmitted);
    }
  });

  it('wg show and ip report exactly what the YAML asked for', (ctx) => {
    const { topo, nsA, ifA, keysA, keysB } = need(ctx);
    const dump = wgDump(topo, nsA, ifA);
    expect(dump.publicKey).toBe(keysA.publicKey);
    expect(dump.listenPort).toBe(BED.a.listenPort);
    expect(dump.fwmark).toBe(FWMARK);
    expect(dump.peers).toHaveLength(1);
    const peer = dump.peers[0]!;
    expect(peer.publicKey).toBe(keysB.publicKey);
    expect(peer.hasPresharedKey).toBe(true);
    expect(peer.endpoint).toBe(`${BED.b.outer4}:${BED.b.listenPort}`);
    expect(peer.allowedIPs.sort()).toEqual([`${BED.b.tunnel4}/32`, `${BED.b.tunnel6}/128`].sort());
    expect(peer.persistentKeepalive).toBe(KEEPALIVE_S);
    expect(Math.abs(Date.now() / 1000 - peer.latestHandshake)).toBeLessThan(120);
    expect(peer.rxBytes).toBeGreaterThan(0);
    expect(peer.txBytes).toBeGreaterThan(0);
    // the pretty form, as an operator reads it (keys hidden)
    const pretty = topo.exec(nsA, 'wg', ['show', ifA]);
    expect(pretty).toContain(`peer: ${keysB.publicKey}`);
    expect(pretty).toContain('preshared key: (hidden)');
    expect(pretty).toContain(`persistent keepalive: every ${KEEPALIVE_S} seconds`);

    const info = ipAddrShow(topo, nsA, ifA);
    expect(info.mtu).toBe(MTU);
    const configured = info.addr_info.filter((a) => !a.local.startsWith('fe80:')).map((a) => `${a.local}/${a.prefixlen}`);
    expect(configured.sort()).toEqual([`${BED.a.tunnel4}/${BED.tunnelPrefix4}`, `${BED.a.tunnel6}/${BED.tunnelPrefix6}`].sort());
    for (const dst of [BED.b.tunnel4, BED.b.tunnel6]) {
      expect(topo.exec(nsA, 'ip', ['route', 'get', dst]), `route to ${dst}`).toMatch(new RegExp(`dev ${ifA}\\b`));
    }
  });

  it('SIGTERM stops it cleanly: exit code 0, TUN and UAPI socket gone', async (ctx) => {
    const { topo, nsA, ifA, up } = need(ctx);
    const code = await up.stop('SIGTERM', 10_000);
    expect(code, up.output().slice(-1000)).toBe(0);
    expect(existsSync(uapiSocketPath(ifA))).toBe(false);
    expect(linkExists(topo, nsA, ifA)).toBe(false);
  });
});

describe('kubespand up --config refuses invalid configs before creating anything', () => {
  let topo: Topology | undefined;
  let dir: string | undefined;
  let ns: string | undefined;
  const keys = { a: genKeyPair(), b: genKeyPair() };
  const psk = genPsk();
  // looks like a key but decodes to 31 bytes: must be refused, and never echoed
  const badKey = Buffer.alloc(31, 0x5a).toString('base64');

  afterAll(async () => {
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  interface BadCase {
    name: string;
    mutate(cfg: UpConfig): void;
    field: RegExp;
    /** Must appear in the error (the offending value), unless it is secret. */
    value?: string;
    /** Must NOT appear anywhere in the output. */
    secret?: string;
  }
  const cases: BadCase[] = [
    { name: 'listen port out of range', mutate: (c) => (c.wireguard.listenPort = 70000), field: /listenPort/, value: '70000' },
    { name: 'malformed allowed IP', mutate: (c) => (c.wireguard.peers[0]!.allowedIPs = ['10.232.0.300/32']), field: /allowedIPs/, value: '10.232.0.300/32' },
    { name: 'endpoint without a port', mutate: (c) => (c.wireguard.peers[0]!.endpoint = BED.b.outer4), field: /endpoint/, value: BED.b.outer4 },
    { name: 'keepalive that is not a duration', mutate: (c) => (c.wireguard.peers[0]!.persistentKeepaliveInterval = '25 parsecs'), field: /persistentKeepaliveInterval/, value: '25 parsecs' },
    { name: 'MTU below any IP minimum', mutate: (c) => (c.mtu = 10), field: /mtu/, value: '10' },
    { name: 'malformed interface address', mutate: (c) => (c.addresses = ['10.232.0.1/33']), field: /addresses/, value: '10.232.0.1/33' },
    { name: 'private key of the wrong length', mutate: (c) => (c.wireguard.privateKey = badKey), field: /privateKey/, secret: badKey },
    { name: 'preshared key that is not base64', mutate: (c) => (c.wireguard.peers[0]!.presharedKey = 'not a key!'), field: /presharedKey/, secret: 'not a key!' },
  ];

  cases.forEach((bad, i) => {
    it(`${bad.name}: refused naming ${bad.field.source}, no TUN, no socket`, () => {
      if (!topo) {
        topo = new Topology('ksn');
        dir = mkdtempSync(join(tmpdir(), 'ksn-up-bad-'));
        ns = topo.netns('ux');
      }
      if (!dir || !ns) throw new Error('bed not built');
      const ifname = ifName(topo, 'X', i + 1);
      const cfg = validConfig(ifname, keys.a, keys.b, psk);
      bad.mutate(cfg);
      const file = join(dir, `bad-${i + 1}.yaml`);
      writeFileSync(file, stringify(cfg), { mode: 0o600 });
      topo.onDestroy(() => rmSync(uapiSocketPath(ifname), { force: true }));

      const r = spawnSync('ip', ['netns', 'exec', ns, KUBESPAND_BIN, 'up', '--config', file], { encoding: 'utf8', timeout: 20_000 });
      const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
      expect(r.signal, `kubespand up did not exit on its own: ${out}`).toBeNull();
      expect(r.status, out).not.toBe(0);
      expect(out).toMatch(bad.field);
      if (bad.value !== undefined) expect(out).toContain(bad.value);
      if (bad.secret !== undefined) expect(out).not.toContain(bad.secret);
      // nothing was created
      expect(linkExists(topo, ns, ifname)).toBe(false);
      expect(existsSync(uapiSocketPath(ifname))).toBe(false);
      // and no key material leaked either way
      expect(out).not.toContain(keys.a.privateKey);
      expect(out).not.toContain(psk);
    });
  });
});
