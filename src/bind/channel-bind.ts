/**
 * In-memory twin of the UDP bind (wireguard-go's bindtest.NewChannelBinds): binds on a shared
 * `ChannelNetwork`, addressed by (address, port) like real sockets. The network can lose, duplicate
 * and reorder datagrams from a seeded generator (so a failing run replays exactly), block addresses
 * (to test endpoint cycling), and deliver either on its own ('immediate': one microtask flush per
 * burst, each receiver getting its datagrams as one batch) or only when the test calls `deliver()`
 * ('manual', for step-by-step handshakes).
 */
import { canonicalAddress, endpointKey, formatEndpoint, validateMark, validatePort, type Bind, type Datagram, type Endpoint } from './bind.js';

export interface ChannelNetworkOptions {
  /** Seed for loss/duplication/reorder decisions (default 1). */
  seed?: number;
  /** Probability in [0, 1] that a datagram is lost. */
  loss?: number;
  /** Probability in [0, 1] that a datagram arrives twice. */
  duplicate?: number;
  /** Probability in [0, 1] that a queued datagram swaps places with a later one at delivery. */
  reorder?: number;
  /** 'immediate' (default): delivered on a microtask; 'manual': held until deliver(). */
  delivery?: 'immediate' | 'manual';
}

export interface ChannelNetworkStats {
  sent: number;
  lost: number;
  duplicated: number;
  delivered: number;
  /** Sent to an address:port where no bind is open (or the address is blocked). */
  unroutable: number;
}

interface InFlight {
  to: string;
  datagram: Datagram;
}

/** mulberry32: small, fast, good enough for test decisions. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function checkRate(v: number | undefined, field: string): number {
  const r = v ?? 0;
  if (!(r >= 0 && r <= 1)) throw new Error(`channel network: ${field} ${String(v)} is not a probability in [0, 1]`);
  return r;
}

export class ChannelNetwork {
  readonly stats: ChannelNetworkStats = { sent: 0, lost: 0, duplicated: 0, delivered: 0, unroutable: 0 };
  loss: number;
  duplicate: number;
  reorder: number;
  delivery: 'immediate' | 'manual';
  private random: () => number;
  private readonly binds = new Map<string, ChannelBind>();
  private readonly blocked = new Set<string>();
  private queue: InFlight[] = [];
  private flushScheduled = false;
  private nextPort = 50000;

  constructor(opts: ChannelNetworkOptions = {}) {
    this.loss = checkRate(opts.loss, 'loss');
    this.duplicate = checkRate(opts.duplicate, 'duplicate');
    this.reorder = checkRate(opts.reorder, 'reorder');
    this.delivery = opts.delivery ?? 'immediate';
    this.random = seededRandom(opts.seed ?? 1);
  }

  /** Changes the switches at run time (rates are validated). */
  configure(opts: Omit<ChannelNetworkOptions, 'seed'> & { seed?: number }): void {
    if (opts.loss !== undefined) this.loss = checkRate(opts.loss, 'loss');
    if (opts.duplicate !== undefined) this.duplicate = checkRate(opts.duplicate, 'duplicate');
    if (opts.reorder !== undefined) this.reorder = checkRate(opts.reorder, 'reorder');
    if (opts.delivery !== undefined) this.delivery = opts.delivery;
    if (opts.seed !== undefined) this.random = seededRandom(opts.seed);
    if (this.delivery === 'immediate' && this.queue.length > 0) this.schedule();
  }

  /** A new (closed) bind at `address`. */
  createBind(address: string): ChannelBind {
    const canonical = canonicalAddress(address);
    if (canonical === undefined) throw new Error(`channel network: address "${address}" is not a numeric IP address`);
    return new ChannelBind(this, canonical);
  }

  /** Datagrams to or from `address` are lost while it is blocked (a blackholed endpoint). */
  setBlocked(address: string, blocked: boolean): void {
    const canonical = canonicalAddress(address) ?? address;
    if (blocked) this.blocked.add(canonical);
    else this.blocked.delete(canonical);
  }

  /** Datagrams in flight. */
  pending(): number {
    return this.queue.length;
  }

  /**
   * Delivers up to `max` queued datagrams now (reordered per the reorder rate); each receiving bind
   * gets its share as one batch. Returns how many were delivered. Datagrams sent by the receivers
   * while handling them wait for the next delivery.
   */
  deliver(max = Infinity): number {
    const take = this.queue.splice(0, Math.min(max, this.queue.length));
    if (take.length === 0) return 0;
    if (this.reorder > 0) {
      for (let i = 0; i < take.length - 1; i++) {
        if (this.random() < this.reorder) {
          const j = i + 1 + Math.floor(this.random() * (take.length - i - 1));
          [take[i], take[j]] = [take[j]!, take[i]!];
        }
      }
    }
    const batches = new Map<ChannelBind, Datagram[]>();
    let delivered = 0;
    for (const item of take) {
      const bind = this.binds.get(item.to);
      if (!bind) {
        this.stats.unroutable++;
        continue;
      }
      let batch = batches.get(bind);
      if (!batch) batches.set(bind, (batch = []));
      batch.push(item.datagram);
      delivered++;
    }
    this.stats.delivered += delivered;
    for (const [bind, batch] of batches) bind.receive(batch);
    return delivered;
  }

  /** Delivers until nothing is in flight (including replies), at most `maxRounds` rounds. */
  deliverAll(maxRounds = 1000): number {
    let total = 0;
    for (let round = 0; round < maxRounds && this.queue.length > 0; round++) total += this.deliver();
    return total;
  }

  /** Drops everything in flight. */
  clear(): void {
    this.stats.lost += this.queue.length;
    this.queue = [];
  }

  // ------------------------------------------------------------ used by ChannelBind

  /** @internal */
  register(bind: ChannelBind, port: number): number {
    if (port === 0) {
      do port = this.nextPort++;
      while (this.binds.has(endpointKey({ address: bind.address, port })));
    }
    const key = endpointKey({ address: bind.address, port });
    const holder = this.binds.get(key);
    if (holder && holder !== bind) throw new Error(`channel network: ${key} already in use`);
    this.binds.set(key, bind);
    return port;
  }

  /** @internal */
  unregister(bind: ChannelBind, port: number): void {
    const key = endpointKey({ address: bind.address, port });
    if (this.binds.get(key) === bind) this.binds.delete(key);
  }

  /** @internal */
  transmit(from: Endpoint, to: Endpoint, data: Uint8Array): void {
    this.stats.sent++;
    if (this.blocked.has(from.address) || this.blocked.has(to.address)) {
      this.stats.lost++;
      return;
    }
    if (this.loss > 0 && this.random() < this.loss) {
      this.stats.lost++;
      return;
    }
    const toKey = endpointKey(to);
    const copies = this.duplicate > 0 && this.random() < this.duplicate ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let i = 0; i < copies; i++) this.queue.push({ to: toKey, datagram: { data: data.slice(), from: { ...from } } });
    if (this.delivery === 'immediate') this.schedule();
  }

  private schedule(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      if (this.delivery === 'immediate') this.deliver();
    });
  }
}

export class ChannelBind implements Bind {
  /** The SO_MARK the device asked for (recorded only). */
  mark = 0;
  private boundPort = 0;
  private readonly listeners: ((batch: Datagram[]) => void)[] = [];

  constructor(
    private readonly network: ChannelNetwork,
    /** Canonical address of this bind. */
    readonly address: string,
  ) {}

  get port(): number {
    return this.boundPort;
  }

  /** This bind's endpoint (what peers see as the source). */
  get endpoint(): Endpoint {
    if (this.boundPort === 0) throw new Error(`channel bind ${this.address}: not open`);
    return { address: this.address, port: this.boundPort };
  }

  async open(port: number): Promise<number> {
    validatePort(port);
    if (this.boundPort !== 0 && port === this.boundPort) return port;
    const newPort = this.network.register(this, port);
    if (this.boundPort !== 0 && this.boundPort !== newPort) this.network.unregister(this, this.boundPort);
    this.boundPort = newPort;
    return newPort;
  }

  send(ep: Endpoint, data: Uint8Array): void {
    if (this.boundPort === 0) return; // closed: like a send error, silently dropped
    this.network.transmit(this.endpoint, ep, data);
  }

  sendBatch(ep: Endpoint, packets: Uint8Array[]): void {
    for (const p of packets) this.send(ep, p);
  }

  onDatagrams(cb: (batch: Datagram[]) => void): void {
    this.listeners.push(cb);
  }

  setMark(mark: number): void {
    validateMark(mark);
    this.mark = mark;
  }

  async close(): Promise<void> {
    if (this.boundPort !== 0) this.network.unregister(this, this.boundPort);
    this.boundPort = 0;
  }

  /** @internal called by the network */
  receive(batch: Datagram[]): void {
    for (const cb of this.listeners) cb(batch);
  }

  toString(): string {
    return this.boundPort ? `channel-bind(${formatEndpoint(this.endpoint)})` : `channel-bind(${this.address}, closed)`;
  }
}

export interface ChannelBindPair {
  a: ChannelBind;
  b: ChannelBind;
  network: ChannelNetwork;
}

/**
 * Two binds on one in-memory network, at 192.0.2.1 and 192.0.2.2 (TEST-NET-1) unless `addresses` says
 * otherwise. Open them (`await a.open(0)`) before sending; `a.endpoint` is what `b` sees as the source.
 */
export function createChannelBindPair(opts: ChannelNetworkOptions & { addresses?: [string, string] } = {}): ChannelBindPair {
  const network = new ChannelNetwork(opts);
  const [addrA, addrB] = opts.addresses ?? ['192.0.2.1', '192.0.2.2'];
  return { a: network.createBind(addrA), b: network.createBind(addrB), network };
}
