/**
 * Start-up warm-up of the data path. V8 runs a function in its interpreter until it has been called
 * often enough, so a fresh daemon pays the interpreter's price on its first handshakes and packets:
 * measured on the bench topology, the first echo through a fresh tunnel took ~16 ms (wireguard-go:
 * ~1.4 ms) and a ping every 100 ms stayed ~0.6 ms slower before than after a few seconds of traffic.
 *
 * The warm-up runs real handshakes and transport packets (IPv4 and IPv6, small and MTU-sized, both
 * directions) through a private pair of DeviceCores joined in memory, with the device's own crypto
 * provider, clock and randomness, so the very functions the live device calls get compiled with the
 * same types. Nothing leaves the process: the pair has its own throw-away keys, no sockets and no TUN.
 * It doubles as a self-test of the crypto provider: every packet must come out as it went in.
 *
 * It works in slices and yields to the event loop between them, so live packets that arrive during
 * the warm-up wait at most one slice.
 */
import { DeviceCore, type Endpoint } from '../noise/device.js';
import type { CryptoProvider } from '../noise/crypto.js';
import type { Clock, Random } from '../noise/clock.js';
import { parsePrefix } from '../noise/allowed-ips.js';
import { generatePrivateKey } from '../noise/keys.js';
import { constantTimeEqual } from '../noise/bytes.js';
import { buildUdpPacket } from '../tun/packets.js';
import { PACKET_HEADROOM, PACKET_TAILROOM } from '../noise/constants.js';

export interface WarmupOptions {
  crypto: CryptoProvider;
  clock: Clock;
  random: Random;
  mtu: number;
  /** Complete handshakes to run. Default 12. */
  handshakes?: number;
  /** Transport packets to move, split over both directions and both families. Default 6000. */
  packets?: number;
  /** Work per slice before yielding to the event loop, in milliseconds. Default 4. */
  sliceMs?: number;
  /**
   * The live TUN's packets have room around them (tun.packetsHaveRoom): warm up with packets of the
   * same shape and cores that seal in place, so the branch live packets take is the one compiled.
   */
  packetsHaveRoom?: boolean;
  /** Stops early when it returns true (the device closed). */
  cancelled?: () => boolean;
  /** How to yield between slices; default setImmediate. Tests may pass a synchronous one. */
  yieldFn?: () => Promise<void>;
}

export interface WarmupReport {
  handshakes: number;
  packets: number;
  /** Packets that did not come out of the other side unchanged (a broken provider). */
  mismatches: number;
  elapsedMs: number;
  cancelled: boolean;
}

const EP_A: Endpoint = { address: '192.0.2.1', port: 1 };
const EP_B: Endpoint = { address: '192.0.2.2', port: 2 };

const ADDRESSES = { v4: ['10.255.0.1', '10.255.0.2'], v6: ['fdff::1', 'fdff::2'] } as const;

/**
 * A UDP packet of `size` bytes (at least the headers) from one side of the pair to the other; with
 * `room`, shaped like the TUN reader's (a view at PACKET_HEADROOM of its own zeroed ArrayBuffer).
 */
function packet(size: number, fromA: boolean, v6: boolean, seq: number, room: boolean): Uint8Array {
  const [addrA, addrB] = v6 ? ADDRESSES.v6 : ADDRESSES.v4;
  const headers = (v6 ? 40 : 20) + 8;
  const payload = new Uint8Array(Math.max(0, size - headers)).fill(seq & 0xff);
  const p = buildUdpPacket({ src: fromA ? addrA : addrB, dst: fromA ? addrB : addrA, srcPort: 1024 + (seq & 0x7fff), dstPort: 9, payload });
  if (!room) return p;
  const roomy = new Uint8Array(new ArrayBuffer(PACKET_HEADROOM + p.length + PACKET_TAILROOM), PACKET_HEADROOM, p.length);
  roomy.set(p);
  return roomy;
}

/**
 * A private pair of DeviceCores joined in memory, with the device's crypto provider, clock and
 * randomness and throw-away keys. `warmUpDataPath` runs handshakes and packets through it at start;
 * the shell's keep-warm tick (runtime.ts) sends one small packet through it now and then while live
 * traffic flows (see `tick`). Nothing leaves the process: no sockets, no TUN.
 */
export class WarmPair {
  a!: DeviceCore;
  b!: DeviceCore;
  /** Whether the last `send` or `handshake` completed a handshake. */
  handshakeDone = false;
  private wire: { to: DeviceCore; from: Endpoint; data: Uint8Array }[] = [];
  private delivered: Uint8Array[] = [];
  private ticks = 0;
  /** tick()'s packets (built on the first tick). */
  private templates: { packet: Uint8Array; bytes: Uint8Array; buffer: Uint8Array }[] | undefined;

  constructor(private readonly opts: Pick<WarmupOptions, 'crypto' | 'clock' | 'random' | 'mtu' | 'packetsHaveRoom'>) {
    this.renew();
  }

  /** A fresh pair with new keys (a second initiation on one pair within REKEY_TIMEOUT would be held back). */
  renew(): void {
    const mk = (self: Endpoint, other: () => DeviceCore): DeviceCore =>
      new DeviceCore({
        crypto: this.opts.crypto,
        clock: this.opts.clock,
        random: this.opts.random,
        mtu: this.opts.mtu,
        packetsMayHaveRoom: this.opts.packetsHaveRoom === true,
        outputs: {
          send: (_to, data) => this.wire.push({ to: other(), from: self, data }),
          deliver: (packet) => this.delivered.push(packet),
          event: (e) => {
            if (e.kind === 'handshake-complete') this.handshakeDone = true;
          },
          drop: () => undefined,
        },
      });
    const a = mk(EP_A, () => this.b);
    const b = mk(EP_B, () => this.a);
    this.a = a;
    this.b = b;
    a.setPrivateKey(generatePrivateKey(this.opts.random));
    b.setPrivateKey(generatePrivateKey(this.opts.random));
    const pa = a.addPeer(b.getPublicKey()!);
    const pb = b.addPeer(a.getPublicKey()!);
    a.setEndpoint(pa, EP_B);
    b.setEndpoint(pb, EP_A);
    a.allowedIps.insert(parsePrefix(`${ADDRESSES.v4[1]}/32`), pa);
    a.allowedIps.insert(parsePrefix(`${ADDRESSES.v6[1]}/128`), pa);
    b.allowedIps.insert(parsePrefix(`${ADDRESSES.v4[0]}/32`), pb);
    b.allowedIps.insert(parsePrefix(`${ADDRESSES.v6[0]}/128`), pb);
  }

  /** A packet of `size` bytes from one side to the other, shaped like the live TUN's. */
  packet(size: number, fromA: boolean, v6: boolean, seq: number): Uint8Array {
    return packet(Math.min(size, this.opts.mtu), fromA, v6, seq, this.opts.packetsHaveRoom === true);
  }

  /**
   * Hands `batch` to one side's handleTunPackets, carries every datagram across (handshake included)
   * and returns what came out of the TUN side of the other.
   */
  send(fromA: boolean, batch: Uint8Array[]): Uint8Array[] {
    this.delivered = [];
    this.handshakeDone = false;
    (fromA ? this.a : this.b).handleTunPackets(batch);
    for (let round = 0; round < 8 && this.wire.length > 0; round++) {
      const wire = this.wire;
      this.wire = [];
      for (const d of wire) d.to.handleDatagram(d.data, d.from);
    }
    this.wire = [];
    const out = this.delivered;
    this.delivered = [];
    return out;
  }

  /**
   * One ping-sized packet through the pair, alternating direction and family, so the code a live
   * packet runs (routing, sealing, opening, replay window, timers: V8's compiled code, its inline
   * caches and the crypto library) is back in the CPU's caches. The pair rekeys on its own when its
   * session ages, like a live peer. Returns whether the packet came out unchanged.
   */
  tick(): boolean {
    const n = this.ticks++;
    const t = (this.templates ??= this.tickTemplates())[n & 3]!;
    // the same packet buffer every time, refilled (sealing in place overwrote it, and the other side
    // opened it in place): nothing to allocate, and nothing holds on to it once send() returns
    new Uint8Array(t.packet.buffer).set(t.buffer);
    const got = this.send((n & 1) === 0, [t.packet]);
    return got.length === 1 && constantTimeEqual(got[0]!, t.bytes);
  }

  /** v4 from A, v4 from B, v6 from A, v6 from B: the packet, its bytes, and its whole buffer as built. */
  private tickTemplates(): { packet: Uint8Array; bytes: Uint8Array; buffer: Uint8Array }[] {
    return [0, 1, 2, 3].map((i) => {
      const packet = this.packet(84, (i & 1) === 0, (i & 2) !== 0, i);
      return { packet, bytes: packet.slice(), buffer: new Uint8Array(packet.buffer).slice() };
    });
  }
}

const defaultYield = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export async function warmUpDataPath(opts: WarmupOptions): Promise<WarmupReport> {
  const started = opts.clock.now();
  const handshakes = opts.handshakes ?? 12;
  const packets = opts.packets ?? 6000;
  const sliceMs = opts.sliceMs ?? 4;
  const yieldFn = opts.yieldFn ?? defaultYield;
  const cancelled = opts.cancelled ?? (() => false);
  const report: WarmupReport = { handshakes: 0, packets: 0, mismatches: 0, elapsedMs: 0, cancelled: false };
  const pair = new WarmPair(opts);

  let sliceStart = opts.clock.now();
  const maybeYield = async (): Promise<boolean> => {
    if (opts.clock.now() - sliceStart < sliceMs) return !cancelled();
    await yieldFn();
    sliceStart = opts.clock.now();
    return !cancelled();
  };

  // Handshakes: a fresh pair each time (a second initiation within REKEY_TIMEOUT would be held back).
  for (let i = 0; i < handshakes; i++) {
    if (!(await maybeYield())) return finish(true);
    if (i > 0) pair.renew();
    const fromA = i % 2 === 0;
    pair.send(fromA, [pair.packet(84, fromA, false, i)]);
    if (pair.handshakeDone) report.handshakes++;
  }

  // Transport packets on the last pair, in batches like the TUN reader's, both ways, v4 and v6.
  const sizes = [84, 1420, 40, 576];
  const batchSize = 16;
  let seq = 0;
  while (report.packets < packets) {
    if (!(await maybeYield())) return finish(true);
    const v6 = seq % 4 === 3;
    const fromA = seq % 2 === 0;
    const size = sizes[seq % sizes.length]!;
    const batch: Uint8Array[] = [];
    for (let k = 0; k < batchSize; k++) batch.push(pair.packet(size, fromA, v6, seq * batchSize + k));
    seq++;
    const expected = batch.map((p) => p.slice());
    const delivered = pair.send(fromA, batch);
    for (let k = 0; k < expected.length; k++) {
      const got = delivered[k];
      if (!got || !constantTimeEqual(got, expected[k]!)) report.mismatches++;
    }
    report.packets += batch.length;
  }
  return finish(false);

  function finish(wasCancelled: boolean): WarmupReport {
    report.cancelled = wasCancelled;
    report.elapsedMs = opts.clock.now() - started;
    return report;
  }
}
