/**
 * WireGuard interop matrix on a real TUN, two network namespaces joined by a veth (docs/interop.md):
 * wireguard-go↔wireguard-go keeps the bed honest, then kubespand against wireguard-go in both initiator
 * roles, then kubespand against itself. Each pair runs the same steps in order: first contact from the
 * initiator only, pings both ways over IPv4 and IPv6, 50 MiB TCP each way with sha256, `wg show dump`
 * counters, peer removal and re-adding at run time, and roaming (new outer address, new listen port, IPv6
 * outer addresses) with the responder's endpoint following.
 *
 * Side a always initiates: only it is given an endpoint for its peer.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, type TestContext } from 'vitest';
import { Topology, eventually, sleep } from '../support/netns.js';
import {
  createPair,
  dumpPeer,
  initiatorFirst,
  kernelRxDrops,
  nodeVersionOf,
  ping,
  wgDump,
  wgRemovePeer,
  wgSetListenPort,
  wgSetPeer,
  type Pair,
  type PairSide,
  type WgDumpPeer,
  type WgImpl,
} from '../support/wg-impl.js';

const TRANSFER_BYTES = 50 * 1024 * 1024;
/** A second outer address for the roaming side, and a second listen port. */
const ROAM_OUTER4 = '10.231.0.11';
const ROAM_LISTEN_PORT = 51841;
/** Largest datagram a 1420-MTU WireGuard device sends: 1420 + 32 bytes of data header and tag. */
const MAX_DATAGRAM = 1420 + 32;
/** Datagrams that may still be in flight (or in a socket buffer) when two dumps are read one after the other. */
const IN_FLIGHT_SLACK = 256 * 1024;

interface Case {
  name: string;
  implA: WgImpl;
  implB: WgImpl;
}

const CASES: Case[] = [
  { name: 'wireguard-go ↔ wireguard-go (baseline)', implA: 'wireguard-go', implB: 'wireguard-go' },
  { name: 'kubespand → wireguard-go (kubespand initiates)', implA: 'kubespand', implB: 'wireguard-go' },
  { name: 'wireguard-go → kubespand (wireguard-go initiates)', implA: 'wireguard-go', implB: 'kubespand' },
  { name: 'kubespand ↔ kubespand', implA: 'kubespand', implB: 'kubespand' },
];

/** A payload shared by every case, written once. */
let payload: { dir: string; file: string; sha256: string } | undefined;
function getPayload(): { dir: string; file: string; sha256: string } {
  if (!payload) {
    const dir = mkdtempSync(join(tmpdir(), 'ksn-interop-'));
    const data = randomBytes(TRANSFER_BYTES);
    const file = join(dir, 'payload.bin');
    writeFileSync(file, data);
    payload = { dir, file, sha256: createHash('sha256').update(data).digest('hex') };
  }
  return payload;
}
afterAll(() => {
  if (payload) rmSync(payload.dir, { recursive: true, force: true });
});

function fmtHostPort(addr: string, port: number): string {
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** Sends the payload over TCP (ncat) from `from` to `toAddr` inside `to`; returns the received file's sha256 and size. */
async function transfer(topo: Topology, from: PairSide, to: PairSide, toAddr: string, port: number, outDir: string): Promise<{ sha256: string; bytes: number; seconds: number }> {
  const { file } = getPayload();
  const out = join(outDir, `recv-${to.role}-${port}.bin`);
  rmSync(out, { force: true });
  const server = topo.spawn(to.ns, 'sh', ['-c', `exec ncat --recv-only -l ${toAddr} ${port} > ${out}`]);
  await eventually(() => topo.exec(to.ns, 'ss', ['-Htln', 'sport', '=', `:${port}`]).includes(`:${port}`), 10_000, 50);
  const started = Date.now();
  topo.exec(from.ns, 'sh', ['-c', `exec ncat --send-only ${toAddr} ${port} < ${file}`], { timeoutMs: 120_000 });
  const code = await Promise.race([server.exited(), sleep(30_000).then(() => 'timeout' as const)]);
  const seconds = (Date.now() - started) / 1000;
  if (code !== 0) throw new Error(`ncat server in ${to.ns} ended with ${String(code)}: ${server.output().slice(-500)}`);
  const received = readFileSync(out);
  const result = { sha256: createHash('sha256').update(received).digest('hex'), bytes: statSync(out).size, seconds };
  rmSync(out, { force: true });
  return result;
}

function recent(unixSeconds: number, withinS = 180): boolean {
  return unixSeconds > 0 && Math.abs(Date.now() / 1000 - unixSeconds) <= withinS;
}

/** Expects every echo to come back, and shows ping's own output when not. */
/** Every echo answered, in one of up to three rounds (a loaded host may drop a single echo on the veth). */
function expectPings(topo: Topology, from: PairSide, dst: string, count = 3): void {
  let r = ping(topo, from.ns, dst, { count });
  for (let round = 1; round < 3 && r.received !== r.transmitted; round++) r = ping(topo, from.ns, dst, { count });
  expect(r.received, `ping ${dst} from ${from.ns} (${from.impl}): ${r.output}`).toBe(r.transmitted);
}

CASES.forEach((c, i) => {
  describe.sequential(`interop: ${c.name}`, () => {
    const n = i + 1;
    let topo: Topology | undefined;
    let pair: Pair | undefined;
    let setupError: unknown;
    let outDir: string | undefined;

    afterAll(async () => {
      await topo?.destroy();
      if (outDir) rmSync(outDir, { recursive: true, force: true });
    });

    /** Each step needs the bed from the first one; a failed setup fails every step with its reason. */
    function bed(ctx: TestContext): { topo: Topology; pair: Pair; init: PairSide; resp: PairSide; outDir: string } {
      if (!topo || !pair || !outDir) {
        throw new Error(`the ${c.name} bed was not built: ${setupError instanceof Error ? setupError.message : String(setupError)}`);
      }
      const t = topo;
      const p = pair;
      ctx.onTestFailed(() => {
        for (const side of [p.a, p.b]) {
          process.stderr.write(`--- ${side.impl} ${side.ifname} (${side.ns}) output ---\n${side.proc.output().slice(-3000)}\n`);
        }
      });
      const [init, resp] = initiatorFirst(p);
      return { topo: t, pair: p, init, resp, outDir };
    }

    it('starts both devices; only the initiator has an endpoint for its peer', async (ctx) => {
      try {
        topo = new Topology('ksn');
        outDir = mkdtempSync(join(tmpdir(), `ksn-interop-${n}-`));
        pair = await createPair(topo, { implA: c.implA, implB: c.implB, initiator: 'a', n });
      } catch (err) {
        setupError = err;
        throw err;
      }
      const { init, resp } = bed(ctx);
      for (const [self, other] of [[init, resp], [resp, init]] as const) {
        const dump = wgDump(topo, self.ns, self.ifname);
        expect(dump.publicKey).toBe(self.keys.publicKey);
        expect(dump.listenPort).toBe(self.listenPort);
        expect(dump.peers.map((p) => p.publicKey)).toEqual([other.keys.publicKey]);
        const peer = dumpPeer(topo, self.ns, self.ifname, other.keys.publicKey);
        expect(peer.allowedIPs.sort()).toEqual([`${other.tunnel4}/32`, `${other.tunnel6}/128`].sort());
        expect(peer.latestHandshake).toBe(0);
      }
      expect(dumpPeer(topo, init.ns, init.ifname, resp.keys.publicKey).endpoint).toBe(`${resp.outer4}:${resp.listenPort}`);
      expect(dumpPeer(topo, resp.ns, resp.ifname, init.keys.publicKey).endpoint).toBeNull();
    });

    if (c.implA === 'kubespand' || c.implB === 'kubespand') {
      // bin/kubespand is `#!/usr/bin/env node`: it runs on the first node in PATH, which must be the runner's
      // own (scripts/test-lts.sh puts another Node major first in PATH and runs vitest on it)
      it(`the kubespand daemon runs on the runner's Node (${process.version})`, (ctx) => {
        const { pair } = bed(ctx);
        for (const side of [pair.a, pair.b].filter((s) => s.impl === 'kubespand')) {
          const { exe, version } = nodeVersionOf(side.proc.child.pid!);
          process.stderr.write(`[interop ${c.name}] kubespand side ${side.role} runs on node ${version} (${exe})\n`);
          expect(version, `kubespand side ${side.role} runs ${exe}`).toBe(process.version);
        }
      });
    }

    it('the responder cannot reach the initiator before the first handshake', (ctx) => {
      const { topo, init, resp } = bed(ctx);
      const r = ping(topo, resp.ns, init.tunnel4, { count: 1, waitS: 1 });
      expect(r.received, r.output).toBe(0);
      const peer = dumpPeer(topo, resp.ns, resp.ifname, init.keys.publicKey);
      expect(peer.endpoint).toBeNull();
      expect(peer.latestHandshake).toBe(0);
    });

    it('pings both ways over IPv4 and IPv6 inside the tunnel', (ctx) => {
      const { topo, init, resp } = bed(ctx);
      expectPings(topo, init, resp.tunnel4); // first contact: the handshake, then the staged echo
      expectPings(topo, resp, init.tunnel4);
      expectPings(topo, init, resp.tunnel6);
      expectPings(topo, resp, init.tunnel6);
      // the responder learned the initiator's endpoint from the handshake
      const learned = dumpPeer(topo, resp.ns, resp.ifname, init.keys.publicKey);
      expect(learned.endpoint).toBe(`${init.outer4}:${init.listenPort}`);
      expect(recent(learned.latestHandshake)).toBe(true);
      expect(recent(dumpPeer(topo, init.ns, init.ifname, resp.keys.publicKey).latestHandshake)).toBe(true);
    });

    it('moves 50 MiB over TCP each way (IPv4 one way, IPv6 back) with matching sha256', async (ctx) => {
      const { topo, init, resp, outDir } = bed(ctx);
      const { sha256 } = getPayload();
      const there = await transfer(topo, init, resp, resp.tunnel4, 5201, outDir);
      expect(there.bytes).toBe(TRANSFER_BYTES);
      expect(there.sha256).toBe(sha256);
      const back = await transfer(topo, resp, init, init.tunnel6, 5202, outDir);
      expect(back.bytes).toBe(TRANSFER_BYTES);
      expect(back.sha256).toBe(sha256);
      process.stderr.write(
        `[interop ${c.name}] 50 MiB ${init.impl}→${resp.impl} ${there.seconds.toFixed(2)} s, ${resp.impl}→${init.impl} ${back.seconds.toFixed(2)} s\n`,
      );
    });

    it('wg show dump: recent handshake and rx/tx counters that agree with the traffic', async (ctx) => {
      const { topo, init, resp } = bed(ctx);
      const read = (): { i: WgDumpPeer; r: WgDumpPeer } => ({
        i: dumpPeer(topo, init.ns, init.ifname, resp.keys.publicKey),
        r: dumpPeer(topo, resp.ns, resp.ifname, init.keys.publicKey),
      });
      // After the bulk transfers: a receiver never counts more than its peer sent, and the gap is no more
      // than the datagrams the receiving kernel dropped (full UDP buffer, veth) plus what is in flight.
      const gapOk = (tx: number, rx: number, drops: number): boolean => rx <= tx && tx - rx <= drops * MAX_DATAGRAM + IN_FLIGHT_SLACK;
      const bulk = await eventually(() => {
        const v = read();
        const dropsAtResp = kernelRxDrops(topo, resp.ns, resp.veth);
        const dropsAtInit = kernelRxDrops(topo, init.ns, init.veth);
        return gapOk(v.i.txBytes, v.r.rxBytes, dropsAtResp) && gapOk(v.r.txBytes, v.i.rxBytes, dropsAtInit) ? { ...v, dropsAtResp, dropsAtInit } : undefined;
      }, 10_000).catch(() => {
        const v = read();
        throw new Error(
          `counters disagree beyond kernel drops: initiator rx ${v.i.rxBytes} tx ${v.i.txBytes}; responder rx ${v.r.rxBytes} tx ${v.r.txBytes}; ` +
            `drops at responder ${kernelRxDrops(topo, resp.ns, resp.veth)}, at initiator ${kernelRxDrops(topo, init.ns, init.veth)}`,
        );
      });
      if (!bulk) throw new Error('unreachable: eventually() resolved without a value');
      for (const p of [bulk.i, bulk.r]) {
        expect(p.rxBytes).toBeGreaterThanOrEqual(TRANSFER_BYTES);
        expect(p.txBytes).toBeGreaterThanOrEqual(TRANSFER_BYTES);
        expect(recent(p.latestHandshake)).toBe(true);
        expect(p.persistentKeepalive).toBeNull();
        expect(p.hasPresharedKey).toBe(false);
      }
      process.stderr.write(
        `[interop ${c.name}] counters: initiator rx ${bulk.i.rxBytes} tx ${bulk.i.txBytes}; responder rx ${bulk.r.rxBytes} tx ${bulk.r.txBytes}; ` +
          `kernel rx drops: initiator ${bulk.dropsAtInit}, responder ${bulk.dropsAtResp}\n`,
      );

      // A paced burst that nothing drops: the deltas agree exactly, and match spec §9: each echo of a
      // 1000-byte payload is a 1028-byte IPv4 packet, padded to 1040, plus 32 bytes of header and tag.
      const count = 100;
      const perDatagram = 32 + Math.ceil((1000 + 28) / 16) * 16;
      const before = read();
      const r = ping(topo, init.ns, resp.tunnel4, { count, intervalS: 0.005, size: 1000 });
      expect(r.received, r.output).toBe(count);
      const delta = await eventually(() => {
        const v = read();
        const d = { iTx: v.i.txBytes - before.i.txBytes, iRx: v.i.rxBytes - before.i.rxBytes, rTx: v.r.txBytes - before.r.txBytes, rRx: v.r.rxBytes - before.r.rxBytes };
        return d.iTx === d.rRx && d.rTx === d.iRx ? d : undefined;
      }, 5_000).catch(() => {
        const v = read();
        throw new Error(`burst deltas disagree: initiator rx +${v.i.rxBytes - before.i.rxBytes} tx +${v.i.txBytes - before.i.txBytes}; responder rx +${v.r.rxBytes - before.r.rxBytes} tx +${v.r.txBytes - before.r.txBytes}`);
      });
      if (!delta) throw new Error('unreachable: eventually() resolved without a value');
      // at least the echoes; at most a handshake and a few keepalives more
      for (const d of [delta.iTx, delta.rTx]) {
        expect(d).toBeGreaterThanOrEqual(count * perDatagram);
        expect(d).toBeLessThanOrEqual(count * perDatagram + 1024);
      }
    });

    it('removing the peer at run time stops traffic; re-adding it brings traffic back', (ctx) => {
      const { topo, init, resp } = bed(ctx);
      wgRemovePeer(topo, init.ns, init.ifname, resp.keys.publicKey);
      expect(wgDump(topo, init.ns, init.ifname).peers).toEqual([]);
      const gone = ping(topo, init.ns, resp.tunnel4, { count: 1, waitS: 1 });
      expect(gone.received, gone.output).toBe(0);

      wgSetPeer(topo, init.ns, init.ifname, {
        publicKey: resp.keys.publicKey,
        endpoint: `${resp.outer4}:${resp.listenPort}`,
        allowedIPs: [`${resp.tunnel4}/32`, `${resp.tunnel6}/128`],
      });
      const fresh = dumpPeer(topo, init.ns, init.ifname, resp.keys.publicKey);
      expect(fresh.latestHandshake).toBe(0);
      expect(fresh.rxBytes).toBe(0);
      expectPings(topo, init, resp.tunnel4);
      expectPings(topo, resp, init.tunnel4);
      expectPings(topo, resp, init.tunnel6);
      const after = dumpPeer(topo, init.ns, init.ifname, resp.keys.publicKey);
      expect(recent(after.latestHandshake)).toBe(true);
      expect(after.rxBytes).toBeGreaterThan(0);
      expect(after.rxBytes).toBeLessThan(1024 * 1024); // counters started again with the new peer
    });

    it('roaming: the initiator moves to a new outer address and the responder follows', async (ctx) => {
      const { topo, init, resp } = bed(ctx);
      expect(dumpPeer(topo, resp.ns, resp.ifname, init.keys.publicKey).endpoint).toBe(`${init.outer4}:${init.listenPort}`);
      topo.exec(init.ns, 'ip', ['addr', 'del', `${init.outer4}/24`, 'dev', init.veth]);
      topo.exec(init.ns, 'ip', ['addr', 'add', `${ROAM_OUTER4}/24`, 'dev', init.veth]);
      // Setting the (same) endpoint again drops any cached source address; wireguard-go otherwise keeps
      // sending from the vanished one (ENETUNREACH) until its 15 s new-handshake expiry clears it.
      wgSetPeer(topo, init.ns, init.ifname, {
        publicKey: resp.keys.publicKey,
        endpoint: `${resp.outer4}:${resp.listenPort}`,
        allowedIPs: [`${resp.tunnel4}/32`, `${resp.tunnel6}/128`],
      });
      expectPings(topo, init, resp.tunnel4);
      await eventually(() => dumpPeer(topo, resp.ns, resp.ifname, init.keys.publicKey).endpoint === `${ROAM_OUTER4}:${init.listenPort}`, 5_000).catch(() => {
        throw new Error(`responder endpoint did not follow to ${ROAM_OUTER4}:${init.listenPort}: ${String(dumpPeer(topo, resp.ns, resp.ifname, init.keys.publicKey).endpoint)}`);
      });
      expectPings(topo, resp, init.tunnel4);
      expectPings(topo, resp, init.tunnel6);
    });

    it('roaming: a new listen port, then IPv6 outer addresses; the responder follows each time', async (ctx) => {
      const { topo, init, resp } = bed(ctx);
      const followed = async (want: string): Promise<void> => {
        await eventually(() => dumpPeer(topo, resp.ns, resp.ifname, init.keys.publicKey).endpoint === want, 5_000).catch(() => {
          throw new Error(`responder endpoint did not follow to ${want}: ${String(dumpPeer(topo, resp.ns, resp.ifname, init.keys.publicKey).endpoint)}`);
        });
      };
      wgSetListenPort(topo, init.ns, init.ifname, ROAM_LISTEN_PORT);
      expect(wgDump(topo, init.ns, init.ifname).listenPort).toBe(ROAM_LISTEN_PORT);
      expectPings(topo, init, resp.tunnel4);
      await followed(`${ROAM_OUTER4}:${ROAM_LISTEN_PORT}`);
      expectPings(topo, resp, init.tunnel4);

      wgSetPeer(topo, init.ns, init.ifname, {
        publicKey: resp.keys.publicKey,
        endpoint: fmtHostPort(resp.outer6, resp.listenPort),
        allowedIPs: [`${resp.tunnel4}/32`, `${resp.tunnel6}/128`],
      });
      expectPings(topo, init, resp.tunnel6);
      await followed(fmtHostPort(init.outer6, ROAM_LISTEN_PORT));
      expectPings(topo, resp, init.tunnel6);
      expectPings(topo, resp, init.tunnel4);
      expect(dumpPeer(topo, init.ns, init.ifname, resp.keys.publicKey).endpoint).toBe(fmtHostPort(resp.outer6, resp.listenPort));
    });
  });
});
