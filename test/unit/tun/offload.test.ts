/**
 * TUN offloads in the addon (native/offload.c): TSO frames split into packets with correct headers and
 * checksums, and consecutive TCP segments coalesced into one GSO frame that splits back into the
 * very same packets. Only segments the kernel's own GRO would merge are merged.
 */
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../../src/native.js';
import { internetChecksum } from '../../../src/tun/packets.js';

const native = loadNative();

function sum16(data: Uint8Array): number {
  let s = 0;
  for (let i = 0; i + 1 < data.length; i += 2) s += (data[i]! << 8) | data[i + 1]!;
  if (data.length % 2) s += data[data.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

interface Seg {
  v6?: boolean;
  seq: number;
  payload: Uint8Array;
  flags?: number;
  id?: number;
  srcPort?: number;
  badChecksum?: boolean;
}

/** A TCP segment with a timestamp option (as Linux sends), valid IP and TCP checksums. */
function tcp(s: Seg): Uint8Array {
  const ipLen = s.v6 ? 40 : 20;
  const tcpLen = 32;
  const p = new Uint8Array(ipLen + tcpLen + s.payload.length);
  const dv = new DataView(p.buffer);
  if (s.v6) {
    p[0] = 0x60;
    dv.setUint16(4, tcpLen + s.payload.length);
    p[6] = 6;
    p[7] = 64;
    p.set([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 8);
    p.set([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], 24);
  } else {
    p[0] = 0x45;
    dv.setUint16(2, p.length);
    dv.setUint16(4, s.id ?? 1000);
    dv.setUint16(6, 0x4000);
    p[8] = 64;
    p[9] = 6;
    p.set([10, 0, 0, 1, 10, 0, 0, 2], 12);
    dv.setUint16(10, internetChecksum(p.subarray(0, 20)));
  }
  const t = ipLen;
  dv.setUint16(t, s.srcPort ?? 40000);
  dv.setUint16(t + 2, 5201);
  dv.setUint32(t + 4, s.seq >>> 0);
  dv.setUint32(t + 8, 777);
  p[t + 12] = (tcpLen / 4) << 4;
  p[t + 13] = s.flags ?? 0x10;
  dv.setUint16(t + 14, 512);
  p.set([1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7], t + 20); // NOP NOP TS
  p.set(s.payload, ipLen + tcpLen);
  // checksum over pseudo header + segment
  const l4 = p.subarray(t);
  const pseudo = new Uint8Array(s.v6 ? 40 : 12);
  if (s.v6) {
    pseudo.set(p.subarray(8, 40), 0);
    new DataView(pseudo.buffer).setUint32(32, l4.length);
    pseudo[39] = 6;
  } else {
    pseudo.set(p.subarray(12, 20), 0);
    pseudo[9] = 6;
    new DataView(pseudo.buffer).setUint16(10, l4.length);
  }
  let sum = sum16(pseudo) + sum16(l4);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  dv.setUint16(t + 16, (~sum & 0xffff) ^ (s.badChecksum ? 1 : 0));
  return p;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function flow(n: number, mss: number, opts: Partial<Seg> = {}): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => tcp({ seq: 5000 + i * mss, payload: new Uint8Array(mss).fill(i + 1), id: 1000 + i, ...opts }));
}

describe('TUN offload: coalesce and split', () => {
  for (const v6 of [false, true]) {
    it(`coalesces 10 consecutive IPv${v6 ? 6 : 4} segments into one GSO frame that splits back exactly`, () => {
      const pkts = flow(10, 1000, { v6 });
      const frames = native.offloadCoalesce(pkts);
      expect(frames).toHaveLength(1);
      const f = frames[0]!;
      expect(Object.getPrototypeOf(f)).toBe(Uint8Array.prototype); // a plain Uint8Array, not a Buffer
      const u16 = (off: number): number => f[off]! | (f[off + 1]! << 8);
      expect(f[0]).toBe(1); // NEEDS_CSUM
      expect(f[1]).toBe(v6 ? 4 : 1); // TCPV6 / TCPV4
      expect(u16(2)).toBe((v6 ? 40 : 20) + 32); // hdr_len
      expect(u16(4)).toBe(1000); // gso_size
      expect(u16(6)).toBe(v6 ? 40 : 20); // csum_start
      expect(u16(8)).toBe(16); // csum_offset
      expect(f.length).toBe(10 + (v6 ? 40 : 20) + 32 + 10_000);
      const back = native.offloadSplit(f)!;
      expect(back.map(hex)).toEqual(pkts.map(hex));
    });
  }

  it('keeps a short last segment and a PSH on the last one, and stops after it', () => {
    const pkts = [...flow(3, 1000), tcp({ seq: 8000, payload: new Uint8Array(300).fill(9), id: 1003, flags: 0x18 }), tcp({ seq: 8300, payload: new Uint8Array(1000), id: 1004 })];
    const frames = native.offloadCoalesce(pkts);
    expect(frames).toHaveLength(2);
    expect(native.offloadSplit(frames[0]!)!.map(hex)).toEqual(pkts.slice(0, 4).map(hex));
    expect(frames[1]![1]).toBe(0); // a lone packet: no GSO
    expect(hex(frames[1]!.subarray(10))).toBe(hex(pkts[4]!));
  });

  it('does not merge across a sequence gap, another flow, a bad checksum, a pure ACK or a SYN', () => {
    const base = flow(2, 1000);
    const gap = tcp({ seq: 5000 + 3000, payload: new Uint8Array(1000), id: 1002 });
    expect(native.offloadCoalesce([...base, gap])).toHaveLength(2);
    const other = tcp({ seq: 7000, payload: new Uint8Array(1000), srcPort: 40001 });
    expect(native.offloadCoalesce([...base, other])).toHaveLength(2);
    const bad = tcp({ seq: 7000, payload: new Uint8Array(1000), badChecksum: true });
    expect(native.offloadCoalesce([...base, bad])).toHaveLength(2);
    const ack = tcp({ seq: 5000, payload: new Uint8Array(0) });
    expect(native.offloadCoalesce([ack, ack])).toHaveLength(2);
    const syn = tcp({ seq: 5000, payload: new Uint8Array(10), flags: 0x02 });
    expect(native.offloadCoalesce([syn, tcp({ seq: 5010, payload: new Uint8Array(10) })])).toHaveLength(2);
    const bigger = tcp({ seq: 7000, payload: new Uint8Array(1200), id: 1002 });
    expect(native.offloadCoalesce([...base, bigger])).toHaveLength(2);
  });

  it('never builds a frame over 65535 bytes', () => {
    const frames = native.offloadCoalesce(flow(100, 1400));
    for (const f of frames) expect(f.length - 10).toBeLessThanOrEqual(65535);
    expect(frames.flatMap((f) => native.offloadSplit(f)!).length).toBe(100);
  });

  it('completes a partial UDP checksum on a frame without GSO', () => {
    const udp = new Uint8Array(20 + 8 + 5);
    const dv = new DataView(udp.buffer);
    udp[0] = 0x45;
    dv.setUint16(2, udp.length);
    udp[8] = 64;
    udp[9] = 17;
    udp.set([10, 0, 0, 1, 10, 0, 0, 2], 12);
    dv.setUint16(10, internetChecksum(udp.subarray(0, 20)));
    dv.setUint16(20, 1111);
    dv.setUint16(22, 2222);
    dv.setUint16(24, 13);
    udp.set([1, 2, 3, 4, 5], 28);
    // the kernel leaves the pseudo-header sum in the checksum field
    const pseudo = new Uint8Array([10, 0, 0, 1, 10, 0, 0, 2, 0, 17, 0, 13]);
    dv.setUint16(26, sum16(pseudo));
    const frame = new Uint8Array(10 + udp.length);
    frame[0] = 1;
    new DataView(frame.buffer).setUint16(6, 20, true);
    new DataView(frame.buffer).setUint16(8, 6, true);
    frame.set(udp, 10);
    const [out] = native.offloadSplit(frame)!;
    // a valid UDP checksum: pseudo header + datagram (checksum included) sums to 0xffff
    let total = sum16(pseudo) + sum16(out!.subarray(20));
    while (total > 0xffff) total = (total & 0xffff) + (total >>> 16);
    expect(total).toBe(0xffff);
    expect(hex(out!.subarray(28))).toBe('0102030405');
  });

  it('refuses malformed frames', () => {
    expect(native.offloadSplit(new Uint8Array(5))).toBeNull();
    const f = native.offloadCoalesce(flow(3, 1000))[0]!;
    const broken = Buffer.from(f);
    broken[1] = 3; // UDP GSO: not enabled, not handled
    expect(native.offloadSplit(broken)).toBeNull();
    const noMss = Buffer.from(f);
    noMss.writeUInt16LE(0, 4);
    expect(native.offloadSplit(noMss)).toBeNull();
  });
});
