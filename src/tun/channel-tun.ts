/**
 * In-memory twin of the TUN device (wireguard-go's tuntest.ChannelTUN): tests `inject` packets as if
 * the kernel had sent them into the tunnel, and read what the device wrote back from `written`,
 * `nextWrite()` or an `onWrite` hook. `fail(err)` stands in for the interface being deleted.
 *
 * Injected packets are delivered in batches on a microtask (like the real reader, which collects a
 * burst into one callback), or synchronously with `{ delivery: 'sync' }` for step-by-step tests.
 * Packets injected before the first `onPackets` wait for it, as the kernel queues them.
 */
import { DEFAULT_TUN_MTU, type TunDevice, type TunStats } from './tun.js';

export interface ChannelTunOptions {
  name?: string;
  mtu?: number;
  delivery?: 'microtask' | 'sync';
}

export class ChannelTun implements TunDevice {
  readonly name: string;
  readonly mtu: number;
  /** Every packet the device wrote, in order (copies). */
  readonly written: Uint8Array[] = [];
  readonly stats: TunStats = { packetsRead: 0, batchesRead: 0, packetsWritten: 0, writeErrors: 0 };
  private readonly delivery: 'microtask' | 'sync';
  private readonly packetListeners: ((packets: Uint8Array[]) => void)[] = [];
  private readonly closeListeners: ((err?: Error) => void)[] = [];
  private readonly writeListeners: ((packet: Uint8Array) => void)[] = [];
  private readonly waiters: { resolve: (p: Uint8Array) => void; timer: ReturnType<typeof setTimeout> }[] = [];
  private inbound: Uint8Array[] = [];
  private flushScheduled = false;
  private readCursor = 0;
  private closed = false;
  private closeError: Error | undefined;

  constructor(opts: ChannelTunOptions = {}) {
    this.name = opts.name ?? 'kstchan0';
    this.mtu = opts.mtu ?? DEFAULT_TUN_MTU;
    this.delivery = opts.delivery ?? 'microtask';
  }

  get isClosed(): boolean {
    return this.closed;
  }

  // ------------------------------------------------------------ TunDevice

  onPackets(cb: (packets: Uint8Array[]) => void): void {
    this.packetListeners.push(cb);
    if (this.inbound.length > 0) this.schedule();
  }

  onClose(cb: (err?: Error) => void): void {
    if (this.closed) {
      const err = this.closeError;
      queueMicrotask(() => cb(err));
      return;
    }
    this.closeListeners.push(cb);
  }

  write(packets: Uint8Array[]): void {
    for (const packet of packets) {
      if (this.closed) {
        this.stats.writeErrors++;
        continue;
      }
      const copy = packet.slice();
      this.written.push(copy);
      this.stats.packetsWritten++;
      for (const cb of this.writeListeners) cb(copy);
      const waiter = this.waiters.shift();
      if (waiter) {
        clearTimeout(waiter.timer);
        this.readCursor++;
        waiter.resolve(copy);
      }
    }
  }

  close(): void {
    this.shutdown(undefined);
  }

  // ------------------------------------------------------------ test side

  /** Delivers `packet` to the device as if the kernel had read it from the interface. */
  inject(packet: Uint8Array): void {
    this.injectBatch([packet]);
  }

  /** Delivers several packets; with microtask delivery, injections in one tick form one batch. */
  injectBatch(packets: Uint8Array[]): void {
    if (this.closed) throw new Error(`tun ${this.name}: inject after close`);
    for (const p of packets) this.inbound.push(p.slice());
    if (this.packetListeners.length > 0) this.schedule();
  }

  /** Hook called with each packet the device writes. */
  onWrite(cb: (packet: Uint8Array) => void): void {
    this.writeListeners.push(cb);
  }

  /** Resolves with the next written packet not yet taken by nextWrite (in order). */
  nextWrite(timeoutMs = 5_000): Promise<Uint8Array> {
    const ready = this.written[this.readCursor];
    if (ready) {
      this.readCursor++;
      return Promise.resolve(ready);
    }
    return new Promise((resolve, reject) => {
      const entry = {
        resolve,
        timer: setTimeout(() => {
          const i = this.waiters.indexOf(entry);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(new Error(`tun ${this.name}: no packet written within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.push(entry);
    });
  }

  /** Simulates the kernel side failing (interface deleted): the device sees onClose(err). */
  fail(err: Error = new Error(`tun ${this.name}: interface deleted`)): void {
    this.shutdown(err);
  }

  // ------------------------------------------------------------ internals

  private schedule(): void {
    if (this.delivery === 'sync') {
      this.flush();
      return;
    }
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (this.closed || this.inbound.length === 0 || this.packetListeners.length === 0) return;
    const batch = this.inbound;
    this.inbound = [];
    this.stats.packetsRead += batch.length;
    this.stats.batchesRead++;
    for (const cb of this.packetListeners) cb(batch);
  }

  private shutdown(err: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.closeError = err;
    this.inbound = [];
    for (const cb of this.closeListeners.splice(0)) cb(err);
  }
}
