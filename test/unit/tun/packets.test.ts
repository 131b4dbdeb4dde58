import { SocketAddress } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  buildEchoReplyFor,
  buildIcmpEcho,
  buildUdpPacket,
  bytesToIp,
  internetChecksum,
  ipDst,
  ipSrc,
  ipToBytes,
  ipTotalLength,
  ipv4Dst,
  ipv4Src,
  ipv6Dst,
  ipv6Src,
  ipVersion,
  parseIcmpEcho,
} from '../../../src/tun/packets.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const ascii = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'ascii'));

// Expected bytes were worked out by hand (RFC 1071 sums written out in the comments) and cross-checked
// with an independent Python encoder whose pcap tcpdump -vv reports as "sum ok".
const ICMP4_REQUEST =
  '45000020 00000000 4001 66db 0a000001 0a000002' + // IPv4 header: sum 0x9924 -> checksum 0x66db
  '0800 2104 1234 0001 61626364'; // ICMP echo: 0800+1234+0001+6162+6364 = 0xdefb -> 0x2104
const ICMP6_REQUEST =
  '60000000 000c 3a 40 fd000000000000000000000000000001 fd000000000000000000000000000002' +
  '8000 aeb8 1234 0001 61626364'; // pseudo-header (len 12, nh 58) + message: 0x35144 -> 0x5147 -> 0xaeb8
const UDP4 = '4500001e 00000000 4011 66cd 0a000001 0a000002 04d2 162e 000a 686e 6869'; // 0x9791 -> 0x686e
const UDP6 =
  '60000000 000a 11 40 fd000000000000000000000000000001 fd000000000000000000000000000002 04d2 162e 000a 826c 6869';

describe('internetChecksum (RFC 1071)', () => {
  it('gives the textbook IPv4 header checksum 0xb861', () => {
    const header = unhex('4500 0073 0000 4000 4011 0000 c0a8 0001 c0a8 00c7');
    expect(internetChecksum(header)).toBe(0xb861);
    header[10] = 0xb8;
    header[11] = 0x61;
    expect(internetChecksum(header)).toBe(0); // a correct header sums to zero
  });

  it('pads an odd trailing byte with zero', () => {
    expect(internetChecksum(unhex('0102 03'))).toBe(~(0x0102 + 0x0300) & 0xffff);
  });

  it('folds carries', () => {
    expect(internetChecksum(unhex('ffff ffff 0001'))).toBe(0xfffe);
  });
});

describe('buildIcmpEcho', () => {
  it('builds an IPv4 echo request byte for byte', () => {
    const p = buildIcmpEcho({ src: '10.0.0.1', dst: '10.0.0.2', id: 0x1234, seq: 1, payload: ascii('abcd') });
    expect(hex(p)).toBe(ICMP4_REQUEST.replace(/\s+/g, ''));
  });

  it('builds an ICMPv6 echo request with the pseudo-header checksum', () => {
    const p = buildIcmpEcho({ src: 'fd00::1', dst: 'fd00::2', id: 0x1234, seq: 1, payload: ascii('abcd') });
    expect(hex(p)).toBe(ICMP6_REQUEST.replace(/\s+/g, ''));
  });

  it('builds replies with type 0 / 129 and a checksum that still verifies', () => {
    const r4 = buildIcmpEcho({ src: '10.0.0.2', dst: '10.0.0.1', id: 7, seq: 9, reply: true, payload: ascii('xyz') });
    expect(r4[20]).toBe(0);
    expect(internetChecksum(r4.subarray(20))).toBe(0);
    const r6 = buildIcmpEcho({ src: 'fd00::2', dst: 'fd00::1', id: 7, seq: 9, reply: true });
    expect(r6[40]).toBe(129);
    expect(parseIcmpEcho(r6)).toMatchObject({ kind: 'reply', id: 7, seq: 9, checksumOk: true });
  });

  it('accepts byte addresses and rejects mixed families and bad fields', () => {
    const p = buildIcmpEcho({ src: unhex('0a000001'), dst: unhex('0a000002'), id: 0x1234, seq: 1, payload: ascii('abcd') });
    expect(hex(p)).toBe(ICMP4_REQUEST.replace(/\s+/g, ''));
    expect(() => buildIcmpEcho({ src: '10.0.0.1', dst: 'fd00::1', id: 1, seq: 1 })).toThrow(/same IP version/);
    expect(() => buildIcmpEcho({ src: '10.0.0.1', dst: '10.0.0.2', id: 70000, seq: 1 })).toThrow(/id: 70000/);
    expect(() => buildIcmpEcho({ src: 'example.com', dst: '10.0.0.2', id: 1, seq: 1 })).toThrow(/src: "example.com"/);
  });
});

describe('buildUdpPacket', () => {
  it('builds IPv4 and IPv6 UDP byte for byte', () => {
    expect(hex(buildUdpPacket({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 1234, dstPort: 5678, payload: ascii('hi') }))).toBe(UDP4.replace(/\s+/g, ''));
    expect(hex(buildUdpPacket({ src: 'fd00::1', dst: 'fd00::2', srcPort: 1234, dstPort: 5678, payload: ascii('hi') }))).toBe(UDP6.replace(/\s+/g, ''));
  });

  it('never sends a zero UDP checksum (0 is written as 0xffff)', () => {
    // choose a payload that makes the computed checksum 0: the sum of everything else must be 0xffff
    const base = buildUdpPacket({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 1, dstPort: 2, payload: new Uint8Array(2) });
    const csum = (base[26]! << 8) | base[27]!; // checksum with a 0000 payload word
    const word = csum; // adding `csum` to the sum makes it 0xffff, so the complement is 0
    const p = buildUdpPacket({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 1, dstPort: 2, payload: new Uint8Array([word >> 8, word & 0xff]) });
    expect((p[26]! << 8) | p[27]!).toBe(0xffff);
  });
});

describe('peeking', () => {
  const v4 = unhex(ICMP4_REQUEST);
  const v6 = unhex(ICMP6_REQUEST);

  it('reads the version', () => {
    expect(ipVersion(v4)).toBe(4);
    expect(ipVersion(v6)).toBe(6);
    expect(ipVersion(new Uint8Array(0))).toBe(0);
  });

  it('returns source and destination views', () => {
    expect(bytesToIp(ipv4Src(v4))).toBe('10.0.0.1');
    expect(bytesToIp(ipv4Dst(v4))).toBe('10.0.0.2');
    expect(bytesToIp(ipv6Src(v6))).toBe('fd00::1');
    expect(bytesToIp(ipv6Dst(v6))).toBe('fd00::2');
    expect(ipSrc(v4)).toEqual(ipToBytes('10.0.0.1'));
    expect(ipDst(v6)).toEqual(ipToBytes('fd00::2'));
    // views, not copies
    expect(ipv4Dst(v4).buffer).toBe(v4.buffer);
  });

  it('rejects truncated headers', () => {
    expect(() => ipv4Src(v4.subarray(0, 19))).toThrow(RangeError);
    expect(() => ipv6Dst(v6.subarray(0, 39))).toThrow(/shorter than 40/);
    expect(ipSrc(v4.subarray(0, 19))).toBeUndefined();
    expect(ipDst(unhex('50'))).toBeUndefined();
  });

  it('reads the total length, so padding can be trimmed', () => {
    expect(ipTotalLength(v4)).toBe(32);
    expect(ipTotalLength(v6)).toBe(52);
    const padded = new Uint8Array(64);
    padded.set(v4);
    expect(ipTotalLength(padded)).toBe(32);
    expect(ipTotalLength(unhex('00'))).toBeUndefined();
    expect(ipTotalLength(v6.subarray(0, 20))).toBeUndefined();
  });
});

describe('parseIcmpEcho and buildEchoReplyFor', () => {
  it('parses requests and reports checksum validity', () => {
    const echo = parseIcmpEcho(unhex(ICMP4_REQUEST));
    expect(echo).toEqual({ version: 4, src: '10.0.0.1', dst: '10.0.0.2', kind: 'request', id: 0x1234, seq: 1, ttl: 64, payload: ascii('abcd'), checksumOk: true });
    const broken = unhex(ICMP6_REQUEST);
    broken[broken.length - 1] = broken[broken.length - 1]! ^ 1;
    expect(parseIcmpEcho(broken)?.checksumOk).toBe(false);
    expect(parseIcmpEcho(unhex(UDP4))).toBeUndefined();
  });

  it('answers a request the way a host would', () => {
    for (const req of [unhex(ICMP4_REQUEST), unhex(ICMP6_REQUEST)]) {
      const reply = buildEchoReplyFor(req);
      const parsed = parseIcmpEcho(reply!);
      expect(parsed).toMatchObject({ kind: 'reply', id: 0x1234, seq: 1, checksumOk: true });
      expect(parsed?.src).toBe(parseIcmpEcho(req)?.dst);
      expect(parsed?.dst).toBe(parseIcmpEcho(req)?.src);
    }
    expect(buildEchoReplyFor(buildEchoReplyFor(unhex(ICMP4_REQUEST))!)).toBeUndefined();
  });
});

describe('address text', () => {
  it.each([
    ['fd00::1', 'fd00::1'],
    ['FD00:0:0:0:0:0:0:1', 'fd00::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // first of two equal runs
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'], // the longer run, not the first
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not compressed
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['::ffff:10.1.2.3', '::ffff:10.1.2.3'],
    ['::1.2.3.4', '::102:304'], // IPv4-compatible (deprecated) is plain hex
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
  ])('%s → %s', (input, canonical) => {
    expect(bytesToIp(ipToBytes(input))).toBe(canonical);
  });

  it('agrees with the kernel-style inet_ntop text and round-trips (random addresses)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 8 }), (raw, zeroAt, zeroLen) => {
        const bytes = raw.slice();
        bytes.fill(0, zeroAt * 2, Math.min(16, (zeroAt + zeroLen) * 2)); // make zero runs common
        const text = bytesToIp(bytes);
        expect(ipToBytes(text)).toEqual(bytes);
        const compat = bytes.subarray(0, 12).every((b) => b === 0); // glibc prints ::a.b.c.d there
        if (!compat) expect(text).toBe(new SocketAddress({ address: text, family: 'ipv6' }).address);
      }),
      { numRuns: 500 },
    );
  });

  it('rejects non-numeric text and wrong byte counts', () => {
    expect(() => ipToBytes('fe80::1%eth0')).toThrow(/not a numeric/);
    expect(() => ipToBytes('1.2.3', 'src')).toThrow('src: "1.2.3" is not a numeric IPv4 or IPv6 address');
    expect(() => bytesToIp(new Uint8Array(5))).toThrow(/expected 4 or 16 bytes, got 5/);
  });
});
