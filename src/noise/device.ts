/**
 * DeviceCore: the whole WireGuard device as a sans-IO state machine. It owns the identity, the peers
 * (keyed by public key), the index table, cryptokey routing, the cookie checker, the handshake rate
 * limiter and under-load state. Inputs arrive as calls (`handleDatagram`, `handleTunPackets`, `tick`,
 * configuration setters); effects leave through the `DeviceOutputs` sink (datagrams to send, packets
 * to deliver to the TUN, events, drops). Time, randomness and crypto are injected.
 *
 * Pipeline, sending:   TUN packet → route by inner destination (allowed IPs) → stage on the peer →
 *                      (no valid keypair: start a handshake and keep it staged) → counter → pad →
 *                      encrypt → send to the peer's endpoint.
 * Pipeline, receiving: datagram → parse (type, exact length) → handshake messages: mac1, under-load
 *                      cookie/mac2 + rate limit, Noise → transport: index → keypair → replay precheck →
 *                      decrypt → replay mark → promote `next` → roam → timers → inner checks → deliver.
 *
 * Spec: ../shared/spec/wireguard.md (§3–§9). Timers follow §7: deadlines stored as timestamps, all
 * rules evaluated in `tick()`, which the shell calls every TIMER_TICK_MS.
 */
import {
  HANDSHAKE_INITIATION_RATE_MS,
  KEEPALIVE_TIMEOUT_MS,
  MAX_PEERS,
  MAX_STAGED_PACKETS,
  MAX_TIMER_HANDSHAKES,
  MESSAGE_TRANSPORT_HEADER_SIZE,
  MESSAGE_TRANSPORT_TYPE,
  REJECT_AFTER_MESSAGES,
  REJECT_AFTER_TIME_MS,
  REKEY_AFTER_MESSAGES,
  REKEY_AFTER_TIME_MS,
  REKEY_ON_RECEIVE_AFTER_MS,
  REKEY_TIMEOUT_JITTER_MAX_MS,
  REKEY_TIMEOUT_MS,
  TAG_SIZE,
  UNDER_LOAD_AFTER_TIME_MS,
  UNDER_LOAD_HANDSHAKES,
  UNDER_LOAD_BUSY_MS,
  ZERO_KEY_MATERIAL_AFTER_MS,
  DEFAULT_MTU,
  PACKET_HEADROOM,
  PACKET_TAILROOM,
} from './constants.js';
import type { Clock, Random } from './clock.js';
import { aeadOpenInPlace, aeadSealInPlace, type CryptoProvider } from './crypto.js';
import { bytesToHex, constantTimeEqual, isZero, writeCounter, writeU32LE } from './bytes.js';
import { clampPrivateKey, generatePrivateKey, peerTag } from './keys.js';
import { tai64n, tai64nAfter } from './tai64n.js';
import { AllowedIps, parseIp, type Prefix } from './allowed-ips.js';
import { RateLimiter, sourceKeyFor } from './rate-limiter.js';
import { CookieChecker, CookieGenerator, cookieSource } from './cookie.js';
import { Keypair, Keypairs } from './keypair.js';
import {
  beginSession,
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createResponse,
  precomputeStaticStatic,
  type InitiationCreated,
} from './handshake.js';
import { paddedLength, parseMessage, type CookieReplyMessage, type DropReason, type InitiationMessage, type ResponseMessage, type TransportMessage } from './messages.js';

/** A UDP endpoint: canonical address text (IPv6 without brackets) and port. */
export interface Endpoint {
  address: string;
  port: number;
}

export type DeviceEvent =
  | { kind: 'handshake-initiated'; peer: Peer; retry: boolean }
  | { kind: 'handshake-complete'; peer: Peer }
  | { kind: 'session-derived'; peer: Peer; isInitiator: boolean }
  | { kind: 'handshake-gave-up'; peer: Peer }
  | { kind: 'keys-zeroed'; peer: Peer }
  | { kind: 'endpoint-roamed'; peer: Peer; from: Endpoint | null; to: Endpoint }
  | { kind: 'under-load'; until: number };

/** Where the core's effects go. The shell implements it; tests collect into arrays. */
export interface DeviceOutputs {
  send(endpoint: Endpoint, datagram: Uint8Array): void;
  deliver(packet: Uint8Array): void;
  event?(event: DeviceEvent): void;
  drop?(reason: DropReason, peer: Peer | null): void;
}

export interface DeviceOptions {
  crypto: CryptoProvider;
  clock: Clock;
  random: Random;
  outputs: DeviceOutputs;
  /** TUN MTU used for padding (0 = pad to 16 only). Default 1420. */
  mtu?: number;
  /** Handshake messages per second above which the device counts as under load. */
  underLoadHandshakes?: number;
  /**
   * The packets given to handleTunPackets may have room around them: a packet that is a view at
   * offset PACKET_HEADROOM of its own ArrayBuffer of exactly length + PACKET_HEADROOM + PACKET_TAILROOM
   * bytes (what the TUN reader makes) is sealed in place, its room overwritten with the header, the
   * padding and the tag. Other packets are copied as always. Default false.
   */
  packetsMayHaveRoom?: boolean;
}

type IndexEntry = { kind: 'handshake'; peer: Peer } | { kind: 'keypair'; peer: Peer; keypair: Keypair };

/** One configured peer: keys, endpoint, handshake, keypairs, timers, staged packets, counters. */
export class Peer {
  readonly key: string;
  presharedKey: Uint8Array | null = null;
  staticStatic: Uint8Array | null = null;
  endpoint: Endpoint | null = null;
  persistentKeepaliveSec = 0;
  readonly cookies: CookieGenerator;
  readonly keypairs: Keypairs;
  /** Our in-flight initiation, kept while we also answer the peer's initiations so a late response still completes. */
  pendingInitiation: InitiationCreated | null = null;
  /** Greatest TAI64N accepted from this peer; survives handshake clearing (lives as long as the peer). */
  latestTimestamp: Uint8Array | null = null;
  lastInitiationConsumedAt = -Infinity;
  lastSentHandshakeAt = -Infinity;
  handshakeAttempts = 0;
  sentLastMinuteHandshake = false;
  staged: Uint8Array[] = [];
  rxBytes = 0;
  txBytes = 0;
  /** Unix ms of the last completed handshake; 0 = never. */
  lastHandshakeWallMs = 0;
  // timer deadlines (monotonic ms); null = not pending
  retransmitHandshakeAt: number | null = null;
  sendKeepaliveAt: number | null = null;
  needAnotherKeepalive = false;
  newHandshakeAt: number | null = null;
  zeroKeyMaterialAt: number | null = null;
  persistentKeepaliveAt: number | null = null;

  constructor(
    readonly publicKey: Uint8Array,
    crypto: CryptoProvider,
    destroyKeypair: (k: Keypair) => void,
  ) {
    this.key = bytesToHex(publicKey);
    this.cookies = new CookieGenerator(crypto, publicKey);
    this.keypairs = new Keypairs(destroyKeypair);
  }

  toString(): string {
    return peerTag(this.publicKey);
  }

  toJSON(): string {
    return this.toString();
  }
}

const EMPTY = new Uint8Array(0);

function sameEndpoint(a: Endpoint | null, b: Endpoint): boolean {
  return a !== null && a.port === b.port && a.address === b.address;
}

export class DeviceCore {
  readonly crypto: CryptoProvider;
  private readonly packetsMayHaveRoom: boolean;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly outputs: DeviceOutputs;
  private privateKey: Uint8Array | null = null;
  private publicKey: Uint8Array | null = null;
  private readonly checker: CookieChecker;
  private readonly rateLimiter = new RateLimiter();
  private readonly peersByKey = new Map<string, Peer>();
  readonly allowedIps = new AllowedIps<Peer>();
  private readonly indexTable = new Map<number, IndexEntry>();
  mtu: number;
  private readonly underLoadHandshakes: number;
  private underLoadUntil = -Infinity;
  private handshakeWindowStart = -Infinity;
  private handshakeWindowCount = 0;
  private handshakeWindowBusyMs = 0;
  private lastGcAt = -Infinity;
  /** Drop counters by reason. */
  readonly drops = new Map<DropReason, number>();

  constructor(opts: DeviceOptions) {
    this.crypto = opts.crypto;
    this.clock = opts.clock;
    this.random = opts.random;
    this.outputs = opts.outputs;
    this.mtu = opts.mtu ?? DEFAULT_MTU;
    this.packetsMayHaveRoom = opts.packetsMayHaveRoom ?? false;
    this.underLoadHandshakes = opts.underLoadHandshakes ?? UNDER_LOAD_HANDSHAKES;
    this.checker = new CookieChecker(this.crypto, this.random);
  }

  // ---------------------------------------------------------------- configuration

  getPrivateKey(): Uint8Array | null {
    return this.privateKey;
  }

  getPublicKey(): Uint8Array | null {
    return this.publicKey;
  }

  /**
   * Sets (or with null/all-zero, removes) the private key. As wireguard-go's SetPrivateKey: a peer with
   * the new public key is removed, static-static values are recomputed, handshakes are cleared and the
   * current keypairs can no longer send, so fresh handshakes follow.
   */
  setPrivateKey(key: Uint8Array | null): void {
    const k = key && !isZero(key) ? clampPrivateKey(key) : null;
    if (k && this.privateKey && constantTimeEqual(k, this.privateKey)) return;
    this.privateKey = k;
    this.publicKey = k ? this.crypto.publicKey(k) : null;
    this.checker.init(this.publicKey);
    if (this.publicKey) {
      const same = this.peersByKey.get(bytesToHex(this.publicKey));
      if (same) this.removePeer(same.publicKey);
    }
    for (const peer of this.peersByKey.values()) {
      peer.staticStatic = k ? precomputeStaticStatic(this.crypto, k, peer.publicKey) : null;
      this.clearHandshake(peer);
      for (const kp of [peer.keypairs.current, peer.keypairs.next]) if (kp) kp.sendCounter = REJECT_AFTER_MESSAGES;
    }
  }

  peers(): IterableIterator<Peer> {
    return this.peersByKey.values();
  }

  get peerCount(): number {
    return this.peersByKey.size;
  }

  getPeer(publicKey: Uint8Array): Peer | undefined {
    return this.peersByKey.get(bytesToHex(publicKey));
  }

  /** Adds a peer (or returns the existing one). Throws when the device is full. */
  addPeer(publicKey: Uint8Array): Peer {
    const existing = this.getPeer(publicKey);
    if (existing) return existing;
    if (this.peersByKey.size >= MAX_PEERS) throw new Error(`too many peers (max ${MAX_PEERS})`);
    const peer = new Peer(publicKey.slice(), this.crypto, (k) => this.indexTable.delete(k.localIndex));
    if (this.privateKey) peer.staticStatic = precomputeStaticStatic(this.crypto, this.privateKey, peer.publicKey);
    this.peersByKey.set(peer.key, peer);
    return peer;
  }

  removePeer(publicKey: Uint8Array): boolean {
    const peer = this.getPeer(publicKey);
    if (!peer) return false;
    this.clearHandshake(peer);
    peer.keypairs.clear();
    peer.staged = [];
    this.allowedIps.removeByPeer(peer);
    this.peersByKey.delete(peer.key);
    return true;
  }

  removeAllPeers(): void {
    for (const peer of [...this.peersByKey.values()]) this.removePeer(peer.publicKey);
  }

  setPresharedKey(peer: Peer, key: Uint8Array | null): void {
    peer.presharedKey = key && !isZero(key) ? key.slice() : null;
  }

  setEndpoint(peer: Peer, endpoint: Endpoint | null): void {
    peer.endpoint = endpoint ? { address: endpoint.address, port: endpoint.port } : null;
  }

  /** Sets the persistent keepalive; turning it on sends a keepalive at once (as wireguard-go when up). */
  setPersistentKeepalive(peer: Peer, seconds: number): void {
    const wasOff = peer.persistentKeepaliveSec === 0;
    peer.persistentKeepaliveSec = seconds;
    if (seconds === 0) peer.persistentKeepaliveAt = null;
    else if (wasOff) this.sendKeepalive(peer);
  }

  /** Sends staged packets after configuration (wireguard-go starts the peer and flushes after each UAPI peer block). */
  peerConfigured(peer: Peer): void {
    if (peer.staged.length > 0) this.sendStagedPackets(peer);
  }

  // ---------------------------------------------------------------- TUN → network

  /** Routes, stages and sends a batch of packets read from the TUN. */
  handleTunPackets(packets: Uint8Array[]): void {
    let touched: Peer | Set<Peer> | null = null;
    for (const packet of packets) {
      const peer = this.routeOutbound(packet);
      if (!peer) {
        this.countDrop('no-route', null);
        continue;
      }
      if (peer.staged.length >= MAX_STAGED_PACKETS) {
        // a large batch for one peer: send what is staged first; only without a usable session does
        // the queue stay full, and then the oldest packet gives way
        this.sendStagedPackets(peer);
        if (peer.staged.length >= MAX_STAGED_PACKETS) {
          peer.staged.shift();
          this.countDrop('staged-overflow', peer);
        }
      }
      peer.staged.push(packet);
      if (touched === null) touched = peer;
      else if (touched !== peer) {
        if (touched instanceof Set) touched.add(peer);
        else touched = new Set([touched, peer]);
      }
    }
    if (touched instanceof Set) for (const p of touched) this.sendStagedPackets(p);
    else if (touched) this.sendStagedPackets(touched);
  }

  private routeOutbound(packet: Uint8Array): Peer | undefined {
    if (packet.length < 1) return undefined;
    const version = packet[0]! >> 4;
    if (version === 4) {
      if (packet.length < 20) return undefined;
      return this.allowedIps.lookup(packet.subarray(16, 20));
    }
    if (version === 6) {
      if (packet.length < 40) return undefined;
      return this.allowedIps.lookup(packet.subarray(24, 40));
    }
    return undefined;
  }

  /** A keepalive is an empty staged packet; skipped when data is already staged (the data confirms). */
  sendKeepalive(peer: Peer): void {
    if (peer.staged.length === 0) peer.staged.push(EMPTY);
    this.sendStagedPackets(peer);
  }

  private sendStagedPackets(peer: Peer): void {
    if (peer.staged.length === 0) return;
    const now = this.clock.now();
    const keypair = peer.keypairs.current;
    if (!keypair || keypair.sendCounter >= REJECT_AFTER_MESSAGES || now - keypair.createdAt >= REJECT_AFTER_TIME_MS) {
      this.sendHandshakeInitiation(peer, false);
      return;
    }
    const endpoint = peer.endpoint;
    const staged = peer.staged;
    peer.staged = [];
    if (!endpoint) {
      for (let i = 0; i < staged.length; i++) this.countDrop('no-endpoint', peer);
      return;
    }
    let dataSent = false;
    for (const packet of staged) {
      if (keypair.sendCounter >= REJECT_AFTER_MESSAGES) {
        // out of counters: keep the rest staged and re-handshake
        peer.staged.push(packet);
        continue;
      }
      const datagram = this.encrypt(keypair, packet);
      this.outputs.send(endpoint, datagram);
      peer.txBytes += datagram.length;
      if (packet.length > 0) dataSent = true;
    }
    this.timersAnyAuthenticatedPacketTraversal(peer, now);
    this.timersAnyAuthenticatedPacketSent(peer);
    if (dataSent) this.timersDataSent(peer, now);
    if (peer.staged.length > 0) this.sendHandshakeInitiation(peer, false);
    this.keepKeyFreshSending(peer, now);
  }

  /** Builds one transport datagram: header, the packet padded per spec §6, sealed in place. */
  private encrypt(keypair: Keypair, packet: Uint8Array): Uint8Array {
    const counter = keypair.sendCounter++;
    const padded = paddedLength(packet.length, this.mtu);
    let datagram: Uint8Array;
    if (
      this.packetsMayHaveRoom &&
      packet.byteOffset === PACKET_HEADROOM &&
      packet.buffer.byteLength === packet.length + PACKET_HEADROOM + PACKET_TAILROOM &&
      padded - packet.length + TAG_SIZE <= PACKET_TAILROOM
    ) {
      // the reader's own buffer with room for header, padding and tag: seal where the packet lies
      datagram = new Uint8Array(packet.buffer, 0, MESSAGE_TRANSPORT_HEADER_SIZE + padded + TAG_SIZE);
      datagram.fill(0, 1, 4);
      datagram.fill(0, MESSAGE_TRANSPORT_HEADER_SIZE + packet.length, MESSAGE_TRANSPORT_HEADER_SIZE + padded);
    } else {
      datagram = new Uint8Array(MESSAGE_TRANSPORT_HEADER_SIZE + padded + TAG_SIZE);
      datagram.set(packet, MESSAGE_TRANSPORT_HEADER_SIZE);
    }
    datagram[0] = MESSAGE_TRANSPORT_TYPE;
    writeU32LE(datagram, 4, keypair.remoteIndex);
    writeCounter(datagram, 8, counter);
    aeadSealInPlace(keypair.send, counter, datagram, MESSAGE_TRANSPORT_HEADER_SIZE, padded);
    return datagram;
  }

  /** Rekey on send: counter near the limit, or we initiated the current keypair over 120 s ago. */
  private keepKeyFreshSending(peer: Peer, now: number): void {
    const keypair = peer.keypairs.current;
    if (!keypair) return;
    if (keypair.sendCounter > REKEY_AFTER_MESSAGES || (keypair.isInitiator && now - keypair.createdAt > REKEY_AFTER_TIME_MS)) {
      this.sendHandshakeInitiation(peer, false);
    }
  }

  // ---------------------------------------------------------------- handshakes we send

  /** Sends an initiation unless one went out less than REKEY_TIMEOUT ago. */
  sendHandshakeInitiation(peer: Peer, isRetry: boolean): void {
    if (!isRetry) peer.handshakeAttempts = 0;
    const now = this.clock.now();
    if (now - peer.lastSentHandshakeAt < REKEY_TIMEOUT_MS) return;
    peer.lastSentHandshakeAt = now;
    if (!this.privateKey || !this.publicKey) {
      this.countDrop('no-private-key', peer);
      return;
    }
    if (!peer.staticStatic) {
      this.countDrop('zero-shared-secret', peer);
      return;
    }
    if (peer.pendingInitiation) this.indexTable.delete(peer.pendingInitiation.localIndex);
    peer.pendingInitiation = null;
    const localIndex = this.allocateIndex({ kind: 'handshake', peer });
    const ephemeral = generatePrivateKey(this.random);
    const created = createInitiation(
      this.crypto,
      { privateKey: this.privateKey, publicKey: this.publicKey },
      peer.publicKey,
      peer.staticStatic,
      ephemeral,
      localIndex,
      tai64n(this.clock.wallNow()),
    );
    if (!created) {
      this.indexTable.delete(localIndex);
      this.countDrop('zero-shared-secret', peer);
      return;
    }
    peer.pendingInitiation = created.state;
    peer.cookies.addMacs(created.message, now);
    this.timersAnyAuthenticatedPacketTraversal(peer, now);
    this.timersAnyAuthenticatedPacketSent(peer);
    this.sendToPeer(peer, created.message);
    this.emit({ kind: 'handshake-initiated', peer, retry: isRetry });
    this.timersHandshakeInitiated(peer, now);
  }

  private sendToPeer(peer: Peer, datagram: Uint8Array): void {
    if (!peer.endpoint) {
      this.countDrop('no-endpoint', peer);
      return;
    }
    this.outputs.send(peer.endpoint, datagram);
    peer.txBytes += datagram.length;
  }

  private allocateIndex(entry: IndexEntry): number {
    for (;;) {
      const index = this.random.u32() >>> 0;
      if (!this.indexTable.has(index)) {
        this.indexTable.set(index, entry);
        return index;
      }
    }
  }

  private clearHandshake(peer: Peer): void {
    if (peer.pendingInitiation) this.indexTable.delete(peer.pendingInitiation.localIndex);
    peer.pendingInitiation = null;
  }

  // ---------------------------------------------------------------- network → device

  /** Handles one received datagram from `from`. */
  handleDatagram(data: Uint8Array, from: Endpoint): void {
    const msg = parseMessage(data);
    if (typeof msg === 'string') {
      this.countDrop(msg, null);
      return;
    }
    switch (msg.type) {
      case 'transport':
        this.receiveTransport(msg, from);
        return;
      case 'initiation':
        this.receiveInitiation(msg, from);
        return;
      case 'response':
        this.receiveResponse(msg, from);
        return;
      case 'cookie-reply':
        this.receiveCookieReply(msg);
        return;
    }
  }

  isUnderLoad(now = this.clock.now()): boolean {
    return now < this.underLoadUntil;
  }

  /**
   * wireguard-go is under load when 128 handshake messages wait in its queue, i.e. when handshakes
   * arrive faster than it can process them. One thread has no queue to look at, so the analogue is
   * measured: within a one-second window, either the time spent consuming initiations reaches
   * UNDER_LOAD_BUSY_MS (the thread can no longer keep up), or the number of initiations reaches
   * `underLoadHandshakes`. Responses do not count: we only consume those that answer our own pending
   * initiation, which a flood cannot forge. Under load lasts 1 s after the last detection.
   */
  private noteInitiationArrival(now: number, busyMs = 0): void {
    if (now - this.handshakeWindowStart >= 1000) {
      this.handshakeWindowStart = now;
      this.handshakeWindowCount = 0;
      this.handshakeWindowBusyMs = 0;
    }
    this.handshakeWindowCount++;
    this.handshakeWindowBusyMs += busyMs;
    if (this.handshakeWindowCount >= this.underLoadHandshakes || this.handshakeWindowBusyMs >= UNDER_LOAD_BUSY_MS) {
      if (!this.isUnderLoad(now)) this.emit({ kind: 'under-load', until: now + UNDER_LOAD_AFTER_TIME_MS });
      this.underLoadUntil = now + UNDER_LOAD_AFTER_TIME_MS;
    }
  }

  /** Adds the time spent on one initiation to the current window (measured by the caller). */
  private noteInitiationBusy(startedAt: number): void {
    const now = this.clock.now();
    this.handshakeWindowBusyMs += now - startedAt;
    if (this.handshakeWindowBusyMs >= UNDER_LOAD_BUSY_MS && !this.isUnderLoad(now)) {
      this.emit({ kind: 'under-load', until: now + UNDER_LOAD_AFTER_TIME_MS });
      this.underLoadUntil = now + UNDER_LOAD_AFTER_TIME_MS;
    }
  }

  /** mac1 always; under load a valid mac2 (else a cookie reply) and the per-source rate limit. */
  private admitHandshake(msg: InitiationMessage | ResponseMessage, from: Endpoint, now: number): boolean {
    if (!this.checker.checkMac1(msg.bytes)) {
      this.countDrop('invalid-mac1', null);
      return false;
    }
    if (msg.type === 'initiation') this.noteInitiationArrival(now);
    if (!this.isUnderLoad(now)) return true;
    const source = cookieSource(parseIp(from.address), from.port);
    if (!this.checker.checkMac2(msg.bytes, source, now)) {
      const reply = this.checker.createReply(msg.bytes, msg.sender, source, now);
      if (reply) this.outputs.send(from, reply);
      this.countDrop('under-load-cookie-sent', null);
      return false;
    }
    if (!this.rateLimiter.allow(sourceKeyFor(from.address), now)) {
      this.countDrop('rate-limited', null);
      return false;
    }
    return true;
  }

  private receiveInitiation(msg: InitiationMessage, from: Endpoint): void {
    const now = this.clock.now();
    if (!this.privateKey || !this.publicKey) {
      this.countDrop('no-private-key', null);
      return;
    }
    if (!this.admitHandshake(msg, from, now)) return;
    try {
      this.consumeAndRespond(msg, from, now);
    } finally {
      this.noteInitiationBusy(now);
    }
  }

  private consumeAndRespond(msg: InitiationMessage, from: Endpoint, now: number): void {
    if (!this.privateKey || !this.publicKey) return;
    const local = { privateKey: this.privateKey, publicKey: this.publicKey };
    const result = consumeInitiation(this.crypto, local, msg, (remoteStatic) => {
      const peer = this.getPeer(remoteStatic);
      if (!peer || !peer.staticStatic) return undefined;
      return { peer, staticStatic: peer.staticStatic };
    });
    if (typeof result === 'string') {
      this.countDrop(result, null);
      return;
    }
    const { peer, consumed } = result;
    // protect against replay & flood
    if (peer.latestTimestamp && !tai64nAfter(consumed.timestamp, peer.latestTimestamp)) {
      this.countDrop('handshake-replay', peer);
      return;
    }
    if (now - peer.lastInitiationConsumedAt <= HANDSHAKE_INITIATION_RATE_MS) {
      this.countDrop('handshake-flood', peer);
      return;
    }
    peer.latestTimestamp = consumed.timestamp;
    peer.lastInitiationConsumedAt = now;
    peer.rxBytes += msg.bytes.length;
    this.roam(peer, from);
    this.timersAnyAuthenticatedPacketTraversal(peer, now);
    this.timersAnyAuthenticatedPacketReceived(peer);

    // create response
    const localIndex = this.allocateIndex({ kind: 'handshake', peer });
    const response = createResponse(this.crypto, consumed, peer.presharedKey, generatePrivateKey(this.random), localIndex);
    if (!response) {
      this.indexTable.delete(localIndex);
      this.countDrop('zero-shared-secret', peer);
      return;
    }
    peer.cookies.addMacs(response.message, now);
    const keys = beginSession(this.crypto, response.chainKey, false);
    this.installKeypair(peer, keys.sendKey, keys.receiveKey, false, localIndex, consumed.remoteIndex, now);
    peer.lastSentHandshakeAt = now;
    this.timersAnyAuthenticatedPacketTraversal(peer, now);
    this.timersAnyAuthenticatedPacketSent(peer);
    this.sendToPeer(peer, response.message);
  }

  private receiveResponse(msg: ResponseMessage, from: Endpoint): void {
    const now = this.clock.now();
    if (!this.privateKey || !this.publicKey) {
      this.countDrop('no-private-key', null);
      return;
    }
    if (!this.admitHandshake(msg, from, now)) return;
    const entry = this.indexTable.get(msg.receiver);
    const peer = entry?.kind === 'handshake' ? entry.peer : undefined;
    const created = peer?.pendingInitiation;
    if (!peer || !created || created.localIndex !== msg.receiver) {
      this.countDrop('unexpected-response', peer ?? null);
      return;
    }
    const result = consumeResponse(this.crypto, { privateKey: this.privateKey, publicKey: this.publicKey }, created, peer.presharedKey, msg);
    if (typeof result === 'string') {
      this.countDrop(result, peer);
      return;
    }
    peer.pendingInitiation = null;
    peer.rxBytes += msg.bytes.length;
    this.roam(peer, from);
    this.timersAnyAuthenticatedPacketTraversal(peer, now);
    this.timersAnyAuthenticatedPacketReceived(peer);
    const keys = beginSession(this.crypto, result.chainKey, true);
    // the handshake's index now names the keypair
    this.installKeypair(peer, keys.sendKey, keys.receiveKey, true, created.localIndex, result.remoteIndex, now);
    this.timersHandshakeComplete(peer);
    this.sendKeepalive(peer);
  }

  private installKeypair(peer: Peer, sendKey: Uint8Array, receiveKey: Uint8Array, isInitiator: boolean, localIndex: number, remoteIndex: number, now: number): void {
    const keypair = new Keypair(this.crypto.aead(sendKey), this.crypto.aead(receiveKey), now, isInitiator, localIndex, remoteIndex);
    sendKey.fill(0);
    receiveKey.fill(0);
    this.indexTable.set(localIndex, { kind: 'keypair', peer, keypair });
    peer.keypairs.install(keypair);
    this.timersSessionDerived(peer, now);
    this.emit({ kind: 'session-derived', peer, isInitiator });
  }

  private receiveCookieReply(msg: CookieReplyMessage): void {
    const entry = this.indexTable.get(msg.receiver);
    if (!entry) {
      this.countDrop('unknown-receiver-index', null);
      return;
    }
    if (!entry.peer.cookies.consumeReply(msg, this.clock.now())) this.countDrop('cookie-decrypt-failed', entry.peer);
  }

  private receiveTransport(msg: TransportMessage, from: Endpoint): void {
    const entry = this.indexTable.get(msg.receiver);
    if (!entry || entry.kind !== 'keypair') {
      this.countDrop('unknown-receiver-index', null);
      return;
    }
    const { peer, keypair } = entry;
    const now = this.clock.now();
    if (now - keypair.createdAt >= REJECT_AFTER_TIME_MS) {
      this.countDrop('keypair-expired', peer);
      return;
    }
    if (!keypair.replay.willAccept(msg.counter)) {
      this.countDrop('replayed-counter', peer);
      return;
    }
    // decrypted in place: the datagram belongs to us from here on
    const sealedLength = msg.content.length - TAG_SIZE;
    if (!aeadOpenInPlace(keypair.receive, msg.counter, msg.bytes, MESSAGE_TRANSPORT_HEADER_SIZE, sealedLength)) {
      this.countDrop('decrypt-failed', peer);
      return;
    }
    const plaintext = msg.bytes.subarray(MESSAGE_TRANSPORT_HEADER_SIZE, MESSAGE_TRANSPORT_HEADER_SIZE + sealedLength);
    if (!keypair.replay.markReceived(msg.counter)) {
      this.countDrop('replayed-counter', peer);
      return;
    }
    if (peer.keypairs.receivedWith(keypair)) {
      this.timersHandshakeComplete(peer);
      this.sendStagedPackets(peer);
    }
    this.roam(peer, from);
    this.keepKeyFreshReceiving(peer, now);
    this.timersAnyAuthenticatedPacketTraversal(peer, now);
    this.timersAnyAuthenticatedPacketReceived(peer);
    peer.rxBytes += msg.bytes.length;
    if (plaintext.length === 0) return; // keepalive
    this.timersDataReceived(peer, now);

    // check the inner packet: version, length, and that its source routes back to this peer
    const version = plaintext[0]! >> 4;
    let length: number;
    let source: Uint8Array;
    if (version === 4) {
      if (plaintext.length < 20) return this.countDrop('invalid-inner-packet', peer);
      length = (plaintext[2]! << 8) | plaintext[3]!;
      if (length < 20 || length > plaintext.length) return this.countDrop('invalid-inner-packet', peer);
      source = plaintext.subarray(12, 16);
    } else if (version === 6) {
      if (plaintext.length < 40) return this.countDrop('invalid-inner-packet', peer);
      length = ((plaintext[4]! << 8) | plaintext[5]!) + 40;
      if (length > plaintext.length) return this.countDrop('invalid-inner-packet', peer);
      source = plaintext.subarray(8, 24);
    } else {
      return this.countDrop('invalid-inner-packet', peer);
    }
    if (this.allowedIps.lookup(source) !== peer) return this.countDrop('disallowed-source', peer);
    this.outputs.deliver(length === plaintext.length ? plaintext : plaintext.subarray(0, length));
  }

  /** Rekey on receive: we initiated the current keypair and it is 165 s old. Once per session. */
  private keepKeyFreshReceiving(peer: Peer, now: number): void {
    if (peer.sentLastMinuteHandshake) return;
    const keypair = peer.keypairs.current;
    if (keypair && keypair.isInitiator && now - keypair.createdAt > REKEY_ON_RECEIVE_AFTER_MS) {
      peer.sentLastMinuteHandshake = true;
      this.sendHandshakeInitiation(peer, false);
    }
  }

  /** The endpoint follows the source of every authenticated packet (roaming). */
  private roam(peer: Peer, from: Endpoint): void {
    if (sameEndpoint(peer.endpoint, from)) return;
    const previous = peer.endpoint;
    peer.endpoint = { address: from.address, port: from.port };
    if (previous) this.emit({ kind: 'endpoint-roamed', peer, from: previous, to: peer.endpoint });
  }

  // ---------------------------------------------------------------- timers

  private jitter(): number {
    return this.random.u32() % REKEY_TIMEOUT_JITTER_MAX_MS;
  }

  /** After a data (non-keepalive) batch is sent: expect an answer within 15 s, else re-handshake. */
  private timersDataSent(peer: Peer, now: number): void {
    if (peer.newHandshakeAt === null) peer.newHandshakeAt = now + KEEPALIVE_TIMEOUT_MS + REKEY_TIMEOUT_MS + this.jitter();
  }

  /** After authenticated data is received: answer with a keepalive within 10 s unless we send first. */
  private timersDataReceived(peer: Peer, now: number): void {
    if (peer.sendKeepaliveAt === null) peer.sendKeepaliveAt = now + KEEPALIVE_TIMEOUT_MS;
    else peer.needAnotherKeepalive = true;
  }

  /** Any authenticated packet sent (data, keepalive, handshake) cancels the passive keepalive. */
  private timersAnyAuthenticatedPacketSent(peer: Peer): void {
    peer.sendKeepaliveAt = null;
  }

  /** Any authenticated packet received cancels the new-handshake timer. */
  private timersAnyAuthenticatedPacketReceived(peer: Peer): void {
    peer.newHandshakeAt = null;
  }

  private timersHandshakeInitiated(peer: Peer, now: number): void {
    peer.retransmitHandshakeAt = now + REKEY_TIMEOUT_MS + this.jitter();
  }

  private timersHandshakeComplete(peer: Peer): void {
    peer.retransmitHandshakeAt = null;
    peer.handshakeAttempts = 0;
    peer.sentLastMinuteHandshake = false;
    peer.lastHandshakeWallMs = this.clock.wallNow();
    this.emit({ kind: 'handshake-complete', peer });
  }

  /** Keys are zeroed 540 s after the last session was derived. */
  private timersSessionDerived(peer: Peer, now: number): void {
    peer.zeroKeyMaterialAt = now + ZERO_KEY_MATERIAL_AFTER_MS;
  }

  /** Every authenticated packet sent or received re-arms the persistent keepalive. */
  private timersAnyAuthenticatedPacketTraversal(peer: Peer, now: number): void {
    if (peer.persistentKeepaliveSec > 0) peer.persistentKeepaliveAt = now + peer.persistentKeepaliveSec * 1000;
  }

  /** Applies every timer rule whose deadline has passed. The shell calls this every TIMER_TICK_MS. */
  tick(): void {
    const now = this.clock.now();
    for (const peer of this.peersByKey.values()) {
      // retransmit-handshake: resend the initiation every 5 s (+jitter); give up after 18 retries (~90 s)
      if (peer.retransmitHandshakeAt !== null && now >= peer.retransmitHandshakeAt) {
        peer.retransmitHandshakeAt = null;
        if (peer.handshakeAttempts > MAX_TIMER_HANDSHAKES) {
          peer.sendKeepaliveAt = null;
          peer.staged = [];
          if (peer.zeroKeyMaterialAt === null) peer.zeroKeyMaterialAt = now + ZERO_KEY_MATERIAL_AFTER_MS;
          this.emit({ kind: 'handshake-gave-up', peer });
        } else {
          peer.handshakeAttempts++;
          this.sendHandshakeInitiation(peer, true);
        }
      }
      // send-keepalive: we received data and sent nothing back for 10 s
      if (peer.sendKeepaliveAt !== null && now >= peer.sendKeepaliveAt) {
        peer.sendKeepaliveAt = null;
        this.sendKeepalive(peer);
        if (peer.needAnotherKeepalive) {
          peer.needAnotherKeepalive = false;
          peer.sendKeepaliveAt = now + KEEPALIVE_TIMEOUT_MS;
        }
      }
      // new-handshake: we sent data and heard nothing for 15 s
      if (peer.newHandshakeAt !== null && now >= peer.newHandshakeAt) {
        peer.newHandshakeAt = null;
        this.sendHandshakeInitiation(peer, false);
      }
      // zero-key-material: no new session for 540 s
      if (peer.zeroKeyMaterialAt !== null && now >= peer.zeroKeyMaterialAt) {
        peer.zeroKeyMaterialAt = null;
        peer.keypairs.clear();
        this.clearHandshake(peer);
        peer.staged = [];
        this.emit({ kind: 'keys-zeroed', peer });
      }
      // persistent keepalive
      if (peer.persistentKeepaliveAt !== null && now >= peer.persistentKeepaliveAt) {
        peer.persistentKeepaliveAt = null;
        if (peer.persistentKeepaliveSec > 0) this.sendKeepalive(peer);
      }
    }
    if (now - this.lastGcAt >= 1000) {
      this.lastGcAt = now;
      this.rateLimiter.gc(now);
    }
  }

  // ---------------------------------------------------------------- bookkeeping

  private countDrop(reason: DropReason, peer: Peer | null): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
    this.outputs.drop?.(reason, peer);
  }

  private emit(event: DeviceEvent): void {
    this.outputs.event?.(event);
  }

  /** Number of live index-table entries (handshakes + keypairs); for tests and metrics. */
  get indexCount(): number {
    return this.indexTable.size;
  }

  allowedIpsOf(peer: Peer): Prefix[] {
    return this.allowedIps.entriesForPeer(peer);
  }
}
