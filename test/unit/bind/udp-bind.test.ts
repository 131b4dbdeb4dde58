import * as dgram from 'node:dgram';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Datagram, Endpoint } from '../../../src/bind/bind.js';
import { UdpBind, socketFd } from '../../../src/bind/udp-bind.js';
import { loadNative } from '../../../src/native.js';

// Loopback only: the binds listen on 127.0.0.1 and ::1, never on the wildcard addresses.
const opened: UdpBind[] = [];
// every behaviour is checked with both receive paths: the native recvmmsg reader (default) and dgram alone
let nativeReceive = true;
function loopbackBind(): UdpBind {
  const b = new UdpBind({ address4: '127.0.0.1', address6: '::1', nativeReceive });
  opened.push(b);
  return b;
}
afterEach(async () => {
  await Promise.all(opened.splice(0).map((b) => b.close()));
});

function collect(bind: UdpBind): { batches: Datagram[][]; next(count: number, timeoutMs?: number): Promise<Datagram[]> } {
  const batches: Datagram[][] = [];
  const all: Datagram[] = [];
  const waiters: (() => void)[] = [];
  bind.onDatagrams((batch) => {
    batches.push(batch);
    all.push(...batch);
    waiters.splice(0).forEach((w) => w());
  });
  return {
    batches,
    next: async (count, timeoutMs = 3000) => {
      const deadline = Date.now() + timeoutMs;
      while (all.length < count) {
        if (Date.now() > deadline) throw new Error(`only ${all.length} of ${count} datagrams arrived`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 50);
        });
      }
      return all.splice(0, count);
    },
  };
}

const text = (d: Datagram): string => Buffer.from(d.data).toString();

for (const native of [true, false]) describe(`UdpBind on loopback (${native ? 'native recvmmsg reader' : 'dgram receiver'})`, () => {
  beforeEach(() => {
    nativeReceive = native;
  });

  it('receives through the path it was asked for, and counts what came which way', async () => {
    const a = loopbackBind();
    const b = loopbackBind();
    await a.open(0);
    const portB = await b.open(0);
    expect(b.receivePath).toBe(native ? 'native' : 'dgram');
    const atB = collect(b);
    for (let i = 0; i < 20; i++) a.send({ address: i % 2 ? '::1' : '127.0.0.1', port: portB }, Buffer.from(`d${i}`));
    const got = await atB.next(20);
    expect(got.map(text).sort()).toEqual([...Array(20).keys()].map((i) => `d${i}`).sort());
    // either path hands the core plain Uint8Arrays, never Buffers (one object map on the data path)
    expect(got.every((d) => Object.getPrototypeOf(d.data) === Uint8Array.prototype)).toBe(true);
    expect(b.stats.received).toBe(20);
    // dgram's own receiver is stopped while the native reader runs: every datagram comes one way
    expect(b.stats.receivedNative).toBe(native ? 20 : 0);
  });

  it('opens both families on one kernel-picked port', async () => {
    const b = loopbackBind();
    const port = await b.open(0);
    expect(port).toBeGreaterThan(0);
    expect(b.port).toBe(port);
    expect(b.families).toEqual({ v4: true, v6: true });
    const fds = b.socketFds();
    expect(fds.v4).toBeGreaterThan(2);
    expect(fds.v6).toBeGreaterThan(2);
    expect(fds.v4).not.toBe(fds.v6);
  });

  it('two binds talk over IPv4 and IPv6, sources normalised', async () => {
    const a = loopbackBind();
    const b = loopbackBind();
    const portA = await a.open(0);
    const portB = await b.open(0);
    const atB = collect(b);
    const atA = collect(a);
    a.send({ address: '127.0.0.1', port: portB }, Buffer.from('hello v4'));
    a.send({ address: '::1', port: portB }, new TextEncoder().encode('hello v6'));
    const got = await atB.next(2);
    const byText = new Map(got.map((d) => [text(d), d.from]));
    expect(byText.get('hello v4')).toEqual({ address: '127.0.0.1', port: portA });
    expect(byText.get('hello v6')).toEqual({ address: '::1', port: portA });
    // answer to where it came from
    for (const d of got) b.send(d.from, Buffer.from(`re: ${text(d)}`));
    expect((await atA.next(2)).map(text).sort()).toEqual(['re: hello v4', 're: hello v6']);
    expect(a.stats.sent).toBe(2);
    expect(b.stats.received).toBe(2);
  });

  it('delivers a burst as few batches', async () => {
    const a = loopbackBind();
    const b = loopbackBind();
    await a.open(0);
    const portB = await b.open(0);
    const atB = collect(b);
    const n = 200;
    // send from a plain socket in one synchronous loop so the burst is queued before the loop turns
    const raw = dgram.createSocket('udp4');
    await new Promise<void>((r) => raw.bind(0, '127.0.0.1', () => r()));
    try {
      for (let i = 0; i < n; i++) raw.send(Buffer.from(String(i)), portB, '127.0.0.1');
      const got = await atB.next(n);
      expect(got.map(text)).toEqual([...Array(n).keys()].map(String)); // loopback keeps order
      expect(atB.batches.length).toBeLessThan(n / 4);
      expect(Math.max(...atB.batches.map((x) => x.length))).toBeGreaterThan(1);
    } finally {
      raw.close();
    }
  });

  it('rebinds to a new port (listen_port change) and keeps working; the old port is released', async () => {
    const a = loopbackBind();
    const b = loopbackBind();
    await a.open(0);
    const first = await b.open(0);
    const atB = collect(b);
    expect(await b.open(first)).toBe(first); // same port: no-op
    const second = await b.open(0);
    expect(second).not.toBe(first);
    expect(b.port).toBe(second);
    a.send({ address: '127.0.0.1', port: second }, Buffer.from('after rebind'));
    expect((await atB.next(1)).map(text)).toEqual(['after rebind']);
    // the first port is free again: another bind can take it
    const c = loopbackBind();
    expect(await c.open(first)).toBe(first);
  });

  it('reports a taken port clearly and keeps the old binding', async () => {
    const a = loopbackBind();
    const b = loopbackBind();
    const portA = await a.open(0);
    const portB = await b.open(0);
    await expect(b.open(portA)).rejects.toThrow(`udp bind: listen_port ${portA}: port already in use`);
    expect(b.port).toBe(portB);
    await expect(b.open(70000)).rejects.toThrow('listen_port: 70000 is not an integer in [0, 65535]');
  });

  it('counts send errors instead of throwing', async () => {
    const a = new UdpBind({ address4: '127.0.0.1', address6: null });
    opened.push(a);
    await a.open(0);
    expect(a.families).toEqual({ v4: true, v6: false });
    const bad: Endpoint[] = [
      { address: '::1', port: 9 }, // no IPv6 socket
      { address: '127.0.0.1', port: 0 }, // port 0 is refused by dgram
    ];
    for (const ep of bad) expect(() => a.send(ep, new Uint8Array(1))).not.toThrow();
    a.send({ address: '127.0.0.1', port: 9 }, new Uint8Array(70_000)); // EMSGSIZE, reported asynchronously
    await new Promise((r) => setTimeout(r, 50));
    expect(a.stats.sendErrors).toBe(3);
  });

  it('close releases the port and resets state', async () => {
    const a = loopbackBind();
    const port = await a.open(0);
    await a.close();
    expect(a.port).toBe(0);
    expect(a.families).toEqual({ v4: false, v6: false });
    const c = loopbackBind();
    expect(await c.open(port)).toBe(port);
  });

  it('setMark applies SO_MARK to both sockets and again after a rebind (root), or fails clearly (not root)', async () => {
    const native = loadNative();
    const a = loopbackBind();
    await a.open(0);
    const isRoot = process.getuid?.() === 0;
    if (!isRoot) {
      expect(() => a.setMark(0x51820)).toThrow(/setting fwmark 0x51820: setSocketMark fd \d+: setsockopt SO_MARK=0x51820 failed: Operation not permitted \(EPERM\)/);
      return;
    }
    a.setMark(0x51820);
    let fds = a.socketFds();
    expect(native.getSocketMark(fds.v4!)).toBe(0x51820);
    expect(native.getSocketMark(fds.v6!)).toBe(0x51820);
    await a.open(0); // rebind: new sockets carry the mark too
    const fresh = a.socketFds();
    expect(fresh).not.toEqual(fds);
    expect(native.getSocketMark(fresh.v4!)).toBe(0x51820);
    expect(native.getSocketMark(fresh.v6!)).toBe(0x51820);
    a.setMark(0);
    fds = a.socketFds();
    expect(native.getSocketMark(fds.v4!)).toBe(0);
    expect(native.getSocketMark(fds.v6!)).toBe(0);
    expect(() => a.setMark(2 ** 32)).toThrow('fwmark: 4294967296 is not an integer in [0, 4294967295]');
  });

  it('a mark set before open is applied at open', async () => {
    if (process.getuid?.() !== 0) {
      const a = loopbackBind();
      a.setMark(7); // only recorded while closed
      await expect(a.open(0)).rejects.toThrow(/EPERM/);
      return;
    }
    const a = loopbackBind();
    a.setMark(7);
    await a.open(0);
    expect(loadNative().getSocketMark(a.socketFds().v4!)).toBe(7);
  });

  it('sizes socket buffers past net.core.rmem_max with CAP_NET_ADMIN (SO_RCVBUFFORCE), else within it', async () => {
    const { readFileSync } = await import('node:fs');
    const rmemMax = Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8'));
    const want = Math.min(rmemMax + 1024 * 1024, 64 * 1024 * 1024);
    const big = new UdpBind({ address4: '127.0.0.1', address6: '::1', bufferSize: want });
    opened.push(big);
    await big.open(0);
    const sizes = big.bufferSizes();
    if (process.getuid?.() === 0) {
      // the kernel doubles the request (socket(7)); without FORCE it would stop at 2 * rmem_max
      expect(sizes).toEqual({ v4: { recv: 2 * want, send: 2 * want }, v6: { recv: 2 * want, send: 2 * want } });
    } else {
      expect(sizes.v4!.recv).toBeLessThanOrEqual(2 * rmemMax);
    }
  });

  it('socketFd reads the fd without the deprecated _handle getter', async () => {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      const fd = socketFd(sock);
      expect(fd).toBeGreaterThan(2);
      expect(loadNative().getSocketMark(fd)).toBe(0); // a real socket fd
      await new Promise((r) => setImmediate(r));
      expect(warnings.filter((w) => w.includes('_handle'))).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      sock.close();
    }
  });
});

/** A v4 bind with the native reader, a collector on it, and a plain dgram socket to send to it from. */
async function nativeBindAndSender(): Promise<{ b: UdpBind; portB: number; atB: ReturnType<typeof collect>; raw: dgram.Socket }> {
  const b = new UdpBind({ address4: '127.0.0.1', address6: null, nativeReceive: true });
  opened.push(b);
  const portB = await b.open(0);
  const atB = collect(b);
  const raw = dgram.createSocket('udp4');
  await new Promise<void>((r) => raw.bind(0, '127.0.0.1', () => r()));
  return { b, portB, atB, raw };
}

describe('native UDP reader', () => {
  it('is used by default when the addon has it, and KUBESPAND_NATIVE_UDP_RECV=0 turns it off', async () => {
    expect(typeof loadNative().udpReaderStart).toBe('function');
    const saved = process.env.KUBESPAND_NATIVE_UDP_RECV;
    try {
      delete process.env.KUBESPAND_NATIVE_UDP_RECV;
      const on = new UdpBind({ address4: '127.0.0.1', address6: null });
      process.env.KUBESPAND_NATIVE_UDP_RECV = '0';
      const off = new UdpBind({ address4: '127.0.0.1', address6: null });
      opened.push(on, off);
      await on.open(0);
      await off.open(0);
      expect(on.receivePath).toBe('native');
      expect(off.receivePath).toBe('dgram');
    } finally {
      if (saved === undefined) delete process.env.KUBESPAND_NATIVE_UDP_RECV;
      else process.env.KUBESPAND_NATIVE_UDP_RECV = saved;
    }
  });

  it('hands a large burst over in batches of at most 64, in order, nothing lost', async () => {
    const { b, portB, atB, raw } = await nativeBindAndSender();
    try {
      const n = 1000;
      for (let i = 0; i < n; i++) raw.send(Buffer.from(String(i)), portB, '127.0.0.1');
      const got = await atB.next(n, 10_000);
      expect(got.map(text)).toEqual([...Array(n).keys()].map(String));
      expect(Math.max(...atB.batches.map((x) => x.length))).toBeLessThanOrEqual(64);
      expect(b.stats.receivedNative).toBe(n);
      expect(got[0]!.from).toEqual({ address: '127.0.0.1', port: raw.address().port });
      // one source: within a batch every datagram carries the same endpoint object (the device batches replies by it)
      for (const batch of atB.batches) expect(new Set(batch.map((d) => d.from)).size).toBe(1);
      // payloads are views of one buffer per batch; each view is exactly its datagram
      expect(got.every((d, i) => d.data.length === String(i).length)).toBe(true);
    } finally {
      raw.close();
    }
  });

  it('takes datagrams up to the largest UDP payload', async () => {
    const { b, portB, atB, raw } = await nativeBindAndSender();
    try {
      const big = Buffer.alloc(65507, 0xab);
      raw.send(big, portB, '127.0.0.1');
      raw.send(Buffer.from('after'), portB, '127.0.0.1');
      const got = await atB.next(2);
      expect(got[0]!.data.length).toBe(65507);
      expect(Buffer.from(got[0]!.data).equals(big)).toBe(true);
      expect(text(got[1]!)).toBe('after');
    } finally {
      raw.close();
    }
  });

  it('refuses a descriptor that is not a datagram socket', () => {
    expect(() => loadNative().udpReaderStart!(0, 8, () => undefined)).toThrow(/udpReaderStart/);
    expect(() => loadNative().udpReaderStart!(3, 0, () => undefined)).toThrow(/maxBatch/);
  });
});
