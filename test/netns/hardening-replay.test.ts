/**
 * Replay (issue 8, item 3): WireGuard datagrams captured with tcpdump on the way into a kubespand
 * device, replayed later byte for byte, from the original source address and port and from an
 * attacker's address.
 *
 *     ns a1: wireguard-go  10.231.0.1:51831  ───veth───  10.231.0.2:51832  kubespand (ns b1, LOG_LEVEL=trace)
 *            (+10.231.0.9, the attacker)                  tcpdump -w on this end
 *
 * The legitimate sender is moved to another port and its own packets are dropped by nftables while
 * the capture is replayed, so whatever reaches the device in that window is the replay alone.
 * Shows: every replayed data packet is dropped as a replayed counter and every replayed initiation as
 * a handshake replay (the device's trace log names each drop); `wg show dump` rx, the latest
 * handshake and the endpoint stay exactly as they were; the session then carries traffic without a
 * new handshake; after a NEWER handshake the old capture is still refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep, Topology, type Spawned } from '../support/netns.js';
import { createPair, dumpPeer, ping, wgSetPeer, type Pair } from '../support/wg-impl.js';

let topo: Topology;
let pair: Pair;
let work: string;

interface Captured {
  src: string;
  sport: number;
  payload: Buffer;
}

/** The UDP payloads of a classic pcap file of Ethernet frames carrying IPv4 (what `tcpdump -w` writes on a veth). */
function readPcapUdp(file: string): Captured[] {
  const b = readFileSync(file);
  if (b.length < 24) throw new Error(`${file}: ${b.length} bytes, not a pcap file`);
  const magic = b.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && b.readUInt32BE(0) !== 0xa1b2c3d4 && b.readUInt32BE(0) !== 0xa1b23c4d) throw new Error(`${file}: unknown pcap magic ${magic.toString(16)}`);
  const u32 = (o: number): number => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const linktype = u32(20);
  if (linktype !== 1) throw new Error(`${file}: link type ${linktype}, want 1 (Ethernet)`);
  const out: Captured[] = [];
  for (let o = 24; o + 16 <= b.length; ) {
    const caplen = u32(o + 8);
    const frame = b.subarray(o + 16, o + 16 + caplen);
    o += 16 + caplen;
    if (frame.length < 14 + 20 + 8 || frame.readUInt16BE(12) !== 0x0800) continue;
    const ip = frame.subarray(14);
    const ihl = (ip[0]! & 0x0f) * 4;
    if (ip[9] !== 17) continue;
    const udp = ip.subarray(ihl);
    const len = udp.readUInt16BE(4);
    out.push({ src: `${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}`, sport: udp.readUInt16BE(0), payload: Buffer.from(udp.subarray(8, len)) });
  }
  return out;
}

/** Sends `payloads` from `bind` (address:port) to `to`, `rounds` times, from inside `ns`. */
function replay(ns: string, bind: { address: string; port: number }, to: { address: string; port: number }, payloads: Buffer[], rounds = 2): void {
  const script = `
    const dgram = require('node:dgram');
    const [bind, to, hex, rounds] = JSON.parse(process.argv[1]);
    const s = dgram.createSocket('udp4');
    s.bind(bind, async () => {
      for (let r = 0; r < rounds; r++) for (const h of hex) {
        await new Promise((ok) => s.send(Buffer.from(h, 'hex'), to.port, to.address, ok));
        await new Promise((ok) => setTimeout(ok, 5));
      }
      s.close();
    });`;
  topo.exec(ns, process.execPath, ['-e', script, JSON.stringify([bind, to, payloads.map((p) => p.toString('hex')), rounds])], { timeoutMs: 20_000 });
}

/** Drop reasons the device logged (LOG_LEVEL=trace) since `from` characters of its output. */
function dropsSince(proc: Spawned, from: number): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const line of proc.output().slice(from).split('\n')) {
    const m = /"reason":"([a-z0-9-]+)".*"msg":"packet dropped"/.exec(line);
    if (m) counts[m[1]!] = (counts[m[1]!] ?? 0) + 1;
  }
  return counts;
}

describe('replayed WireGuard datagrams against a kubespand device', () => {
  let captured: Captured[] = [];

  beforeAll(async () => {
    topo = new Topology('ksh');
    work = mkdtempSync(join(tmpdir(), 'ksh-replay-'));
    topo.onDestroy(() => rmSync(work, { recursive: true, force: true }));
    pair = await createPair(topo, { implA: 'wireguard-go', implB: 'kubespand', initiator: 'a', start: { logLevel: 'trace' } });
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  it('captures a handshake and data on the way into the device', async () => {
    const { a, b } = pair;
    const file = join(work, 'in.pcap');
    const dump = topo.spawn(b.ns, 'tcpdump', ['-i', b.veth, '-U', '-n', '-w', file, 'udp', 'and', 'dst', 'port', String(b.listenPort)]);
    await dump.waitFor(/listening on/, 10_000);
    expect(ping(topo, a.ns, b.tunnel4, { count: 5 }).received).toBe(5);
    expect(ping(topo, a.ns, b.tunnel6, { count: 3 }).received).toBe(3);
    await sleep(300);
    await dump.stop('SIGINT');
    captured = readPcapUdp(file).filter((c) => c.src === a.outer4 && c.sport === a.listenPort);
    const types = captured.map((c) => c.payload[0]);
    expect(types.filter((t) => t === 1).length).toBeGreaterThanOrEqual(1);
    expect(captured.filter((c) => c.payload[0] === 4 && c.payload.length > 32).length).toBeGreaterThanOrEqual(4);
  }, 60_000);

  it('drops the replay from the original address and from an attacker; counters, handshake and endpoint untouched', async () => {
    const { a, b } = pair;
    const before = dumpPeer(topo, b.ns, b.ifname, a.keys.publicKey);
    expect(before.endpoint).toBe(`${a.outer4}:${a.listenPort}`);
    // free the original source port and silence the real sender: only the replay reaches the device now
    topo.exec(a.ns, 'wg', ['set', a.ifname, 'listen-port', '51841']);
    topo.exec(a.ns, 'nft', ['-f', '-'], { input: 'table inet kshreplay {\n chain out {\n  type filter hook output priority 0; policy accept;\n  udp sport 51841 drop\n }\n}\n' });
    topo.exec(a.ns, 'ip', ['addr', 'add', '10.231.0.9/24', 'dev', a.veth]);
    const mark = pair.b.proc.output().length;
    const payloads = captured.map((c) => c.payload);
    replay(a.ns, { address: a.outer4, port: a.listenPort }, { address: b.outer4, port: b.listenPort }, payloads);
    replay(a.ns, { address: '10.231.0.9', port: 40000 }, { address: b.outer4, port: b.listenPort }, payloads);
    await sleep(800);
    const after = dumpPeer(topo, b.ns, b.ifname, a.keys.publicKey);
    const drops = dropsSince(pair.b.proc, mark);
    console.log(`replay: ${payloads.length} captured datagrams sent 4 times; device drops ${JSON.stringify(drops)}`);
    expect(after.rxBytes).toBe(before.rxBytes);
    expect(after.latestHandshake).toBe(before.latestHandshake);
    expect(after.endpoint).toBe(before.endpoint);
    const transports = payloads.filter((p) => p[0] === 4).length;
    const initiations = payloads.filter((p) => p[0] === 1).length;
    expect(drops['replayed-counter']).toBe(4 * transports);
    expect(drops['handshake-replay']).toBe(4 * initiations);
    // the only datagram-side drops are the replays ('no-route' is the TUN side: the kernel's own IPv6
    // router solicitations and MLD reports on the tunnel link, sent at random times after link-up)
    expect(Object.keys(drops).filter((r) => r !== 'no-route').sort()).toEqual(['handshake-replay', 'replayed-counter']);
    topo.exec(a.ns, 'nft', ['delete', 'table', 'inet', 'kshreplay']);
  }, 60_000);

  it('keeps the session: traffic flows again without a new handshake (the device follows the new port)', async () => {
    const { a, b } = pair;
    const before = dumpPeer(topo, b.ns, b.ifname, a.keys.publicKey);
    expect(ping(topo, a.ns, b.tunnel4, { count: 3 }).received).toBe(3);
    const after = dumpPeer(topo, b.ns, b.ifname, a.keys.publicKey);
    expect(after.latestHandshake).toBe(before.latestHandshake);
    expect(after.rxBytes).toBeGreaterThan(before.rxBytes);
    expect(after.endpoint).toBe(`${a.outer4}:51841`);
  }, 30_000);

  it('still refuses the old capture after a newer handshake', async () => {
    const { a, b } = pair;
    // a fresh session: wireguard-go forgets the peer and meets it again (new initiation, newer timestamp)
    topo.exec(a.ns, 'wg', ['set', a.ifname, 'peer', b.keys.publicKey, 'remove']);
    wgSetPeer(topo, a.ns, a.ifname, { publicKey: b.keys.publicKey, endpoint: `${b.outer4}:${b.listenPort}`, allowedIPs: [`${b.tunnel4}/32`, `${b.tunnel6}/128`] });
    await sleep(1100); // TAI64N is whitened to ~16 ms, and wg show counts seconds
    expect(ping(topo, a.ns, b.tunnel4, { count: 2 }).received).toBe(2);
    const before = dumpPeer(topo, b.ns, b.ifname, a.keys.publicKey);
    const mark = pair.b.proc.output().length;
    replay(a.ns, { address: '10.231.0.9', port: 40001 }, { address: b.outer4, port: b.listenPort }, captured.map((c) => c.payload), 1);
    await sleep(800);
    const after = dumpPeer(topo, b.ns, b.ifname, a.keys.publicKey);
    expect(after.rxBytes).toBe(before.rxBytes);
    expect(after.latestHandshake).toBe(before.latestHandshake);
    expect(after.endpoint).toBe(before.endpoint);
    const drops = dropsSince(pair.b.proc, mark);
    // the old initiation is older than the new one; the old data packets belong to a keypair that is
    // now the previous one (replayed counters) or gone (unknown index)
    expect(drops['handshake-replay']).toBe(captured.filter((c) => c.payload[0] === 1).length);
    expect((drops['replayed-counter'] ?? 0) + (drops['unknown-receiver-index'] ?? 0)).toBe(captured.filter((c) => c.payload[0] === 4).length);
    expect(ping(topo, a.ns, b.tunnel4, { count: 2 }).received).toBe(2);
  }, 60_000);
});
