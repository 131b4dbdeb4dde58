/**
 * The data-path addon's udpSendBatch on a real dgram socket over loopback: runs of equal-sized
 * datagrams go out as UDP GSO messages, and the receiver still gets every datagram, intact and in order.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { tryLoadDatapath } from '../../../src/native-datapath.js';
import { socketFd } from '../../../src/bind/udp-bind.js';

const sockets: dgram.Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});

async function pair(): Promise<{ tx: dgram.Socket; rx: dgram.Socket; port: number; got: Buffer[] }> {
  const rx = dgram.createSocket('udp4');
  const tx = dgram.createSocket('udp4');
  sockets.push(rx, tx);
  const got: Buffer[] = [];
  rx.on('message', (m) => got.push(m));
  await new Promise<void>((r) => rx.bind(0, '127.0.0.1', () => r()));
  await new Promise<void>((r) => tx.bind(0, '127.0.0.1', () => r()));
  rx.setRecvBufferSize(8 * 1024 * 1024);
  return { tx, rx, port: rx.address().port, got };
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const start = Date.now();
  while (!cond() && Date.now() - start < ms) await new Promise((r) => setTimeout(r, 10));
}

describe('udpSendBatch', () => {
  const addon = tryLoadDatapath()!;

  it('delivers equal-sized runs, a shorter tail and odd sizes intact and in order', async () => {
    const { tx, port, got } = await pair();
    const sizes = [...Array(40).fill(1452), 300, ...Array(10).fill(1452), 64, 64, 64, 1000, 1452, 32];
    const datagrams = sizes.map((n, i) => {
      const b = randomBytes(n);
      b[0] = i;
      return b;
    });
    const sent = addon.udpSendBatch(socketFd(tx), new Uint8Array([127, 0, 0, 1]), port, datagrams);
    expect(sent).toBe(datagrams.length);
    await until(() => got.length >= datagrams.length);
    expect(got.map((b) => b.toString('hex'))).toEqual(datagrams.map((b) => b.toString('hex')));
  });

  it('sends more than one sendmmsg batch (300 datagrams)', async () => {
    const { tx, port, got } = await pair();
    const datagrams = Array.from({ length: 300 }, (_, i) => Buffer.alloc(200, i & 0xff));
    expect(addon.udpSendBatch(socketFd(tx), new Uint8Array([127, 0, 0, 1]), port, datagrams)).toBe(300);
    await until(() => got.length >= 300);
    expect(got).toHaveLength(300);
    expect(got.map((b) => b[0])).toEqual(datagrams.map((b) => b[0]));
  });

  it('reports a hard error as -errno when nothing could be sent', async () => {
    const { tx } = await pair();
    // an IPv6 destination on an IPv4 socket: EAFNOSUPPORT / EINVAL
    const r = addon.udpSendBatch(socketFd(tx), new Uint8Array(16).fill(0).map((_, i) => (i === 15 ? 1 : 0)), 9, [Buffer.alloc(10)]);
    expect(r).toBeLessThan(0);
  });
});
