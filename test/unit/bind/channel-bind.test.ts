import { describe, expect, it } from 'vitest';
import type { Datagram } from '../../../src/bind/bind.js';
import { ChannelNetwork, createChannelBindPair } from '../../../src/bind/channel-bind.js';

const bytes = (...v: number[]): Uint8Array => new Uint8Array(v);
const firstBytes = (batches: Datagram[][]): number[] => batches.flat().map((d) => d.data[0]!);

describe('ChannelBind pair', () => {
  it('delivers immediately (one microtask) with the sender as source, a burst as one batch', async () => {
    const { a, b } = createChannelBindPair();
    const portA = await a.open(0);
    const portB = await b.open(0);
    expect(portA).not.toBe(portB);
    const got: Datagram[][] = [];
    b.onDatagrams((batch) => got.push(batch));
    a.send(b.endpoint, bytes(1));
    a.send(b.endpoint, bytes(2));
    a.sendBatch(b.endpoint, [bytes(3), bytes(4)]);
    expect(got).toHaveLength(0); // not synchronous
    await Promise.resolve();
    expect(got).toHaveLength(1);
    expect(firstBytes(got)).toEqual([1, 2, 3, 4]);
    expect(got[0]![0]!.from).toEqual({ address: '192.0.2.1', port: portA });
  });

  it('copies data at send, like a kernel', async () => {
    const { a, b } = createChannelBindPair();
    await a.open(0);
    await b.open(0);
    const got: Datagram[] = [];
    b.onDatagrams((batch) => got.push(...batch));
    const buf = bytes(9);
    a.send(b.endpoint, buf);
    buf[0] = 0;
    await Promise.resolve();
    expect(got[0]!.data[0]).toBe(9);
  });

  it('holds datagrams for manual delivery, replies included', () => {
    const { a, b, network } = createChannelBindPair({ delivery: 'manual' });
    return (async () => {
      await a.open(1000);
      await b.open(2000);
      const atA: number[] = [];
      b.onDatagrams((batch) => batch.forEach((d) => b.send(d.from, bytes(d.data[0]! + 100))));
      a.onDatagrams((batch) => batch.forEach((d) => atA.push(d.data[0]!)));
      a.send({ address: '192.0.2.2', port: 2000 }, bytes(1));
      expect(network.pending()).toBe(1);
      expect(network.deliver()).toBe(1); // b answers, the answer waits
      expect(network.pending()).toBe(1);
      expect(atA).toEqual([]);
      expect(network.deliverAll()).toBe(1);
      expect(atA).toEqual([101]);
    })();
  });

  it('loses, duplicates and reorders reproducibly from the seed', async () => {
    const run = (seed: number): number[] => {
      const { a, b, network } = createChannelBindPair({ seed, loss: 0.2, duplicate: 0.2, reorder: 0.3, delivery: 'manual' });
      const out: number[] = [];
      void a.open(1);
      void b.open(2);
      b.onDatagrams((batch) => batch.forEach((d) => out.push(d.data[0]!)));
      for (let i = 0; i < 200; i++) a.send(b.endpoint, bytes(i));
      network.deliver();
      expect(network.stats.sent).toBe(200);
      expect(network.stats.delivered).toBe(out.length);
      expect(out.length).toBe(200 - network.stats.lost + network.stats.duplicated);
      return out;
    };
    const first = run(42);
    expect(run(42)).toEqual(first); // same seed, same story
    expect(run(43)).not.toEqual(first);
    const sorted = [...first].sort((x, y) => x - y);
    expect(first).not.toEqual(sorted); // reordered
    expect(new Set(first).size).toBeLessThan(first.length); // duplicated
    expect(new Set(first).size).toBeLessThan(200); // lost
    expect(new Set(first).size).toBeGreaterThan(120);
  });

  it('perfect network by default', async () => {
    const { a, b, network } = createChannelBindPair({ delivery: 'manual' });
    await a.open(0);
    await b.open(0);
    const out: number[] = [];
    b.onDatagrams((batch) => batch.forEach((d) => out.push(d.data[0]!)));
    for (let i = 0; i < 50; i++) a.send(b.endpoint, bytes(i));
    network.deliver();
    expect(out).toEqual([...Array(50).keys()]);
  });

  it('drops to closed ports, blocked addresses and after close; rebinding moves the port', async () => {
    const { a, b, network } = createChannelBindPair({ delivery: 'manual' });
    await a.open(0);
    await b.open(7000);
    const out: number[] = [];
    b.onDatagrams((batch) => batch.forEach((d) => out.push(d.data[0]!)));
    a.send({ address: '192.0.2.2', port: 7001 }, bytes(1));
    network.deliver();
    expect(network.stats.unroutable).toBe(1);

    network.setBlocked('192.0.2.2', true);
    a.send(b.endpoint, bytes(2));
    network.setBlocked('192.0.2.2', false);
    a.send(b.endpoint, bytes(3));
    network.deliver();
    expect(out).toEqual([3]);

    expect(await b.open(7001)).toBe(7001); // rebind
    a.send({ address: '192.0.2.2', port: 7000 }, bytes(4));
    a.send({ address: '192.0.2.2', port: 7001 }, bytes(5));
    network.deliver();
    expect(out).toEqual([3, 5]);

    await b.close();
    expect(b.port).toBe(0);
    a.send({ address: '192.0.2.2', port: 7001 }, bytes(6));
    network.deliver();
    expect(out).toEqual([3, 5]);
  });

  it('rejects a port in use, bad rates and bad marks; records the mark', async () => {
    const network = new ChannelNetwork();
    const x = network.createBind('fd00::1');
    const y = network.createBind('FD00::0:1');
    await x.open(5);
    await expect(y.open(5)).rejects.toThrow('[fd00::1]:5 already in use');
    expect(() => new ChannelNetwork({ loss: 2 })).toThrow(/loss 2 is not a probability/);
    expect(() => network.createBind('somewhere')).toThrow(/"somewhere" is not a numeric/);
    expect(() => x.setMark(-1)).toThrow(/fwmark: -1/);
    x.setMark(0x51820);
    expect(x.mark).toBe(0x51820);
  });

  it('switches can change at run time', async () => {
    const { a, b, network } = createChannelBindPair({ delivery: 'manual' });
    await a.open(0);
    await b.open(0);
    const out: number[] = [];
    b.onDatagrams((batch) => batch.forEach((d) => out.push(d.data[0]!)));
    network.configure({ loss: 1 });
    a.send(b.endpoint, bytes(1));
    network.configure({ loss: 0, delivery: 'immediate' });
    a.send(b.endpoint, bytes(2));
    await Promise.resolve();
    expect(out).toEqual([2]);
    expect(network.stats.lost).toBe(1);
  });
});
