/**
 * Two DeviceCores on a shared ManualClock, joined by an in-memory wire whose datagrams a test can
 * inspect, drop, duplicate or replay. Used by test/pair to show every timer rule without waiting.
 */
import { DeviceCore, type DeviceEvent, type Endpoint } from '../../src/noise/device.js';
import type { CryptoProvider } from '../../src/noise/crypto.js';
import { nodeCrypto } from '../../src/noise/crypto-node.js';
import { parsePrefix } from '../../src/noise/allowed-ips.js';
import { clampPrivateKey } from '../../src/noise/keys.js';
import type { DropReason } from '../../src/noise/messages.js';
import { ManualClock, SeededRandom } from './clock.js';

export interface WireDatagram {
  from: Endpoint;
  to: Endpoint;
  data: Uint8Array;
}

export interface Side {
  name: 'a' | 'b';
  core: DeviceCore;
  endpoint: Endpoint;
  delivered: Uint8Array[];
  events: DeviceEvent[];
  drops: DropReason[];
  publicKey: Uint8Array;
  tunnelIp: string;
}

export interface PairOptions {
  crypto?: CryptoProvider;
  seed?: number;
  presharedKey?: Uint8Array | null;
  /** Under-load threshold for b only (a keeps the default), so b is the loaded responder. */
  underLoadHandshakes?: number;
  /** Give b an endpoint for a (so b can initiate too). Default true. */
  bKnowsA?: boolean;
}

export class CorePair {
  readonly clock = new ManualClock();
  readonly a: Side;
  readonly b: Side;
  /** Datagrams sent and not yet delivered. */
  inFlight: WireDatagram[] = [];
  /** Every datagram ever sent, for transcripts and replay tests. */
  readonly transcript: WireDatagram[] = [];
  /** Return false to drop a datagram on the wire. */
  filter: (d: WireDatagram) => boolean = () => true;

  constructor(opts: PairOptions = {}) {
    const crypto = opts.crypto ?? nodeCrypto;
    const random = new SeededRandom(opts.seed ?? 7);
    const keyA = clampPrivateKey(random.fill(new Uint8Array(32)));
    const keyB = clampPrivateKey(random.fill(new Uint8Array(32)));
    const mk = (name: 'a' | 'b', key: Uint8Array, endpoint: Endpoint, tunnelIp: string): Side => {
      const side = { name, endpoint, delivered: [], events: [], drops: [], tunnelIp } as unknown as Side;
      side.core = new DeviceCore({
        crypto,
        clock: this.clock,
        random,
        underLoadHandshakes: name === 'b' ? (opts.underLoadHandshakes ?? 128) : 128,
        outputs: {
          send: (to, data) => {
            const d = { from: side.endpoint, to, data: data.slice() };
            this.transcript.push(d);
            if (this.filter(d)) this.inFlight.push(d);
          },
          deliver: (p) => side.delivered.push(p.slice()),
          event: (e) => side.events.push(e),
          drop: (r) => side.drops.push(r),
        },
      });
      side.core.setPrivateKey(key);
      side.publicKey = side.core.getPublicKey()!;
      return side;
    };
    this.a = mk('a', keyA, { address: '192.0.2.1', port: 51820 }, '10.0.0.1');
    this.b = mk('b', keyB, { address: '192.0.2.2', port: 51821 }, '10.0.0.2');
    const pa = this.a.core.addPeer(this.b.publicKey);
    const pb = this.b.core.addPeer(this.a.publicKey);
    this.a.core.setPresharedKey(pa, opts.presharedKey ?? null);
    this.b.core.setPresharedKey(pb, opts.presharedKey ?? null);
    this.a.core.setEndpoint(pa, this.b.endpoint);
    if (opts.bKnowsA !== false) this.b.core.setEndpoint(pb, this.a.endpoint);
    this.a.core.allowedIps.insert(parsePrefix('10.0.0.2/32'), pa);
    this.b.core.allowedIps.insert(parsePrefix('10.0.0.1/32'), pb);
  }

  peerOf(side: Side) {
    const other = side === this.a ? this.b : this.a;
    return side.core.getPeer(other.publicKey)!;
  }

  sideAt(ep: Endpoint): Side | undefined {
    for (const s of [this.a, this.b]) if (s.endpoint.address === ep.address && s.endpoint.port === ep.port) return s;
    return undefined;
  }

  /** Delivers everything in flight (and what that triggers) until the wire is quiet. */
  flush(maxRounds = 50): number {
    let n = 0;
    for (let round = 0; round < maxRounds && this.inFlight.length > 0; round++) {
      const batch = this.inFlight;
      this.inFlight = [];
      for (const d of batch) {
        const to = this.sideAt(d.to);
        if (to) {
          // the core decrypts in place: hand it a copy so the transcript keeps the wire bytes
          to.core.handleDatagram(d.data.slice(), d.from);
          n++;
        }
      }
    }
    return n;
  }

  /** Advances time in tick-sized steps, ticking both cores and flushing the wire after each. */
  advance(ms: number, step = 250): void {
    for (let t = 0; t < ms; t += step) {
      this.clock.advance(Math.min(step, ms - t));
      this.a.core.tick();
      this.b.core.tick();
      this.flush();
    }
  }

  /** Sends an IPv4 packet from `from`'s tunnel address to the other side's. */
  send(from: Side, payload = 'ping'): Uint8Array {
    const to = from === this.a ? this.b : this.a;
    const pkt = ipv4Packet(from.tunnelIp, to.tunnelIp, new TextEncoder().encode(payload));
    from.core.handleTunPackets([pkt]);
    return pkt;
  }

  sentOfType(type: number, from?: Side): WireDatagram[] {
    return this.transcript.filter((d) => d.data[0] === type && (!from || (d.from.address === from.endpoint.address && d.from.port === from.endpoint.port)));
  }
}

/** A minimal IPv4 packet (protocol 253, "experimental") with correct total length; checksum left zero. */
export function ipv4Packet(src: string, dst: string, payload: Uint8Array): Uint8Array {
  const p = new Uint8Array(20 + payload.length);
  p[0] = 0x45;
  p[2] = p.length >> 8;
  p[3] = p.length & 0xff;
  p[8] = 64;
  p[9] = 253;
  p.set(src.split('.').map(Number), 12);
  p.set(dst.split('.').map(Number), 16);
  p.set(payload, 20);
  return p;
}
