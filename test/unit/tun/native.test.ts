/**
 * The addon's poll-driven reader and argument checking, unprivileged: a FIFO stands in for the TUN fd
 * (a read() returns one "packet" of at most bufSize bytes), so batching, stop and the error report
 * can be checked without root. TUN itself is exercised in test/netns/tun.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadNative, nativeAddonCandidates, type NativeError } from '../../../src/native.js';
import { PACKET_HEADROOM, PACKET_TAILROOM } from '../../../src/noise/constants.js';

const native = loadNative();
let dir: string;
let fifo: string;
const fds: number[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kst-native-'));
  fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
});
afterEach(() => {
  for (const fd of fds.splice(0)) {
    try {
      closeSync(fd);
    } catch {
      /* closed by the test */
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

function pipePair(): { reader: number; writer: number } {
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writer = openSync(fifo, constants.O_WRONLY);
  fds.push(reader, writer);
  return { reader, writer };
}

type Event = { packets: Uint8Array[] } | { err: NativeError | undefined };

function startReader(fd: number, maxBatch: number, bufSize: number, room = false): { events: Event[]; handle: ReturnType<typeof native.tunReaderStart>; next(): Promise<void> } {
  const events: Event[] = [];
  let wake: (() => void) | undefined;
  const handle = native.tunReaderStart(
    fd,
    maxBatch,
    bufSize,
    (packets, err) => {
      events.push(packets ? { packets } : { err });
      wake?.();
    },
    false,
    room,
  );
  return { events, handle, next: () => new Promise<void>((r) => (wake = r)) };
}

describe('tunReaderStart / tunReaderStop', () => {
  it('reads until EAGAIN or maxBatch, one callback per batch', async () => {
    const { reader, writer } = pipePair();
    for (let i = 0; i < 10; i++) writeSync(writer, Buffer.alloc(100, i)); // 1000 bytes queued
    const r = startReader(reader, 4, 100); // 100-byte reads: ten "packets"
    while (r.events.reduce((n, e) => n + ('packets' in e ? e.packets.length : 0), 0) < 10) await r.next();
    const sizes = r.events.map((e) => ('packets' in e ? e.packets.length : -1));
    expect(sizes).toEqual([4, 4, 2]);
    const firstBytes = r.events.flatMap((e) => ('packets' in e ? e.packets.map((p) => p[0]) : []));
    expect(firstBytes).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // plain Uint8Arrays (not Buffers), each over its own ArrayBuffer: one object map on the data path
    expect(
      r.events.every((e) => 'packets' in e && e.packets.every((p) => Object.getPrototypeOf(p) === Uint8Array.prototype && p.length === 100 && p.byteOffset === 0 && p.buffer.byteLength === 100)),
    ).toBe(true);
    native.tunReaderStop(r.handle);
    native.tunReaderStop(r.handle); // idempotent
  });

  it('with room: each packet is a view at offset 16 of its own zeroed buffer, 31 bytes left after it', async () => {
    const { reader, writer } = pipePair();
    for (let i = 0; i < 3; i++) writeSync(writer, Buffer.alloc(100, 0xa0 + i));
    const r = startReader(reader, 8, 100, true);
    while (r.events.reduce((n, e) => n + ('packets' in e ? e.packets.length : 0), 0) < 3) await r.next();
    const packets = r.events.flatMap((e) => ('packets' in e ? e.packets : []));
    expect(packets).toHaveLength(3);
    for (const [i, p] of packets.entries()) {
      expect(p).toBeInstanceOf(Uint8Array);
      expect(p.length).toBe(100);
      expect(p.byteOffset).toBe(PACKET_HEADROOM);
      expect(p.buffer.byteLength).toBe(100 + PACKET_HEADROOM + PACKET_TAILROOM);
      expect(p.every((b) => b === 0xa0 + i)).toBe(true);
      const all = new Uint8Array(p.buffer);
      expect(all.subarray(0, PACKET_HEADROOM).every((b) => b === 0)).toBe(true);
      expect(all.subarray(PACKET_HEADROOM + 100).every((b) => b === 0)).toBe(true);
      if (i > 0) expect(p.buffer).not.toBe(packets[i - 1]!.buffer); // each packet owns its buffer
    }
    native.tunReaderStop(r.handle);
  });

  it('reports a read error (EOF on a FIFO, like a dead TUN) once as cb(null, err) and stops', async () => {
    const { reader, writer } = pipePair();
    const r = startReader(reader, 8, 256);
    writeSync(writer, 'last words');
    closeSync(writer); // EOF after the data
    while (!r.events.some((e) => 'err' in e)) await r.next();
    expect(r.events[0]).toEqual({ packets: [new Uint8Array(Buffer.from('last words'))] });
    const last = r.events.at(-1) as { err: NativeError };
    expect(last.err).toBeInstanceOf(Error);
    expect(last.err.code).toBe('EIO');
    expect(last.err.syscall).toBe('read');
    expect(last.err.message).toMatch(/^TUN fd \d+ read failed: Input\/output error \(EIO\)$/);
    await new Promise((res) => setTimeout(res, 50));
    expect(r.events.filter((e) => 'err' in e)).toHaveLength(1);
    native.tunReaderStop(r.handle); // after the error: harmless
  });

  it('stops delivering after tunReaderStop, also when called inside the callback', async () => {
    const { reader, writer } = pipePair();
    const seen: number[] = [];
    const handle = native.tunReaderStart(reader, 1, 64, (packets) => {
      seen.push(packets![0]![0]!);
      native.tunReaderStop(handle);
    });
    writeSync(writer, Buffer.concat([Buffer.alloc(64, 1), Buffer.alloc(64, 2)])); // two 64-byte reads
    await new Promise((res) => setTimeout(res, 100));
    expect(seen).toEqual([1]);
  });

  it('refuses a second reader on the same fd and bad arguments, naming the argument', () => {
    const { reader } = pipePair();
    const r = startReader(reader, 4, 100);
    expect(() => native.tunReaderStart(reader, 4, 100, () => undefined)).toThrow(/tunReaderStart fd \d+: uv_poll_init failed: .*EEXIST/);
    native.tunReaderStop(r.handle);
    expect(() => native.tunReaderStart(reader, 0, 100, () => undefined)).toThrow('tunReaderStart: maxBatch must be an integer in [1, 4096], got 0');
    expect(() => native.tunReaderStart(reader, 4, 10, () => undefined)).toThrow(/bufSize must be an integer in \[64, 1048576\], got 10/);
    expect(() => native.tunReaderStart(reader, 4, 100, 'nope' as never)).toThrow('tunReaderStart: callback must be a function');
    expect(() => native.tunReaderStart(-1, 4, 100, () => undefined)).toThrow(/fd must be an integer/);
    expect(() => native.tunReaderStop({} as never)).toThrow('tunReaderStop: handle must come from tunReaderStart');
  });
});

describe('writes, close and socket options', () => {
  it('tunWrite returns bytes or -errno, never throws for I/O; tunWriteBatch counts', () => {
    const { reader, writer } = pipePair();
    expect(native.tunWrite(writer, new Uint8Array([1, 2, 3]))).toBe(3);
    expect(native.tunWrite(writer, Buffer.from('ab').subarray(1))).toBe(1); // views are honoured
    expect(native.tunWrite(reader, new Uint8Array(1))).toBe(-9); // EBADF: not open for writing
    expect(native.tunWriteBatch(writer, [new Uint8Array(2), new Uint8Array(5)])).toBe(2);
    expect(native.tunWriteBatch(reader, [new Uint8Array(2)])).toBe(0);
    expect(() => native.tunWrite(writer, 'text' as never)).toThrow('tunWrite: packet must be a Buffer or Uint8Array');
    expect(() => native.tunWriteBatch(writer, new Uint8Array(1) as never)).toThrow('tunWriteBatch: packets must be an array');
  });

  it('closeFd closes and reports errno text', () => {
    const { writer } = pipePair();
    native.closeFd(writer);
    expect(() => native.closeFd(writer)).toThrow(/^closeFd fd \d+: close failed: Bad file descriptor \(EBADF\)$/);
    try {
      native.closeFd(writer);
    } catch (err) {
      expect(err).toMatchObject({ code: 'EBADF', errno: -9, syscall: 'close' });
    }
  });

  it('setSocketMark/getSocketMark refuse non-sockets with ENOTSOCK', () => {
    const { reader } = pipePair();
    expect(() => native.getSocketMark(reader)).toThrow(/getSocketMark fd \d+: getsockopt SO_MARK failed: Socket operation on non-socket \(ENOTSOCK\)/);
    expect(() => native.setSocketMark(reader, 1)).toThrow(/setsockopt SO_MARK=0x1 failed: .*ENOTSOCK/);
    expect(() => native.setSocketMark(reader, 2 ** 32)).toThrow(/mark must be an integer in \[0, 4294967295\]/);
  });

  it('tunOpen rejects names the kernel cannot take, and a non-TUN fd has no TUN name', () => {
    expect(() => native.tunOpen('kst-name-too-long0')).toThrow('tunOpen: interface name "kst-name-too-long0" is longer than 15 bytes');
    expect(() => native.tunOpen(7 as never)).toThrow('tunOpen: name must be a string');
    const { reader } = pipePair();
    expect(() => native.tunGetName(reader)).toThrow(/tunGetName fd \d+: ioctl TUNGETIFF failed/);
  });
});

describe('loader', () => {
  it('looks in the env override first, then build/Release upwards', () => {
    const before = process.env.KUBESPAND_NATIVE_ADDON;
    process.env.KUBESPAND_NATIVE_ADDON = '/opt/x.node';
    try {
      const c = nativeAddonCandidates('/a/b/src');
      expect(c[0]).toBe('/opt/x.node');
      expect(c).toContain('/a/b/src/build/Release/kubespand_native.node');
      expect(c).toContain('/a/b/build/Release/kubespand_native.node');
    } finally {
      if (before === undefined) delete process.env.KUBESPAND_NATIVE_ADDON;
      else process.env.KUBESPAND_NATIVE_ADDON = before;
    }
  });
});
