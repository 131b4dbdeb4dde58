/**
 * WireGuard packets from the network: `parseMessage` against an independent oracle, and the whole
 * receive path `DeviceCore.handleDatagram` of a responder that holds a live session with a legitimate
 * peer, fed hostile datagrams of every type: random bytes, right type with wrong length, valid mac1
 * with garbage bodies (built with the cookie module, so they pass the first check), valid mac2 once
 * the attacker has collected a cookie for its source, data packets aimed at live receiver indexes,
 * and truncated / extended / bit-flipped / replayed copies of the real handshake and data packets.
 *
 * Contract (spec/wireguard.md §2, §5; DeviceCore's "drops are values"): every hostile datagram is
 * exactly one counted drop; nothing reaches the TUN; the only thing ever sent back is one cookie
 * reply to the datagram's source while under load; the legitimate peer's keypairs, counters,
 * endpoint and timestamp are untouched; the index table never grows; the rate limiter empties
 * once sources go quiet.
 */
import fc from 'fast-check';
import { CookieGenerator } from '../../src/noise/cookie.js';
import { DeviceCore, type Endpoint, type Peer } from '../../src/noise/device.js';
import { nodeCrypto } from '../../src/noise/crypto-node.js';
import { parsePrefix } from '../../src/noise/allowed-ips.js';
import { clampPrivateKey } from '../../src/noise/keys.js';
import { readCounter, readU32LE, writeU32LE } from '../../src/noise/bytes.js';
import {
  COOKIE_REFRESH_TIME_MS,
  MESSAGE_COOKIE_REPLY_SIZE,
  MESSAGE_COOKIE_REPLY_TYPE,
  MESSAGE_INITIATION_SIZE,
  MESSAGE_MAX_SIZE,
  MESSAGE_RESPONSE_SIZE,
  MESSAGE_TRANSPORT_MIN_SIZE,
  TIMER_TICK_MS,
} from '../../src/noise/constants.js';
import { parseMessage, type DropReason } from '../../src/noise/messages.js';
import { ManualClock, SeededRandom } from '../support/clock.js';
import { ipv4Packet } from '../support/core-pair.js';
import { applyMutation, mutationArb, type Mutation } from './mutate.js';
import { expectThat, type FuzzTarget } from './target.js';

// ---------------------------------------------------------------------------------------------- parseMessage

const SIZES = [0, 1, 4, 16, 31, 32, 33, 63, 64, 65, 91, 92, 93, 147, 148, 149, 1500];

const datagramArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 3, arbitrary: fc.uint8Array({ maxLength: 200 }) },
  {
    weight: 6,
    arbitrary: fc
      .record({
        type: fc.integer({ min: 0, max: 6 }),
        high: fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 0xffffff }) }),
        size: fc.oneof(fc.constantFrom(...SIZES), fc.integer({ min: 0, max: 2000 })),
        fill: fc.uint8Array({ minLength: 16, maxLength: 16 }),
        counterHigh: fc.oneof(fc.constant(0), fc.constant(0x1fffff), fc.constant(0x200000), fc.integer({ min: 0, max: 0xffffffff })),
      })
      .map(({ type, high, size, fill, counterHigh }) => {
        const b = new Uint8Array(size);
        for (let i = 0; i < size; i++) b[i] = fill[i % 16]!;
        if (size > 0) b[0] = type;
        for (let i = 1; i < 4 && i < size; i++) b[i] = (high >>> (8 * (i - 1))) & 0xff;
        if (size >= 16) writeU32LE(b, 12, counterHigh);
        return b;
      }),
  },
  { weight: 1, arbitrary: fc.constantFrom(MESSAGE_MAX_SIZE, MESSAGE_MAX_SIZE + 1).map((n) => new Uint8Array(n).fill(4, 0, 1)) },
);

/** The oracle: what spec §2 says a datagram of these bytes is. */
function expectedParse(b: Uint8Array): { type: string; size?: number } | DropReason {
  if (b.length < MESSAGE_TRANSPORT_MIN_SIZE) return 'too-short';
  if (b.length > MESSAGE_MAX_SIZE) return 'too-long';
  if (b[1] !== 0 || b[2] !== 0 || b[3] !== 0) return 'unknown-type';
  const sizes: Record<number, [string, number]> = { 1: ['initiation', MESSAGE_INITIATION_SIZE], 2: ['response', MESSAGE_RESPONSE_SIZE], 3: ['cookie-reply', MESSAGE_COOKIE_REPLY_SIZE] };
  const fixed = sizes[b[0]!];
  if (fixed) return b.length === fixed[1] ? { type: fixed[0], size: fixed[1] } : 'bad-length';
  if (b[0] === 4) return readU32LE(b, 12) >= 0x200000 ? 'counter-too-large' : { type: 'transport' };
  return 'unknown-type';
}

function within(view: Uint8Array, whole: Uint8Array, offset: number, length: number): boolean {
  return view.buffer === whole.buffer && view.byteOffset === whole.byteOffset + offset && view.length === length;
}

export const parseMessageTarget: FuzzTarget<Uint8Array> = {
  name: 'wireguard-parse',
  description: 'parseMessage(bytes): the (type, exact length) oracle of spec §2; views inside the datagram; never throws',
  setup: () => undefined,
  arbitrary: () => datagramArb,
  check(_ctx, b) {
    const got = parseMessage(b);
    const want = expectedParse(b);
    if (typeof want === 'string') {
      expectThat(got === want, () => `parseMessage(${b.length} bytes, type ${b[0]}): got ${typeof got === 'string' ? got : got.type}, want ${want}`);
      return;
    }
    expectThat(typeof got !== 'string' && got.type === want.type, () => `parseMessage(${b.length} bytes): got ${typeof got === 'string' ? got : got.type}, want ${want.type}`);
    expectThat(got.bytes === b, 'message does not carry the datagram it was parsed from');
    switch (got.type) {
      case 'initiation':
        expectThat(got.sender === readU32LE(b, 4), 'initiation sender');
        expectThat(within(got.ephemeral, b, 8, 32) && within(got.encryptedStatic, b, 40, 48) && within(got.encryptedTimestamp, b, 88, 28), 'initiation field views');
        expectThat(within(got.mac1, b, 116, 16) && within(got.mac2, b, 132, 16), 'initiation mac views');
        break;
      case 'response':
        expectThat(got.sender === readU32LE(b, 4) && got.receiver === readU32LE(b, 8), 'response indexes');
        expectThat(within(got.ephemeral, b, 12, 32) && within(got.encryptedNothing, b, 44, 16), 'response field views');
        expectThat(within(got.mac1, b, 60, 16) && within(got.mac2, b, 76, 16), 'response mac views');
        break;
      case 'cookie-reply':
        expectThat(got.receiver === readU32LE(b, 4) && within(got.nonce, b, 8, 24) && within(got.encryptedCookie, b, 32, 32), 'cookie reply fields');
        break;
      case 'transport':
        expectThat(got.receiver === readU32LE(b, 4), 'transport receiver');
        expectThat(got.counter === readCounter(b, 8) && Number.isSafeInteger(got.counter), 'transport counter');
        expectThat(within(got.content, b, 16, b.length - 16), 'transport content view');
        break;
    }
  },
};

// ---------------------------------------------------------------------------------------------- DeviceCore

const DUT_ENDPOINT: Endpoint = { address: '192.0.2.2', port: 51820 };
const LEGIT_ENDPOINT: Endpoint = { address: '192.0.2.1', port: 51821 };
const DUT_TUNNEL = '10.0.0.2';
const LEGIT_TUNNEL = '10.0.0.1';
/** Handshakes per second above which the responder is under load in this bed (the real default is 128). */
const BED_UNDER_LOAD = 8;
/** Legitimate messages kept as the base for replays and mutants. */
const CORPUS_MAX = 48;
/** Re-handshake the legitimate session when it is this old, so it never expires during a long run. */
const SESSION_REFRESH_MS = 100_000;

interface Sent {
  to: Endpoint;
  data: Uint8Array;
}

/** The observable state of the legitimate peer that hostile input must never change. */
interface PeerSnapshot {
  previous: unknown;
  current: unknown;
  next: unknown;
  pending: unknown;
  rx: number;
  tx: number;
  endpoint: string;
  timestamp: string;
  lastHandshake: number;
}

function snapshot(peer: Peer): PeerSnapshot {
  return {
    previous: peer.keypairs.previous,
    current: peer.keypairs.current,
    next: peer.keypairs.next,
    pending: peer.pendingInitiation,
    rx: peer.rxBytes,
    tx: peer.txBytes,
    endpoint: peer.endpoint ? `${peer.endpoint.address}:${peer.endpoint.port}` : '-',
    timestamp: peer.latestTimestamp ? Buffer.from(peer.latestTimestamp).toString('hex') : '-',
    lastHandshake: peer.lastHandshakeWallMs,
  };
}

function sameSnapshot(a: PeerSnapshot, b: PeerSnapshot): string | null {
  for (const k of Object.keys(a) as (keyof PeerSnapshot)[]) if (a[k] !== b[k]) return k;
  return null;
}

/**
 * A responder (the device under test) and a legitimate initiator on one manual clock, joined by a
 * wire the bed pumps by hand. Every legitimate datagram either side sends is kept (bounded) as the
 * corpus for replays and mutants.
 */
export class DeviceFuzzBed {
  readonly clock = new ManualClock();
  readonly dut: DeviceCore;
  readonly legit: DeviceCore;
  readonly dutPeer: Peer;
  readonly legitPeer: Peer;
  corpus: Uint8Array[] = [];
  dutOut: Sent[] = [];
  legitOut: Sent[] = [];
  dutDelivered = 0;
  lastDrop: DropReason | null = null;
  dropsTotal = 0;
  sessionAt = -Infinity;
  nextTickAt: number;
  /** Cookie state per attacker source (`addr:port`), so attackers learn cookies and send valid mac2. */
  readonly attackers = new Map<string, CookieGenerator>();
  cases = 0;
  cookieReplies = 0;

  constructor(seed: number) {
    const random = new SeededRandom(seed);
    const dutKey = clampPrivateKey(random.fill(new Uint8Array(32)));
    const legitKey = clampPrivateKey(random.fill(new Uint8Array(32)));
    this.dut = new DeviceCore({
      crypto: nodeCrypto,
      clock: this.clock,
      random: new SeededRandom(seed + 1),
      underLoadHandshakes: BED_UNDER_LOAD,
      outputs: {
        send: (to, data) => this.dutOut.push({ to, data: data.slice() }),
        deliver: () => void this.dutDelivered++,
        drop: (reason) => {
          this.lastDrop = reason;
          this.dropsTotal++;
        },
      },
    });
    this.legit = new DeviceCore({
      crypto: nodeCrypto,
      clock: this.clock,
      random: new SeededRandom(seed + 2),
      outputs: {
        send: (to, data) => this.legitOut.push({ to, data: data.slice() }),
        deliver: () => undefined,
      },
    });
    this.dut.setPrivateKey(dutKey);
    this.legit.setPrivateKey(legitKey);
    this.dutPeer = this.dut.addPeer(this.legit.getPublicKey()!);
    this.legitPeer = this.legit.addPeer(this.dut.getPublicKey()!);
    this.dut.setEndpoint(this.dutPeer, LEGIT_ENDPOINT);
    this.legit.setEndpoint(this.legitPeer, DUT_ENDPOINT);
    this.dut.allowedIps.insert(parsePrefix(`${LEGIT_TUNNEL}/32`), this.dutPeer);
    this.legit.allowedIps.insert(parsePrefix(`${DUT_TUNNEL}/32`), this.legitPeer);
    this.nextTickAt = this.clock.now() + TIMER_TICK_MS;
    this.refreshSession();
  }

  /** Delivers what both sides sent until the wire is quiet; returns every datagram moved. */
  pump(): Uint8Array[] {
    const moved: Uint8Array[] = [];
    for (let round = 0; round < 20 && (this.dutOut.length > 0 || this.legitOut.length > 0); round++) {
      const fromLegit = this.legitOut;
      const fromDut = this.dutOut;
      this.legitOut = [];
      this.dutOut = [];
      for (const d of fromLegit) {
        moved.push(d.data);
        this.dut.handleDatagram(d.data, LEGIT_ENDPOINT);
      }
      for (const d of fromDut) {
        moved.push(d.data);
        this.legit.handleDatagram(d.data, DUT_ENDPOINT);
      }
    }
    return moved;
  }

  /**
   * A fresh handshake and data both ways. Under load is left behind first (2 s), so the legitimate
   * exchange goes through without cookies; only exchanges the responder accepted with no drop at all
   * feed the corpus, so every replay of a corpus entry is known to be a duplicate.
   */
  refreshSession(): void {
    this.clock.advance(2_000);
    this.tick();
    const dropsBefore = this.dropsTotal;
    this.legitPeer.lastSentHandshakeAt = -Infinity; // a timer may have sent one < 5 s ago
    this.legit.sendHandshakeInitiation(this.legitPeer, false);
    const moved = this.pump();
    this.legit.handleTunPackets([ipv4Packet(LEGIT_TUNNEL, DUT_TUNNEL, new TextEncoder().encode('legit data'))]);
    moved.push(...this.pump());
    this.dut.handleTunPackets([ipv4Packet(DUT_TUNNEL, LEGIT_TUNNEL, new TextEncoder().encode('legit reply'))]);
    moved.push(...this.pump());
    expectThat(this.dutPeer.keypairs.current !== null, 'bed: the legitimate handshake did not complete');
    this.sessionAt = this.clock.now();
    if (this.dropsTotal === dropsBefore) this.corpus = [...this.corpus, ...moved].slice(-CORPUS_MAX);
  }

  /** The shell's 250 ms timer tick for both sides, then the wire. */
  tick(): void {
    this.dut.tick();
    this.legit.tick();
    this.pump();
  }

  /** Moves the clock; ticks every 250 ms crossed; refreshes the session when it gets old. */
  advance(ms: number): void {
    this.clock.advance(ms);
    while (this.clock.now() >= this.nextTickAt) {
      this.nextTickAt += TIMER_TICK_MS;
      this.tick();
    }
    if (this.clock.now() - this.sessionAt > SESSION_REFRESH_MS) this.refreshSession();
  }

  /** Receiver indexes an attacker can see on the wire: the responder's live keypairs and handshake. */
  liveIndexes(): number[] {
    const out = this.dutPeer.keypairs.all().map((k) => k.localIndex);
    if (this.dutPeer.pendingInitiation) out.push(this.dutPeer.pendingInitiation.localIndex);
    return out;
  }

  attacker(src: Endpoint): CookieGenerator {
    const key = `${src.address}:${src.port}`;
    let gen = this.attackers.get(key);
    if (!gen) {
      if (this.attackers.size > 4096) this.attackers.clear();
      gen = new CookieGenerator(nodeCrypto, this.dut.getPublicKey()!);
      this.attackers.set(key, gen);
    }
    return gen;
  }
}

type Source = { kind: 'attacker4'; a: number; port: number } | { kind: 'attacker6'; a: number; port: number } | { kind: 'legit' };

type Receiver = { live: number } | { random: number };

export type HostileDatagram =
  | { kind: 'random'; bytes: Uint8Array }
  | { kind: 'mac1-garbage'; type: 1 | 2; body: Uint8Array; receiver: Receiver }
  | { kind: 'cookie-reply'; body: Uint8Array; receiver: Receiver }
  | { kind: 'transport'; receiver: Receiver; counter: number; content: Uint8Array }
  | { kind: 'replay'; index: number }
  | { kind: 'mutant'; index: number; mutation: Mutation };

export interface HostileCase {
  datagram: HostileDatagram;
  source: Source;
  advanceMs: number;
  /** How many times the datagram is built and sent in the same millisecond (a burst: meets the rate limiter). */
  burst?: number;
}

const receiverArb: fc.Arbitrary<Receiver> = fc.oneof(fc.record({ live: fc.nat() }), fc.record({ random: fc.integer({ min: 0, max: 0xffffffff }) }));

const sourceArb: fc.Arbitrary<Source> = fc.oneof(
  // a few sources that come back: they collect cookies, then send valid mac2 and meet the rate limiter
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('attacker4' as const), a: fc.integer({ min: 0, max: 7 }), port: fc.constantFrom(1000, 2000) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('attacker4' as const), a: fc.integer({ min: 0, max: 0xffff }), port: fc.integer({ min: 1, max: 65535 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('attacker6' as const), a: fc.integer({ min: 0, max: 0xffff }), port: fc.integer({ min: 1, max: 65535 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'legit' as const }) },
);

const hostileArb: fc.Arbitrary<HostileDatagram> = fc.oneof(
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('random' as const), bytes: datagramArb }) },
  {
    weight: 3,
    arbitrary: fc.oneof(
      fc.record({ kind: fc.constant('mac1-garbage' as const), type: fc.constant(1 as const), body: fc.uint8Array({ minLength: MESSAGE_INITIATION_SIZE, maxLength: MESSAGE_INITIATION_SIZE }), receiver: receiverArb }),
      fc.record({ kind: fc.constant('mac1-garbage' as const), type: fc.constant(2 as const), body: fc.uint8Array({ minLength: MESSAGE_RESPONSE_SIZE, maxLength: MESSAGE_RESPONSE_SIZE }), receiver: receiverArb }),
    ),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cookie-reply' as const), body: fc.uint8Array({ minLength: MESSAGE_COOKIE_REPLY_SIZE, maxLength: MESSAGE_COOKIE_REPLY_SIZE }), receiver: receiverArb }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('transport' as const),
      receiver: receiverArb,
      counter: fc.oneof(fc.nat({ max: 64 }), fc.nat(), fc.constant(2 ** 53 - 1)),
      content: fc.uint8Array({ minLength: 16, maxLength: 200 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('replay' as const), index: fc.nat() }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('mutant' as const), index: fc.nat(), mutation: mutationArb }) },
);

export const hostileCaseArb: fc.Arbitrary<HostileCase> = fc.record({
  datagram: hostileArb,
  source: sourceArb,
  advanceMs: fc.integer({ min: 0, max: 40 }),
  burst: fc.oneof({ weight: 6, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 12 }) }),
});

function sourceEndpoint(s: Source): Endpoint {
  switch (s.kind) {
    case 'legit':
      return LEGIT_ENDPOINT;
    case 'attacker4':
      return { address: `198.18.${s.a >> 8}.${s.a & 0xff}`, port: s.port };
    case 'attacker6':
      return { address: `2001:db8::${s.a.toString(16)}`, port: s.port };
  }
}

function receiverIndex(bed: DeviceFuzzBed, r: Receiver): number {
  if ('random' in r) return r.random;
  const live = bed.liveIndexes();
  return live.length === 0 ? 0 : live[r.live % live.length]!;
}

/** Builds the datagram bytes for a case (valid macs where the case asks for them). */
export function buildHostile(bed: DeviceFuzzBed, d: HostileDatagram, src: Endpoint): Uint8Array {
  switch (d.kind) {
    case 'random':
      return d.bytes;
    case 'mac1-garbage': {
      const msg = d.body.slice();
      msg[0] = d.type;
      msg[1] = msg[2] = msg[3] = 0;
      if (d.type === 2) writeU32LE(msg, 8, receiverIndex(bed, d.receiver));
      // mac1 for the responder's key (and mac2 if this source holds a fresh cookie)
      bed.attacker(src).addMacs(msg, bed.clock.now());
      return msg;
    }
    case 'cookie-reply': {
      const msg = d.body.slice();
      msg[0] = MESSAGE_COOKIE_REPLY_TYPE;
      msg[1] = msg[2] = msg[3] = 0;
      writeU32LE(msg, 4, receiverIndex(bed, d.receiver));
      return msg;
    }
    case 'transport': {
      const msg = new Uint8Array(16 + d.content.length);
      msg[0] = 4;
      writeU32LE(msg, 4, receiverIndex(bed, d.receiver));
      writeU32LE(msg, 8, d.counter % 2 ** 32);
      writeU32LE(msg, 12, Math.floor(d.counter / 2 ** 32));
      msg.set(d.content, 16);
      return msg;
    }
    case 'replay':
      return bed.corpus[d.index % bed.corpus.length]!.slice();
    case 'mutant':
      return applyMutation(bed.corpus[d.index % bed.corpus.length]!, d.mutation);
  }
}

/** Feeds one hostile case and checks the contract; exported for the netns-free unit tests. */
export function feedHostile(bed: DeviceFuzzBed, c: HostileCase): void {
  bed.advance(c.advanceMs);
  for (let i = 0; i < (c.burst ?? 1); i++) feedOne(bed, c);
}

function feedOne(bed: DeviceFuzzBed, c: HostileCase): void {
  bed.cases++;
  const src = sourceEndpoint(c.source);
  // a cookie is only as good as the responder's secret it came from (rotated lazily after 120 s)
  const checker = (bed.dut as unknown as { checker: { secret: Uint8Array | null; secretSetAt: number } }).checker;
  const gen = bed.attacker(src) as unknown as { cookieSetAt: number };
  const hadCookie =
    src !== LEGIT_ENDPOINT &&
    bed.attacker(src).hasFreshCookie(bed.clock.now()) &&
    checker.secret !== null &&
    bed.clock.now() - checker.secretSetAt < COOKIE_REFRESH_TIME_MS &&
    gen.cookieSetAt >= checker.secretSetAt;
  const data = buildHostile(bed, c.datagram, src);
  bed.dutOut = [];
  const before = snapshot(bed.dutPeer);
  const drops = bed.dropsTotal;
  const delivered = bed.dutDelivered;
  const indexes = bed.dut.indexCount;
  bed.lastDrop = null;
  bed.dut.handleDatagram(data, src);
  const what = (): string => `${c.datagram.kind} datagram of ${data.length} bytes (type ${data[0]}) from ${src.address}:${src.port}`;
  expectThat(bed.dropsTotal === drops + 1, () => `${what()}: ${bed.dropsTotal - drops} drops counted, want exactly 1`);
  expectThat(bed.dutDelivered === delivered, () => `${what()}: something was delivered to the TUN`);
  const changedField = sameSnapshot(before, snapshot(bed.dutPeer));
  expectThat(changedField === null, () => `${what()} (dropped as ${bed.lastDrop}): the legitimate peer's ${changedField} changed`);
  expectThat(bed.dut.indexCount === indexes, () => `${what()}: index table grew from ${indexes} to ${bed.dut.indexCount}`);
  if (bed.dutOut.length > 0) {
    expectThat(bed.lastDrop === 'under-load-cookie-sent', () => `${what()}: dropped as ${bed.lastDrop} but ${bed.dutOut.length} datagram(s) were sent`);
    const reply = bed.dutOut[0]!;
    expectThat(bed.dutOut.length === 1 && reply.data.length === MESSAGE_COOKIE_REPLY_SIZE && reply.data[0] === MESSAGE_COOKIE_REPLY_TYPE, () => `${what()}: sent something other than one cookie reply`);
    expectThat(reply.to.address === src.address && reply.to.port === src.port, () => `${what()}: cookie reply went to ${reply.to.address}:${reply.to.port}, not the source`);
    bed.cookieReplies++;
    // the attacker learns its cookie: later messages from this source carry a valid mac2
    if (src !== LEGIT_ENDPOINT) {
      const parsed = parseMessage(reply.data);
      if (typeof parsed !== 'string' && parsed.type === 'cookie-reply') bed.attacker(src).consumeReply(parsed, bed.clock.now());
    }
  } else {
    expectThat(bed.lastDrop !== 'under-load-cookie-sent', () => `${what()}: counted a cookie reply that was not sent`);
  }
  // a message built with a fresh cookie carries a valid mac2: it is never answered with another cookie
  if (c.datagram.kind === 'mac1-garbage' && hadCookie) {
    expectThat(bed.lastDrop !== 'under-load-cookie-sent', () => `${what()}: a valid mac2 (fresh cookie) got another cookie reply`);
  }
  bed.dutOut = [];
}

export const deviceDatagramTarget: FuzzTarget<HostileCase, DeviceFuzzBed> = {
  name: 'wireguard-device',
  description: 'DeviceCore.handleDatagram with a live session: every hostile datagram is exactly one counted drop, session untouched, state bounded',
  setup: (seed) => new DeviceFuzzBed(seed),
  arbitrary: () => hostileCaseArb,
  check: feedHostile,
  summary(bed) {
    const drops = [...bed.dut.drops.entries()].sort((a, b) => b[1] - a[1]).map(([r, n]) => `${r} ${n}`);
    return `cookie replies ${bed.cookieReplies}; drops: ${drops.join(', ')}`;
  },
  finish(bed) {
    // quiet sources are forgotten by the rate limiter's 1 s garbage collection
    bed.advance(2_000);
    const limiter = (bed.dut as unknown as { rateLimiter: { size: number } }).rateLimiter;
    expectThat(limiter.size === 0, () => `rate limiter still tracks ${limiter.size} sources 2 s after the last datagram`);
    expectThat(bed.dut.indexCount <= 4, () => `index table holds ${bed.dut.indexCount} entries for one peer (max 3 keypairs + 1 handshake)`);
    expectThat(bed.dut.peerCount === 1, 'peer count changed');
  },
};
