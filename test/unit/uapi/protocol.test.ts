/**
 * The UAPI text protocol (spec/wireguard.md §11.3–§11.5) against the in-memory FakeUapiDevice:
 * every get key and its order, every set key with its errno cases, the payloads `wg` sends, and the
 * per-connection request parser (several requests, chunking, malformed input).
 */
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { parsePrefix } from '../../../src/noise/allowed-ips.js';
import { applySet, createUapiSession, formatGet, formatUapiEndpoint, parseUapiEndpoint } from '../../../src/uapi/protocol.js';
import { UapiError, type UapiDeviceState, type UapiLog } from '../../../src/uapi/types.js';
import { FakeUapiDevice, fakePeerTag } from '../../support/fake-uapi-device.js';

function clamp(k: Uint8Array): Uint8Array {
  const out = Uint8Array.from(k);
  out[0]! &= 248;
  out[31] = (out[31]! & 127) | 64;
  return out;
}

/** A deterministic key pair from one seed byte. */
function keyPair(seed: number): { priv: Uint8Array; pub: Uint8Array; privHex: string; pubHex: string } {
  const priv = clamp(new Uint8Array(32).map((_, i) => (seed * 31 + i * 7) & 0xff));
  const pub = nacl.scalarMult.base(priv);
  return { priv, pub, privHex: Buffer.from(priv).toString('hex'), pubHex: Buffer.from(pub).toString('hex') };
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const ZERO_HEX = '0'.repeat(64);
const A = keyPair(1);
const B = keyPair(2);
const C = keyPair(3);
const PSK = new Uint8Array(32).map((_, i) => 0xa0 + i);

function recordingLog(): UapiLog & { lines: string[] } {
  const lines: string[] = [];
  return { lines, debug: (m) => lines.push(`debug ${m}`), warn: (m) => lines.push(`warn ${m}`), error: (m) => lines.push(`error ${m}`) };
}

describe('formatGet', () => {
  it('an empty device is only errno=0 and the blank line', () => {
    expect(formatGet({ privateKey: null, listenPort: 0, fwmark: 0, peers: [] })).toBe('errno=0\n\n');
  });

  it('prints every key in wireguard-go order with the exact formats', () => {
    const state: UapiDeviceState = {
      privateKey: A.priv,
      listenPort: 51820,
      fwmark: 0x20,
      peers: [
        {
          publicKey: B.pub,
          presharedKey: PSK,
          endpoint: { address: '192.0.2.7', port: 51821 },
          lastHandshakeWallMs: 1_700_000_000_123,
          rxBytes: 244,
          txBytes: 156,
          persistentKeepaliveSec: 25,
          allowedIps: [parsePrefix('10.0.0.2/32'), { address: Uint8Array.of(10, 1, 2, 3), bits: 16 }, parsePrefix('fd00::/64')],
        },
        {
          publicKey: C.pub,
          presharedKey: null,
          endpoint: { address: 'fd00::1', port: 7 },
          lastHandshakeWallMs: 0,
          rxBytes: 0,
          txBytes: 0,
          persistentKeepaliveSec: 0,
          allowedIps: [],
        },
        {
          publicKey: A.pub,
          presharedKey: null,
          endpoint: null,
          lastHandshakeWallMs: 1999.5,
          rxBytes: 1,
          txBytes: 2 ** 40,
          persistentKeepaliveSec: 65535,
          allowedIps: [parsePrefix('0.0.0.0/0'), parsePrefix('::/0')],
        },
      ],
    };
    expect(formatGet(state)).toBe(
      [
        `private_key=${A.privHex}`,
        'listen_port=51820',
        'fwmark=32',
        `public_key=${B.pubHex}`,
        `preshared_key=${hex(PSK)}`,
        'protocol_version=1',
        'endpoint=192.0.2.7:51821',
        'last_handshake_time_sec=1700000000',
        'last_handshake_time_nsec=123000000',
        'tx_bytes=156',
        'rx_bytes=244',
        'persistent_keepalive_interval=25',
        'allowed_ip=10.0.0.2/32',
        'allowed_ip=10.1.0.0/16',
        'allowed_ip=fd00::/64',
        `public_key=${C.pubHex}`,
        `preshared_key=${ZERO_HEX}`,
        'protocol_version=1',
        'endpoint=[fd00::1]:7',
        'last_handshake_time_sec=0',
        'last_handshake_time_nsec=0',
        'tx_bytes=0',
        'rx_bytes=0',
        'persistent_keepalive_interval=0',
        `public_key=${A.pubHex}`,
        `preshared_key=${ZERO_HEX}`,
        'protocol_version=1',
        'last_handshake_time_sec=1',
        'last_handshake_time_nsec=999500000',
        `tx_bytes=${2 ** 40}`,
        'rx_bytes=1',
        'persistent_keepalive_interval=65535',
        'allowed_ip=0.0.0.0/0',
        'allowed_ip=::/0',
        'errno=0',
        '',
        '',
      ].join('\n'),
    );
  });

  it('omits listen_port and fwmark when zero and private_key when unset; hex is lowercase', () => {
    const out = formatGet({ privateKey: null, listenPort: 0, fwmark: 0, peers: [{ publicKey: new Uint8Array(32).fill(0xab), presharedKey: null, endpoint: null, lastHandshakeWallMs: 0, rxBytes: 0, txBytes: 0, persistentKeepaliveSec: 0, allowedIps: [] }] });
    expect(out.startsWith(`public_key=${'ab'.repeat(32)}\n`)).toBe(true);
    expect(out).not.toMatch(/listen_port|fwmark|private_key|endpoint=/);
    expect(out).not.toMatch(/[A-F]/);
  });
});

describe('endpoint text', () => {
  it.each([
    ['1.2.3.4:51820', '1.2.3.4', 51820, '1.2.3.4:51820'],
    ['[::1]:1', '::1', 1, '[::1]:1'],
    ['[FD00:0:0:0:0:0:0:1]:65535', 'fd00::1', 65535, '[fd00::1]:65535'],
    ['[fe80::1%eth0]:5', 'fe80::1%eth0', 5, '[fe80::1%eth0]:5'],
    ['[::ffff:1.2.3.4]:9', '1.2.3.4', 9, '1.2.3.4:9'],
    ['0.0.0.0:0', '0.0.0.0', 0, '0.0.0.0:0'],
    ['10.0.0.1:00080', '10.0.0.1', 80, '10.0.0.1:80'],
  ])('%s parses to %s port %d and prints as %s', (text, address, port, printed) => {
    const ep = parseUapiEndpoint(text);
    expect(ep).toEqual({ address, port });
    expect(formatUapiEndpoint(ep)).toBe(printed);
  });

  it.each(['1.2.3.4', '::1:5', '1.2.3.4%eth0:5', '[fe80::1%a b]:5', 'fd00::1', '[1.2.3.4]:5', '01.2.3.4:5', '1.2.3:5', 'example.com:51820', '1.2.3.4:65536', '1.2.3.4:', '1.2.3.4:-1', '[fe80::1%]:5', '[::1]', ''])(
    'rejects %j',
    (text) => {
      expect(() => parseUapiEndpoint(text)).toThrow(/endpoint/);
    },
  );
});

describe('applySet: device keys', () => {
  it('private_key is stored clamped, accepts uppercase hex, and all-zero removes it', async () => {
    const dev = new FakeUapiDevice();
    const raw = new Uint8Array(32).fill(0xff);
    expect(await applySet(dev, [`private_key=${hex(raw).toUpperCase()}`])).toBe(0);
    expect(hex(dev.privateKey!)).toBe(hex(clamp(raw)));
    expect(await applySet(dev, [`private_key=${ZERO_HEX}`])).toBe(0);
    expect(dev.privateKey).toBeNull();
    expect(dev.calls).toEqual(['setPrivateKey(key)', 'setPrivateKey(null)']);
  });

  it.each([
    ['private_key=abc', -22],
    [`private_key=${A.privHex}00`, -22],
    [`private_key=${A.privHex.slice(0, 62)}zz`, -22],
    ['listen_port=abc', -22],
    ['listen_port=65536', -22],
    ['listen_port=-1', -22],
    ['listen_port=+1', -22],
    ['listen_port=', -22],
    ['listen_port= 1', -22],
    ['fwmark=4294967296', -22],
    ['fwmark=0x20', -22],
    ['replace_peers=false', -22],
    ['replace_peers=1', -22],
    ['replace_peers=TRUE', -22],
    ['bogus_key=1', -22],
    ['protocol_version=1', -22], // a peer key before any public_key is an unknown device key
    ['noequals', -71],
    ['', 0],
  ])('%j → %d', async (line, errno) => {
    const dev = new FakeUapiDevice();
    expect(await applySet(dev, [line])).toBe(errno);
  });

  it('listen_port and fwmark take decimal values in range, leading zeros allowed', async () => {
    const dev = new FakeUapiDevice();
    expect(await applySet(dev, ['listen_port=0051820', 'fwmark=4294967295'])).toBe(0);
    expect(dev.listenPort).toBe(51820);
    expect(dev.fwmark).toBe(4294967295);
    expect(await applySet(dev, ['listen_port=0', 'fwmark=0'])).toBe(0);
    expect(formatGet(dev.getState())).toBe('errno=0\n\n');
  });

  it('a failing bind is −98 (EADDRINUSE), a failing fwmark too', async () => {
    expect(await applySet(new FakeUapiDevice({ busyPorts: [53] }), ['listen_port=53'])).toBe(-98);
    expect(await applySet(new FakeUapiDevice({ fwmarkFails: true }), ['fwmark=1'])).toBe(-98);
  });

  it('replace_peers=true removes every peer', async () => {
    const dev = new FakeUapiDevice();
    await applySet(dev, [`public_key=${B.pubHex}`, `public_key=${C.pubHex}`]);
    expect(dev.peers.size).toBe(2);
    expect(await applySet(dev, ['replace_peers=true'])).toBe(0);
    expect(dev.peers.size).toBe(0);
  });

  it('stops at the first error and keeps what was applied before it (no rollback)', async () => {
    const dev = new FakeUapiDevice();
    expect(await applySet(dev, ['listen_port=1000', 'fwmark=7', 'bogus=1', 'listen_port=2000', 'fwmark=9'])).toBe(-22);
    expect(dev.listenPort).toBe(1000);
    expect(dev.fwmark).toBe(7);
    expect(dev.calls).toEqual(['setListenPort(1000)', 'setFwmark(7)']);
  });

  it('an empty line ends the request early', async () => {
    const dev = new FakeUapiDevice();
    expect(await applySet(dev, ['fwmark=1', '', 'bogus'])).toBe(0);
    expect(dev.fwmark).toBe(1);
  });

  it('plain exceptions from unexpected places are −55; a UapiError keeps its errno', async () => {
    const dev = new FakeUapiDevice();
    dev.removeAllPeers = () => {
      throw new Error('boom');
    };
    expect(await applySet(dev, ['replace_peers=true'])).toBe(-55);
    const dev2 = new FakeUapiDevice({ endpointErrno: 5 });
    expect(await applySet(dev2, [`public_key=${B.pubHex}`, 'endpoint=1.2.3.4:5'])).toBe(-5);
    const dev3 = new FakeUapiDevice();
    dev3.setFwmark = () => {
      throw new UapiError(-1, 'not permitted');
    };
    expect(await applySet(dev3, ['fwmark=3'])).toBe(-1);
  });
});

describe('applySet: peer keys', () => {
  it('public_key creates a peer; every peer key is applied; peerDone follows each block', async () => {
    const dev = new FakeUapiDevice();
    const code = await applySet(dev, [
      `public_key=${B.pubHex.toUpperCase()}`,
      `preshared_key=${hex(PSK)}`,
      'protocol_version=1',
      'endpoint=[fd00::2]:51820',
      'persistent_keepalive_interval=25',
      'replace_allowed_ips=true',
      'allowed_ip=10.0.0.2/32',
      'allowed_ip=fd00::2/128',
      `public_key=${C.pubHex}`,
      'endpoint=192.0.2.1:1',
      'allowed_ip=10.0.0.3/32',
    ]);
    expect(code).toBe(0);
    const tb = fakePeerTag(B.pub);
    const tc = fakePeerTag(C.pub);
    expect(dev.calls).toEqual([
      `createPeer(${tb})`,
      `setPresharedKey(${tb}, key)`,
      `setEndpoint(${tb}, fd00::2 51820)`,
      `setPersistentKeepalive(${tb}, 25)`,
      `replaceAllowedIps(${tb})`,
      `addAllowedIp(${tb}, 10.0.0.2/32)`,
      `addAllowedIp(${tb}, fd00::2/128)`,
      `peerDone(${tb})`,
      `createPeer(${tc})`,
      `setEndpoint(${tc}, 192.0.2.1 1)`,
      `addAllowedIp(${tc}, 10.0.0.3/32)`,
      `peerDone(${tc})`,
    ]);
    expect(dev.keepalivesSent).toEqual([tb]);
    expect(formatGet(dev.getState())).toContain(
      `public_key=${B.pubHex}\npreshared_key=${hex(PSK)}\nprotocol_version=1\nendpoint=[fd00::2]:51820\n` +
        'last_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=0\nrx_bytes=0\npersistent_keepalive_interval=25\n' +
        'allowed_ip=10.0.0.2/32\nallowed_ip=fd00::2/128\n',
    );
  });

  it('an existing peer is selected, not created again', async () => {
    const dev = new FakeUapiDevice();
    await applySet(dev, [`public_key=${B.pubHex}`]);
    dev.calls.length = 0;
    expect(await applySet(dev, [`public_key=${B.pubHex}`, 'persistent_keepalive_interval=0'])).toBe(0);
    expect(dev.calls).toEqual([`setPersistentKeepalive(${fakePeerTag(B.pub)}, 0)`, `peerDone(${fakePeerTag(B.pub)})`]);
  });

  it('preshared_key of zeros clears it', async () => {
    const dev = new FakeUapiDevice();
    await applySet(dev, [`public_key=${B.pubHex}`, `preshared_key=${hex(PSK)}`]);
    expect(dev.peers.get(B.pubHex)!.presharedKey).not.toBeNull();
    await applySet(dev, [`public_key=${B.pubHex}`, `preshared_key=${ZERO_HEX}`]);
    expect(dev.peers.get(B.pubHex)!.presharedKey).toBeNull();
  });

  it('allowed_ip=-x/y removes one prefix; an allowed IP moves from another peer; host bits are masked', async () => {
    const dev = new FakeUapiDevice();
    await applySet(dev, [`public_key=${B.pubHex}`, 'allowed_ip=10.0.0.0/24', 'allowed_ip=10.9.9.9/32', `public_key=${C.pubHex}`, 'allowed_ip=10.0.0.77/24']);
    expect(formatGet(dev.getState())).toMatch(new RegExp(`public_key=${B.pubHex}[^]*allowed_ip=10.9.9.9/32\npublic_key=${C.pubHex}[^]*allowed_ip=10.0.0.0/24\nerrno=0`));
    expect(await applySet(dev, [`public_key=${B.pubHex}`, 'allowed_ip=-10.9.9.9/32', `public_key=${C.pubHex}`, 'allowed_ip=-10.9.9.9/32'])).toBe(0);
    expect(dev.peers.get(B.pubHex)!.allowedIps).toEqual([]);
    expect(dev.peers.get(C.pubHex)!.allowedIps).toHaveLength(1);
  });

  it('replace_allowed_ips=true drops the old list before the new lines', async () => {
    const dev = new FakeUapiDevice();
    await applySet(dev, [`public_key=${B.pubHex}`, 'allowed_ip=10.0.0.1/32', 'allowed_ip=10.0.0.2/32']);
    await applySet(dev, [`public_key=${B.pubHex}`, 'replace_allowed_ips=true', 'allowed_ip=10.0.0.3/32']);
    expect(formatGet(dev.getState())).toMatch(/persistent_keepalive_interval=0\nallowed_ip=10\.0\.0\.3\/32\nerrno=0\n\n$/);
  });

  it('remove=true removes the peer and ignores its later lines', async () => {
    const dev = new FakeUapiDevice();
    await applySet(dev, [`public_key=${B.pubHex}`, `public_key=${C.pubHex}`]);
    dev.calls.length = 0;
    expect(await applySet(dev, [`public_key=${B.pubHex}`, 'remove=true', 'endpoint=1.2.3.4:5', 'allowed_ip=10.0.0.1/32'])).toBe(0);
    expect([...dev.peers.keys()]).toEqual([C.pubHex]);
    expect(dev.calls).toEqual([`removePeer(${fakePeerTag(B.pub)})`]);
    // values are still validated on the ignored peer, as wireguard-go's dummy peer does
    expect(await applySet(dev, [`public_key=${C.pubHex}`, 'remove=true', 'endpoint=nonsense'])).toBe(-22);
    expect(dev.peers.size).toBe(0);
  });

  it('remove of an unknown peer creates nothing in the end', async () => {
    const dev = new FakeUapiDevice();
    expect(await applySet(dev, [`public_key=${B.pubHex}`, 'remove=true'])).toBe(0);
    expect(dev.peers.size).toBe(0);
  });

  it('update_only=true on a new peer undoes its creation and ignores its lines; on an existing peer it updates', async () => {
    const dev = new FakeUapiDevice();
    expect(await applySet(dev, [`public_key=${B.pubHex}`, 'update_only=true', 'endpoint=1.2.3.4:5', `public_key=${C.pubHex}`, 'endpoint=1.2.3.4:6'])).toBe(0);
    expect([...dev.peers.keys()]).toEqual([C.pubHex]);
    expect(dev.calls.filter((c) => c.startsWith('peerDone'))).toEqual([`peerDone(${fakePeerTag(C.pub)})`]);
    expect(await applySet(dev, [`public_key=${C.pubHex}`, 'update_only=true', 'endpoint=1.2.3.4:7'])).toBe(0);
    expect(dev.peers.get(C.pubHex)!.endpoint).toEqual({ address: '1.2.3.4', port: 7 });
    expect(await applySet(dev, [`public_key=${C.pubHex}`, 'update_only=false'])).toBe(-22);
  });

  it("a public_key equal to the device's own selects a throw-away dummy", async () => {
    const dev = new FakeUapiDevice();
    await applySet(dev, [`private_key=${A.privHex}`]);
    dev.calls.length = 0;
    expect(await applySet(dev, [`public_key=${A.pubHex}`, 'endpoint=1.2.3.4:5', 'allowed_ip=10.0.0.0/8', 'persistent_keepalive_interval=5'])).toBe(0);
    expect(dev.peers.size).toBe(0);
    expect(dev.calls).toEqual([]);
    // but its values are still checked
    expect(await applySet(dev, [`public_key=${A.pubHex}`, 'preshared_key=xyz'])).toBe(-22);
  });

  it.each([
    ['public_key=abcd', -22],
    [`public_key=${'g'.repeat(64)}`, -22],
    [`public_key=${B.pubHex}\nremove=false`, -22],
    [`public_key=${B.pubHex}\npreshared_key=${'0'.repeat(63)}`, -22],
    [`public_key=${B.pubHex}\nendpoint=host.example:51820`, -22],
    [`public_key=${B.pubHex}\nendpoint=1.2.3.4`, -22],
    [`public_key=${B.pubHex}\npersistent_keepalive_interval=65536`, -22],
    [`public_key=${B.pubHex}\npersistent_keepalive_interval=-1`, -22],
    [`public_key=${B.pubHex}\nreplace_allowed_ips=yes`, -22],
    [`public_key=${B.pubHex}\nallowed_ip=10.0.0.0/33`, -22],
    [`public_key=${B.pubHex}\nallowed_ip=10.0.0.0/`, -22],
    [`public_key=${B.pubHex}\nallowed_ip=fe80::1%eth0/64`, -22],
    [`public_key=${B.pubHex}\nallowed_ip=`, -22],
    [`public_key=${B.pubHex}\nprotocol_version=2`, -22],
    [`public_key=${B.pubHex}\nlisten_port=1`, -22],
    [`public_key=${B.pubHex}\nprivate_key=${A.privHex}`, -22],
    [`public_key=${B.pubHex}\nwhatever=1`, -22],
    [`public_key=${B.pubHex}\nendpoint`, -71],
  ])('%j → %d', async (text, errno) => {
    expect(await applySet(new FakeUapiDevice(), text.split('\n'))).toBe(errno);
  });

  it('a failed peer creation is −22', async () => {
    const dev = new FakeUapiDevice({ maxPeers: 1 });
    expect(await applySet(dev, [`public_key=${B.pubHex}`, `public_key=${C.pubHex}`, 'endpoint=1.2.3.4:5'])).toBe(-22);
    expect([...dev.peers.keys()]).toEqual([B.pubHex]);
  });

  it('a peer whose line failed still gets peerDone for the lines applied before the error', async () => {
    const dev = new FakeUapiDevice();
    expect(await applySet(dev, [`public_key=${B.pubHex}`, 'endpoint=1.2.3.4:5', 'allowed_ip=bad'])).toBe(-22);
    expect(dev.calls.at(-1)).toBe(`peerDone(${fakePeerTag(B.pub)})`);
    expect(dev.peers.get(B.pubHex)!.endpoint).toEqual({ address: '1.2.3.4', port: 5 });
  });

  it('applies the payload `wg setconf` sends', async () => {
    const dev = new FakeUapiDevice();
    await applySet(dev, [`public_key=${C.pubHex}`, 'allowed_ip=192.168.0.0/16']);
    // what wg's ipc-uapi.h writes for a config with two peers (keys hex, v6 endpoint bracketed)
    const payload = [
      `private_key=${A.privHex}`,
      'listen_port=51820',
      'fwmark=0',
      'replace_peers=true',
      `public_key=${B.pubHex}`,
      `preshared_key=${hex(PSK)}`,
      'endpoint=[fd00::9]:51820',
      'persistent_keepalive_interval=0',
      'replace_allowed_ips=true',
      'allowed_ip=10.0.0.2/32',
      'allowed_ip=fd00:1::/64',
      `public_key=${C.pubHex}`,
      'endpoint=203.0.113.5:4242',
      'persistent_keepalive_interval=15',
      'replace_allowed_ips=true',
      'allowed_ip=10.0.0.3/32',
    ];
    expect(await applySet(dev, payload)).toBe(0);
    expect(formatGet(dev.getState())).toBe(
      [
        `private_key=${A.privHex}`,
        'listen_port=51820',
        `public_key=${B.pubHex}`,
        `preshared_key=${hex(PSK)}`,
        'protocol_version=1',
        'endpoint=[fd00::9]:51820',
        'last_handshake_time_sec=0',
        'last_handshake_time_nsec=0',
        'tx_bytes=0',
        'rx_bytes=0',
        'persistent_keepalive_interval=0',
        'allowed_ip=10.0.0.2/32',
        'allowed_ip=fd00:1::/64',
        `public_key=${C.pubHex}`,
        `preshared_key=${ZERO_HEX}`,
        'protocol_version=1',
        'endpoint=203.0.113.5:4242',
        'last_handshake_time_sec=0',
        'last_handshake_time_nsec=0',
        'tx_bytes=0',
        'rx_bytes=0',
        'persistent_keepalive_interval=15',
        'allowed_ip=10.0.0.3/32',
        'errno=0',
        '',
        '',
      ].join('\n'),
    );
  });

  it('never logs key material', async () => {
    const log = recordingLog();
    const dev = new FakeUapiDevice();
    await applySet(dev, [`private_key=${A.privHex}`, `public_key=${B.pubHex}`, `preshared_key=${hex(PSK)}`], log);
    await applySet(dev, [`private_key=${A.privHex.slice(0, 63)}`], log);
    await applySet(dev, [`public_key=${B.pubHex}`, `preshared_key=${hex(PSK).slice(0, 63)}q`], log);
    await applySet(dev, [`${A.privHex}`], log);
    const all = log.lines.join('\n');
    expect(log.lines.length).toBeGreaterThan(3);
    expect(all).toContain(fakePeerTag(B.pub));
    for (const secret of [A.privHex, A.privHex.slice(0, 63), hex(PSK), hex(PSK).slice(0, 32), A.privHex.slice(0, 32)]) {
      expect(all).not.toContain(secret);
    }
  });
});

describe('createUapiSession', () => {
  async function feed(session: ReturnType<typeof createUapiSession>, ...chunks: string[]): Promise<{ replies: string[]; close: boolean }> {
    const replies: string[] = [];
    let close = false;
    for (const c of chunks) {
      const r = await session.push(c);
      replies.push(...r.replies);
      close ||= r.close;
    }
    return { replies, close };
  }

  it('answers get=1 and set=1, several requests on one connection, in order', async () => {
    const dev = new FakeUapiDevice();
    const s = createUapiSession(dev);
    const r = await feed(s, 'get=1\n\nset=1\nlisten_port=4242\nfwmark=3\n\nget=1\n\nset=1\nbogus=1\n\nget=1\n\n');
    expect(r.close).toBe(false);
    expect(r.replies).toEqual(['errno=0\n\n', 'errno=0\n\n', 'listen_port=4242\nfwmark=3\nerrno=0\n\n', 'errno=-22\n\n', 'listen_port=4242\nfwmark=3\nerrno=0\n\n']);
  });

  it('handles requests split into single bytes', async () => {
    const dev = new FakeUapiDevice();
    const s = createUapiSession(dev);
    const text = `set=1\nprivate_key=${A.privHex}\npublic_key=${B.pubHex}\nallowed_ip=10.0.0.2/32\n\nget=1\n\n`;
    const r = await feed(s, ...text.split(''));
    expect(r.replies).toHaveLength(2);
    expect(r.replies[0]).toBe('errno=0\n\n');
    expect(r.replies[1]).toContain(`private_key=${A.privHex}\npublic_key=${B.pubHex}\n`);
    expect(r.replies[1]!.endsWith('allowed_ip=10.0.0.2/32\nerrno=0\n\n')).toBe(true);
  });

  it('a set is not applied nor answered before its empty line', async () => {
    const dev = new FakeUapiDevice();
    const s = createUapiSession(dev);
    expect(await feed(s, 'set=1\nfwmark=9\n')).toEqual({ replies: [], close: false });
    expect(dev.fwmark).toBe(0);
    expect(await feed(s, '\n')).toEqual({ replies: ['errno=0\n\n'], close: false });
    expect(dev.fwmark).toBe(9);
  });

  it('get=1 followed by anything but \\n is errno=-22; the byte is consumed and the connection goes on', async () => {
    const dev = new FakeUapiDevice();
    const s = createUapiSession(dev);
    expect(await feed(s, 'get=1\nX')).toEqual({ replies: ['errno=-22\n\n'], close: false });
    expect(await feed(s, 'get=1\n\n')).toEqual({ replies: ['errno=0\n\n'], close: false });
  });

  it('an unknown first line closes without a reply, and nothing after it is processed', async () => {
    for (const op of ['hello\n', 'get=2\n\n', 'set=1 \n\n', 'GET=1\n\n', '\n', `private_key=${A.privHex}\n`]) {
      const dev = new FakeUapiDevice();
      const log = recordingLog();
      const s = createUapiSession(dev, log);
      expect(await feed(s, op, 'set=1\nfwmark=1\n\n', 'get=1\n\n')).toEqual({ replies: [], close: true });
      expect(dev.calls).toEqual([]);
      expect(log.lines.join('\n')).not.toContain(A.privHex);
    }
  });

  it('a line without = is −71 and the connection continues', async () => {
    const s = createUapiSession(new FakeUapiDevice());
    expect(await feed(s, 'set=1\nnoequals\n\nget=1\n\n')).toEqual({ replies: ['errno=-71\n\n', 'errno=0\n\n'], close: false });
  });

  it('EOF in the middle of a set applies what arrived, like wireguard-go, then closes', async () => {
    const dev = new FakeUapiDevice();
    const s = createUapiSession(dev);
    await feed(s, 'set=1\nlisten_port=7\nfwmark=5');
    expect(await s.end()).toEqual({ replies: ['errno=0\n\n'], close: true });
    expect([dev.listenPort, dev.fwmark]).toEqual([7, 5]);
  });

  it('EOF between requests or after get=1\\n closes without a reply', async () => {
    const s1 = createUapiSession(new FakeUapiDevice());
    await feed(s1, 'get=1\n\n');
    expect(await s1.end()).toEqual({ replies: [], close: true });
    const s2 = createUapiSession(new FakeUapiDevice());
    await feed(s2, 'get=1\n');
    expect(await s2.end()).toEqual({ replies: [], close: true });
  });

  it('an oversized line is −5 (EIO) and closes; an oversized operation line closes', async () => {
    const s1 = createUapiSession(new FakeUapiDevice());
    expect(await feed(s1, 'set=1\n', `fwmark=${'1'.repeat(70_000)}`)).toEqual({ replies: ['errno=-5\n\n'], close: true });
    const s2 = createUapiSession(new FakeUapiDevice());
    expect(await feed(s2, 'x'.repeat(70_000))).toEqual({ replies: [], close: true });
  });

  it('get and set on one device never interleave across sessions', async () => {
    const dev = new FakeUapiDevice();
    const a = createUapiSession(dev);
    const b = createUapiSession(dev);
    // the set awaits the (asynchronous) listen port change; the get pushed meanwhile must see all of it
    const setting = a.push('set=1\nlisten_port=1111\nfwmark=2222\n\n');
    const getting = b.push('get=1\n\n');
    const [set, get] = await Promise.all([setting, getting]);
    expect(set.replies).toEqual(['errno=0\n\n']);
    expect(get.replies).toEqual(['listen_port=1111\nfwmark=2222\nerrno=0\n\n']);
  });

  it('overlapping pushes on one session are processed in order', async () => {
    const dev = new FakeUapiDevice();
    const s = createUapiSession(dev);
    const p1 = s.push('set=1\nlisten_port=1\n\n');
    const p2 = s.push('get=1\n\n');
    const p3 = s.push('set=1\nlisten_port=2\n\nget=1\n\n');
    // a drain sees every byte pushed before it runs, so replies may arrive with an earlier push;
    // what matters is their total order
    const all = [...(await p1).replies, ...(await p2).replies, ...(await p3).replies];
    expect(all).toEqual(['errno=0\n\n', 'listen_port=1\nerrno=0\n\n', 'errno=0\n\n', 'listen_port=2\nerrno=0\n\n']);
  });
});
