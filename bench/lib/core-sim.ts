/**
 * DeviceCores wired together in memory for the in-process benchmarks: a manual clock (time moves
 * only when the bench says so, so no timer fires behind its back), real randomness, and a wire that
 * queues datagrams by destination endpoint and delivers them when pumped. Shaped like
 * test/support/core-pair.ts, without the test-only hooks.
 */
import { DeviceCore, type DeviceEvent, type Endpoint } from '../../src/noise/device.js';
import type { Clock } from '../../src/noise/clock.js';
import type { CryptoProvider } from '../../src/noise/crypto.js';
import { parsePrefix } from '../../src/noise/allowed-ips.js';
import { systemRandom } from '../../src/device/system.js';
import { generatePrivateKey } from '../../src/noise/keys.js';

export class ManualClock implements Clock {
  private mono = 1_000_000;
  private wall = Date.now();
  now(): number {
    return this.mono;
  }
  wallNow(): number {
    return this.wall;
  }
  advance(ms: number): void {
    this.mono += ms;
    this.wall += ms;
  }
}

const key = (ep: Endpoint): string => `${ep.address}|${ep.port}`;

export interface SimNode {
  core: DeviceCore;
  endpoint: Endpoint;
  /** Packets the core delivered to its (absent) TUN. */
  delivered: number;
  deliveredBytes: number;
  /** Called for every event the core emits. */
  onEvent: ((e: DeviceEvent) => void) | null;
}

/** A set of cores on one in-memory wire. */
export class SimNetwork {
  readonly clock = new ManualClock();
  private readonly nodes = new Map<string, SimNode>();
  private queue: { to: Endpoint; from: Endpoint; data: Uint8Array }[] = [];
  /** Datagrams sent to an endpoint nobody owns. */
  unroutable = 0;
  /** When set, sends are handed here instead of being queued (the encapsulation bench collects them). */
  tap: ((from: Endpoint, to: Endpoint, data: Uint8Array) => void) | null = null;

  add(crypto: CryptoProvider, endpoint: Endpoint, opts: { underLoadHandshakes?: number } = {}): SimNode {
    const node: SimNode = { core: null as unknown as DeviceCore, endpoint, delivered: 0, deliveredBytes: 0, onEvent: null };
    node.core = new DeviceCore({
      crypto,
      clock: this.clock,
      random: systemRandom,
      ...(opts.underLoadHandshakes !== undefined ? { underLoadHandshakes: opts.underLoadHandshakes } : {}),
      outputs: {
        send: (to, data) => {
          if (this.tap) this.tap(endpoint, to, data);
          else this.queue.push({ to, from: endpoint, data });
        },
        deliver: (p) => {
          node.delivered++;
          node.deliveredBytes += p.length;
        },
        event: (e) => node.onEvent?.(e),
      },
    });
    node.core.setPrivateKey(generatePrivateKey(systemRandom));
    this.nodes.set(key(endpoint), node);
    return node;
  }

  /** Delivers queued datagrams (and what they trigger) until the wire is quiet; returns how many. */
  pump(limit = Infinity): number {
    let n = 0;
    while (this.queue.length > 0 && n < limit) {
      const batch = this.queue;
      this.queue = [];
      for (const d of batch) {
        const to = this.nodes.get(key(d.to));
        if (!to) {
          this.unroutable++;
          continue;
        }
        to.core.handleDatagram(d.data, d.from);
        n++;
      }
    }
    return n;
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Calls tick() on every core. */
  tickAll(): void {
    for (const n of this.nodes.values()) n.core.tick();
  }
}

/** Makes `a` and `b` peers: b's tunnel address routes to b on a and vice versa; only a knows b's endpoint. */
export function link(a: SimNode, aTunnel: string, b: SimNode, bTunnel: string): void {
  const pa = a.core.addPeer(b.core.getPublicKey()!);
  const pb = b.core.addPeer(a.core.getPublicKey()!);
  a.core.setEndpoint(pa, b.endpoint);
  a.core.allowedIps.insert(parsePrefix(bTunnel), pa);
  b.core.allowedIps.insert(parsePrefix(aTunnel), pb);
}

/**
 * An IPv4 packet of `size` bytes (header checksum left zero: the core does not check it) from `src`
 * to `dst`, with the total-length field set, as the TUN would hand it over.
 */
export function ipv4Packet(size: number, src: [number, number, number, number], dst: [number, number, number, number]): Uint8Array {
  if (size < 20 || size > 65535) throw new Error(`ipv4Packet: size ${size} is outside 20..65535`);
  const p = new Uint8Array(size);
  p[0] = 0x45;
  p[2] = size >> 8;
  p[3] = size & 0xff;
  p[8] = 64;
  p[9] = 17;
  p.set(src, 12);
  p.set(dst, 16);
  for (let i = 20; i < size; i++) p[i] = i & 0xff;
  return p;
}
