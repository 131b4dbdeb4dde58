/**
 * Sealing in place: with packetsMayHaveRoom, a packet that lies at offset PACKET_HEADROOM of its own
 * buffer with exactly PACKET_TAILROOM after it becomes the datagram itself (no copy); anything else is
 * copied and left untouched. Either way the peer gets the same packet.
 */
import { describe, expect, it } from 'vitest';
import { DeviceCore, type Endpoint } from '../../src/noise/device.js';
import { nodeCrypto } from '../../src/noise/crypto-node.js';
import { nativeCrypto } from '../../src/noise/crypto-native.js';
import { parsePrefix } from '../../src/noise/allowed-ips.js';
import { PACKET_HEADROOM, PACKET_TAILROOM } from '../../src/noise/constants.js';
import { ManualClock, SeededRandom } from '../support/clock.js';

const A: Endpoint = { address: '192.0.2.1', port: 1 };
const B: Endpoint = { address: '192.0.2.2', port: 2 };

function ipv4(size: number, fill: number): Uint8Array {
  const p = new Uint8Array(size).fill(fill);
  p[0] = 0x45;
  p[2] = size >> 8;
  p[3] = size & 0xff;
  p.set([10, 0, 0, 1, 10, 0, 0, 2], 12);
  return p;
}

/** A packet as the TUN reader makes it: a view with zeroed room around it in its own buffer. */
function roomy(packet: Uint8Array): Uint8Array {
  const buf = new ArrayBuffer(packet.length + PACKET_HEADROOM + PACKET_TAILROOM);
  const view = new Uint8Array(buf, PACKET_HEADROOM, packet.length);
  view.set(packet);
  return view;
}

function pair(crypto = nodeCrypto, mtu = 1420) {
  const clock = new ManualClock();
  const random = new SeededRandom(3);
  const wire: { to: 'a' | 'b'; data: Uint8Array }[] = [];
  const sent: Uint8Array[] = [];
  const delivered: Uint8Array[] = [];
  const mk = (self: Endpoint, other: 'a' | 'b', room: boolean) =>
    new DeviceCore({
      crypto,
      clock,
      random,
      mtu,
      packetsMayHaveRoom: room,
      outputs: {
        send: (_to, data) => {
          if (other === 'b') sent.push(data);
          wire.push({ to: other, data });
        },
        deliver: (p) => delivered.push(p.slice()),
        event: () => undefined,
        drop: () => undefined,
      },
    });
  const a = mk(A, 'b', true);
  const b = mk(B, 'a', false);
  a.setPrivateKey(random.fill(new Uint8Array(32)));
  b.setPrivateKey(random.fill(new Uint8Array(32)));
  const pa = a.addPeer(b.getPublicKey()!);
  const pb = b.addPeer(a.getPublicKey()!);
  a.setEndpoint(pa, B);
  b.setEndpoint(pb, A);
  a.allowedIps.insert(parsePrefix('10.0.0.2/32'), pa);
  b.allowedIps.insert(parsePrefix('10.0.0.1/32'), pb);
  const pump = () => {
    while (wire.length > 0) {
      const d = wire.shift()!;
      (d.to === 'a' ? a : b).handleDatagram(d.data.slice(), d.to === 'a' ? B : A);
    }
  };
  // handshake on a first packet (copied: a plain array)
  a.handleTunPackets([ipv4(60, 1)]);
  pump();
  sent.length = 0;
  delivered.length = 0;
  return { a, b, pump, sent, delivered };
}

describe('sealing TUN packets in place', () => {
  for (const crypto of [nodeCrypto, nativeCrypto]) {
    it(`a packet with room becomes its own datagram, and arrives intact (${crypto.name})`, () => {
      const p = pair(crypto);
      for (const size of [20, 21, 84, 100, 1399, 1419, 1420]) {
        const original = ipv4(size, size & 0xff);
        const packet = roomy(original);
        p.a.handleTunPackets([packet]);
        const datagram = p.sent.at(-1)!;
        expect(datagram.buffer, `size ${size}`).toBe(packet.buffer); // no copy
        expect(datagram.byteOffset).toBe(0);
        expect(datagram[0]).toBe(4);
        expect([...datagram.subarray(1, 4)]).toEqual([0, 0, 0]);
        p.pump();
        expect(p.delivered.at(-1), `size ${size}`).toEqual(original);
      }
    });
  }

  it('seals exactly what the copying path seals (same bytes on the wire)', () => {
    const p = pair();
    const q = pair(); // same seeds: same keys, indexes and counters
    for (const size of [20, 33, 500, 1420]) {
      const original = ipv4(size, 7);
      p.a.handleTunPackets([roomy(original)]);
      q.a.handleTunPackets([original.slice()]);
      expect(Buffer.from(p.sent.at(-1)!).equals(Buffer.from(q.sent.at(-1)!)), `size ${size}`).toBe(true);
    }
  });

  it('copies (and leaves untouched) packets without the exact room: other views, other sizes, plain arrays', () => {
    const p = pair();
    const big = new Uint8Array(4096).fill(0xee);
    const original = ipv4(100, 9);
    // at the right offset but in a larger buffer: someone else's bytes lie around it
    const inLarger = big.subarray(PACKET_HEADROOM, PACKET_HEADROOM + 100);
    inLarger.set(original);
    // exact buffer size but another offset
    const shifted = new Uint8Array(new ArrayBuffer(100 + PACKET_HEADROOM + PACKET_TAILROOM), 8, 100);
    shifted.set(original);
    for (const packet of [inLarger, shifted, original.slice()]) {
      const before = Buffer.from(new Uint8Array(packet.buffer)).toString('hex');
      p.a.handleTunPackets([packet]);
      expect(p.sent.at(-1)!.buffer).not.toBe(packet.buffer);
      expect(Buffer.from(new Uint8Array(packet.buffer)).toString('hex')).toBe(before);
      p.pump();
      expect(p.delivered.at(-1)).toEqual(original);
    }
  });

  it('a device without the option never writes around a packet, whatever its shape', () => {
    const p = pair();
    // b has packetsMayHaveRoom false; make b send a roomy-shaped packet back to a
    const back = ipv4(64, 3);
    back.set([10, 0, 0, 2, 10, 0, 0, 1], 12);
    const packet = roomy(back);
    const before = Buffer.from(new Uint8Array(packet.buffer)).toString('hex');
    p.b.handleTunPackets([packet]);
    expect(Buffer.from(new Uint8Array(packet.buffer)).toString('hex')).toBe(before);
  });
});
