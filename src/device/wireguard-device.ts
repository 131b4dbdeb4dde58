/**
 * The device loop: joins the sans-IO DeviceCore to a TUN and a UDP bind, runs the 250 ms timer tick,
 * and implements the UAPI's view of the device. It holds no protocol logic: every decision is the
 * core's; this file only moves bytes and translates configuration calls.
 *
 *   TUN ──packets──▶ core.handleTunPackets ──send──▶ bind
 *   bind ─datagrams─▶ core.handleDatagram ──deliver──▶ (batched) TUN
 */
import type { Bind } from '../bind/bind.js';
import type { TunDevice } from '../tun/tun.js';
import { DeviceCore, type DeviceEvent, type Endpoint, type Peer } from '../noise/device.js';
import type { CryptoProvider } from '../noise/crypto.js';
import type { Clock, Random } from '../noise/clock.js';
import { TIMER_TICK_MS } from '../noise/constants.js';
import type { DropReason } from '../noise/messages.js';
import type { Prefix } from '../noise/allowed-ips.js';
import { peerTag } from '../noise/keys.js';
import type { UapiDevice, UapiDeviceState } from '../uapi/types.js';
import type { Logger } from '../log.js';

export interface WireguardDeviceOptions {
  name: string;
  tun: TunDevice;
  bind: Bind;
  crypto: CryptoProvider;
  clock: Clock;
  random: Random;
  log: Logger;
}

/** Per-device counters exported to metrics and status views. */
export interface DeviceStats {
  datagramsIn: number;
  datagramsOut: number;
  packetsFromTun: number;
  packetsToTun: number;
}

export class WireguardDevice implements UapiDevice {
  readonly name: string;
  readonly core: DeviceCore;
  readonly stats: DeviceStats = { datagramsIn: 0, datagramsOut: 0, packetsFromTun: 0, packetsToTun: 0 };
  private readonly tun: TunDevice;
  private readonly bind: Bind;
  private readonly log: Logger;
  private listenPort = 0;
  private fwmark = 0;
  private ticker: NodeJS.Timeout | null = null;
  private pendingDeliveries: Uint8Array[] = [];
  private readonly pendingSends = new Map<Endpoint, Uint8Array[]>();
  private closed = false;
  private readonly closeListeners: ((reason: string) => void)[] = [];

  constructor(opts: WireguardDeviceOptions) {
    this.name = opts.name;
    this.tun = opts.tun;
    this.bind = opts.bind;
    this.log = opts.log;
    this.core = new DeviceCore({
      crypto: opts.crypto,
      clock: opts.clock,
      random: opts.random,
      mtu: opts.tun.mtu,
      packetsMayHaveRoom: opts.tun.packetsHaveRoom === true,
      outputs: {
        send: (endpoint, datagram) => {
          this.stats.datagramsOut++;
          // collected per endpoint and sent as one batch when the current input has been handled;
          // keyed by the endpoint object (a peer keeps one until it roams), so no key string per packet
          const pending = this.pendingSends.get(endpoint);
          if (pending) pending.push(datagram);
          else this.pendingSends.set(endpoint, [datagram]);
        },
        deliver: (packet) => {
          this.pendingDeliveries.push(packet);
        },
        event: (event) => this.onEvent(event),
        drop: (reason, peer) => this.onDrop(reason, peer),
      },
    });
  }

  /** Binds the UDP port, starts reading the TUN and the timer tick. */
  async start(listenPort = 0): Promise<void> {
    this.bind.onDatagrams((batch) => {
      this.stats.datagramsIn += batch.length;
      try {
        for (const { data, from } of batch) this.core.handleDatagram(data, from);
      } catch (err) {
        this.internalError('datagram', err);
      }
      this.flushDeliveries();
      if (this.nextActivity !== null) this.fireActivity();
    });
    this.tun.onPackets((packets) => {
      this.stats.packetsFromTun += packets.length;
      try {
        this.core.handleTunPackets(packets);
      } catch (err) {
        this.internalError('tun', err);
      }
      this.flushDeliveries();
      if (this.nextActivity !== null) this.fireActivity();
    });
    this.tun.onClose((err) => {
      this.log.info({ err: err?.message }, 'TUN closed');
      void this.close('tun closed');
    });
    this.listenPort = await this.bind.open(listenPort);
    this.ticker = setInterval(() => {
      this.core.tick();
      this.flushDeliveries();
    }, TIMER_TICK_MS);
    this.log.info({ listenPort: this.listenPort }, 'device started');
  }

  private nextActivity: (() => void) | null = null;

  /**
   * Calls `cb` once, after the next batch of live packets (from the TUN or the network) has been
   * handled and flushed; replaces an earlier callback not yet called. The keep-warm timer uses it to
   * wake up with traffic instead of polling the counters.
   */
  onNextActivity(cb: () => void): void {
    this.nextActivity = cb;
  }

  private fireActivity(): void {
    const cb = this.nextActivity!;
    this.nextActivity = null;
    try {
      cb();
    } catch (err) {
      this.internalError('activity', err);
    }
  }

  /** A bug in the core must not take the whole mesh down with it: log it loudly and keep serving. */
  private internalError(path: string, err: unknown): void {
    this.internalErrors++;
    this.log.error({ path, err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) }, 'internal error while handling packets');
  }

  internalErrors = 0;

  /** Sends what the core produced (one batch per endpoint), then writes delivered packets to the TUN. */
  private flushDeliveries(): void {
    if (this.pendingSends.size > 0) {
      // two peers behind one address:port are two batches, each in order: that is all order needs
      for (const [endpoint, datagrams] of this.pendingSends) {
        if (this.bind.sendBatch) this.bind.sendBatch(endpoint, datagrams);
        else for (const d of datagrams) this.bind.send(endpoint, d);
      }
      this.pendingSends.clear();
    }
    if (this.pendingDeliveries.length === 0) return;
    const packets = this.pendingDeliveries;
    this.pendingDeliveries = [];
    this.stats.packetsToTun += packets.length;
    this.tun.write(packets);
  }

  private readonly eventListeners: ((event: DeviceEvent) => void)[] = [];

  /** Subscribes to the core's events (handshake complete, roamed, …); used by controllers. */
  onDeviceEvent(cb: (event: DeviceEvent) => void): void {
    this.eventListeners.push(cb);
  }

  private onEvent(event: DeviceEvent): void {
    for (const cb of this.eventListeners) cb(event);
    switch (event.kind) {
      case 'handshake-initiated':
        this.log.debug({ peer: event.peer.toString(), retry: event.retry }, 'sending handshake initiation');
        break;
      case 'handshake-complete':
        this.log.debug({ peer: event.peer.toString() }, 'handshake complete');
        break;
      case 'session-derived':
        this.log.debug({ peer: event.peer.toString(), initiator: event.isInitiator }, 'session derived');
        break;
      case 'handshake-gave-up':
        this.log.info({ peer: event.peer.toString() }, 'handshake did not complete after 20 attempts, giving up');
        break;
      case 'keys-zeroed':
        this.log.debug({ peer: event.peer.toString() }, 'removing all keys, since no new keys were received');
        break;
      case 'endpoint-roamed':
        this.log.debug({ peer: event.peer.toString(), to: `${event.to.address}:${event.to.port}` }, 'endpoint changed');
        break;
      case 'under-load':
        this.log.warn('device under load: answering handshakes with cookie replies');
        break;
    }
  }

  private onDrop(reason: DropReason, peer: Peer | null): void {
    if (this.log.isLevelEnabled('trace')) this.log.trace({ reason, peer: peer?.toString() }, 'packet dropped');
  }

  onClose(cb: (reason: string) => void): void {
    this.closeListeners.push(cb);
  }

  async close(reason = 'closed'): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = null;
    await this.bind.close().catch(() => undefined);
    try {
      this.tun.close();
    } catch {
      /* already gone */
    }
    for (const cb of this.closeListeners) cb(reason);
  }

  // ---------------------------------------------------------------- UapiDevice

  private peer(publicKey: Uint8Array): Peer {
    const peer = this.core.getPeer(publicKey);
    if (!peer) throw new Error(`no such peer ${peerTag(publicKey)}`);
    return peer;
  }

  getState(): UapiDeviceState {
    return {
      privateKey: this.core.getPrivateKey(),
      listenPort: this.listenPort,
      fwmark: this.fwmark,
      peers: [...this.core.peers()].map((p) => ({
        publicKey: p.publicKey,
        presharedKey: p.presharedKey,
        endpoint: p.endpoint,
        lastHandshakeWallMs: p.lastHandshakeWallMs,
        rxBytes: p.rxBytes,
        txBytes: p.txBytes,
        persistentKeepaliveSec: p.persistentKeepaliveSec,
        allowedIps: this.core.allowedIpsOf(p),
      })),
    };
  }

  publicKey(): Uint8Array | null {
    return this.core.getPublicKey();
  }

  setPrivateKey(key: Uint8Array | null): void {
    this.core.setPrivateKey(key);
  }

  async setListenPort(port: number): Promise<void> {
    if (port === this.listenPort && port !== 0) return;
    this.listenPort = await this.bind.open(port);
    if (this.fwmark) this.bind.setMark(this.fwmark);
    this.log.debug({ listenPort: this.listenPort }, 'UDP bind updated');
  }

  setFwmark(mark: number): void {
    this.bind.setMark(mark);
    this.fwmark = mark;
  }

  removeAllPeers(): void {
    this.core.removeAllPeers();
  }

  hasPeer(publicKey: Uint8Array): boolean {
    return this.core.getPeer(publicKey) !== undefined;
  }

  createPeer(publicKey: Uint8Array): void {
    const peer = this.core.addPeer(publicKey);
    this.log.debug({ peer: peer.toString() }, 'peer created');
  }

  removePeer(publicKey: Uint8Array): void {
    if (this.core.removePeer(publicKey)) this.log.debug({ peer: peerTag(publicKey) }, 'peer removed');
  }

  setPresharedKey(publicKey: Uint8Array, key: Uint8Array | null): void {
    this.core.setPresharedKey(this.peer(publicKey), key);
  }

  setEndpoint(publicKey: Uint8Array, endpoint: Endpoint): void {
    this.core.setEndpoint(this.peer(publicKey), endpoint);
  }

  setPersistentKeepalive(publicKey: Uint8Array, seconds: number): void {
    this.core.setPersistentKeepalive(this.peer(publicKey), seconds);
  }

  replaceAllowedIps(publicKey: Uint8Array): void {
    this.core.allowedIps.removeByPeer(this.peer(publicKey));
  }

  addAllowedIp(publicKey: Uint8Array, prefix: Prefix): void {
    this.core.allowedIps.insert(prefix, this.peer(publicKey));
  }

  removeAllowedIp(publicKey: Uint8Array, prefix: Prefix): void {
    this.core.allowedIps.remove(prefix, this.peer(publicKey));
  }

  peerDone(publicKey: Uint8Array): void {
    const peer = this.core.getPeer(publicKey);
    if (peer) this.core.peerConfigured(peer);
    this.flushDeliveries();
  }
}
