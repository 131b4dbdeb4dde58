import { describe, expect, it } from 'vitest';
import { ChannelTun } from '../../../src/tun/channel-tun.js';
import { buildIcmpEcho } from '../../../src/tun/packets.js';

const ping = (seq: number): Uint8Array => buildIcmpEcho({ src: '10.9.0.1', dst: '10.9.0.2', id: 1, seq });

describe('ChannelTun', () => {
  it('delivers injected packets as one batch per tick, waiting for the first reader', async () => {
    const tun = new ChannelTun({ name: 'kstc0', mtu: 1380 });
    expect(tun.name).toBe('kstc0');
    expect(tun.mtu).toBe(1380);
    tun.inject(ping(1)); // before anyone reads: queued like the kernel would
    const batches: Uint8Array[][] = [];
    tun.onPackets((b) => batches.push(b));
    tun.inject(ping(2));
    tun.injectBatch([ping(3), ping(4)]);
    expect(batches).toHaveLength(0);
    await Promise.resolve();
    expect(batches).toHaveLength(1);
    expect(batches[0]!.map((p) => p[27])).toEqual([1, 2, 3, 4]); // seq low byte at 20 + 7
    expect(tun.stats).toMatchObject({ packetsRead: 4, batchesRead: 1 });
  });

  it('delivers synchronously when asked', () => {
    const tun = new ChannelTun({ delivery: 'sync' });
    const seen: number[] = [];
    tun.onPackets((b) => b.forEach((p) => seen.push(p[27]!)));
    tun.inject(ping(5));
    expect(seen).toEqual([5]);
  });

  it('records writes (as copies), calls onWrite and serves nextWrite in order', async () => {
    const tun = new ChannelTun();
    const hooked: Uint8Array[] = [];
    tun.onWrite((p) => hooked.push(p));
    const p1 = ping(1);
    tun.write([p1, ping(2)]);
    p1[27] = 99;
    expect(tun.written.map((p) => p[27])).toEqual([1, 2]);
    expect(hooked).toHaveLength(2);
    expect((await tun.nextWrite())[27]).toBe(1);
    expect((await tun.nextWrite())[27]).toBe(2);
    const later = tun.nextWrite(1000);
    setTimeout(() => tun.write([ping(3)]), 10);
    expect((await later)[27]).toBe(3);
    await expect(tun.nextWrite(20)).rejects.toThrow(/no packet written within 20 ms/);
  });

  it('close() reports without error, fail() with one; writes after close are counted', async () => {
    const a = new ChannelTun();
    const reasons: (Error | undefined)[] = [];
    a.onClose((e) => reasons.push(e));
    a.close();
    a.close();
    expect(reasons).toEqual([undefined]);
    a.write([ping(1)]);
    expect(a.stats.writeErrors).toBe(1);
    expect(() => a.inject(ping(1))).toThrow(/inject after close/);

    const b = new ChannelTun({ name: 'kstc1' });
    const errs: (Error | undefined)[] = [];
    b.onClose((e) => errs.push(e));
    b.fail();
    expect(errs[0]?.message).toBe('tun kstc1: interface deleted');
    // registering after the close still hears about it
    const late = await new Promise<Error | undefined>((resolve) => b.onClose(resolve));
    expect(late?.message).toBe('tun kstc1: interface deleted');
  });
});
