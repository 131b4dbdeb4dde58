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

/** A UDP packet of `size` bytes (at least the headers) from one side of the pair to the other. */
function packet(size: number, fromA: boolean, v6: boolean, seq: number): Uint8Array {
  const [addrA, addrB] = v6 ? ADDRESSES.v6 : ADDRESSES.v4;
  const headers = (v6 ? 40 : 20) + 8;
  const payload = new Uint8Array(Math.max(0, size - headers)).fill(seq & 0xff);
  return buildUdpPacket({ src: fromA ? addrA : addrB, dst: fromA ? addrB : addrA, srcPort: 1024 + (seq & 0x7fff), dstPort: 9, payload });
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

  let wire: { to: DeviceCore; from: Endpoint; data: Uint8Array }[] = [];
  let delivered: Uint8Array[] = [];
  let handshakeDone = false;
  const mk = (self: Endpoint, other: () => DeviceCore): DeviceCore =>
    new DeviceCore({
      crypto: opts.crypto,
      clock: opts.clock,
      random: opts.random,
      mtu: opts.mtu,
      outputs: {
        send: (_to, data) => wire.push({ to: other(), from: self, data }),
        deliver: (packet) => delivered.push(packet),
        event: (e) => {
          if (e.kind === 'handshake-complete') handshakeDone = true;
        },
        drop: () => undefined,
      },
    });
  let a!: DeviceCore;
  let b!: DeviceCore;
  const pump = (): void => {
    for (let round = 0; round < 8 && wire.length > 0; round++) {
      const batch = wire;
      wire = [];
      for (const d of batch) d.to.handleDatagram(d.data, d.from);
    }
  };
  const newPair = (): void => {
    a = mk(EP_A, () => b);
    b = mk(EP_B, () => a);
    a.setPrivateKey(generatePrivateKey(opts.random));
    b.setPrivateKey(generatePrivateKey(opts.random));
    const pa = a.addPeer(b.getPublicKey()!);
    const pb = b.addPeer(a.getPublicKey()!);
    a.setEndpoint(pa, EP_B);
    b.setEndpoint(pb, EP_A);
    a.allowedIps.insert(parsePrefix(`${ADDRESSES.v4[1]}/32`), pa);
    a.allowedIps.insert(parsePrefix(`${ADDRESSES.v6[1]}/128`), pa);
    b.allowedIps.insert(parsePrefix(`${ADDRESSES.v4[0]}/32`), pb);
    b.allowedIps.insert(parsePrefix(`${ADDRESSES.v6[0]}/128`), pb);
  };

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
    newPair();
    handshakeDone = false;
    delivered = [];
    const fromA = i % 2 === 0;
    (fromA ? a : b).handleTunPackets([packet(84, fromA, false, i)]);
    pump();
    if (handshakeDone) report.handshakes++;
  }
  if (!a) newPair();

  // Transport packets on the last pair, in batches like the TUN reader's, both ways, v4 and v6.
  const sizes = [84, 1420, 40, 576];
  const batchSize = 16;
  let seq = 0;
  while (report.packets < packets) {
    if (!(await maybeYield())) return finish(true);
    const v6 = seq % 4 === 3;
    const fromA = seq % 2 === 0;
    const size = Math.min(sizes[seq % sizes.length]!, opts.mtu);
    const batch: Uint8Array[] = [];
    for (let k = 0; k < batchSize; k++) {
      const s = seq * batchSize + k;
      batch.push(packet(size, fromA, v6, s));
    }
    seq++;
    const expected = batch.map((p) => p.slice());
    delivered = [];
    (fromA ? a : b).handleTunPackets(batch);
    pump();
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
    wire = [];
    delivered = [];
    return report;
  }
}
