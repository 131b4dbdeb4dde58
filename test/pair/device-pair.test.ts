/**
 * Two in-memory DeviceCores on a manual clock: the handshake, data both ways, and every timer rule of
 * spec/wireguard.md §7 shown by advancing time, plus cookies under load, replay, roaming and the
 * inner-source check.
 */
import { describe, expect, it } from 'vitest';
import { CorePair, ipv4Packet } from '../support/core-pair.js';
import { nodeCrypto } from '../../src/noise/crypto-node.js';
import { nobleCrypto } from '../../src/noise/crypto-noble.js';
import { nativeCrypto } from '../../src/noise/crypto-native.js';
import { bytesToHex } from '../../src/noise/bytes.js';

const INIT = 1;
const RESP = 2;
const COOKIE = 3;
const DATA = 4;

function handshake(pair: CorePair): void {
  pair.a.core.sendHandshakeInitiation(pair.peerOf(pair.a), false);
  pair.flush();
}

for (const crypto of [nodeCrypto, nobleCrypto, nativeCrypto]) {
  describe(`pair over ${crypto.name}`, () => {
    it('completes a handshake on first data and carries packets both ways', () => {
      const pair = new CorePair({ crypto });
      const sent = pair.send(pair.a, 'hello b');
      expect(pair.inFlight.map((d) => d.data[0])).toEqual([INIT]);
      expect(pair.inFlight[0]!.data.length).toBe(148);
      pair.flush();
      expect(pair.sentOfType(RESP, pair.b)).toHaveLength(1);
      expect(pair.sentOfType(RESP, pair.b)[0]!.data.length).toBe(92);
      expect(pair.b.delivered.map(bytesToHex)).toEqual([bytesToHex(sent)]);
      const back = pair.send(pair.b, 'hello a');
      // b was confirmed by a's data, so it sends directly under the new keypair
      expect(pair.inFlight.map((d) => d.data[0])).toEqual([DATA]);
      pair.flush();
      expect(pair.a.delivered.map(bytesToHex)).toEqual([bytesToHex(back)]);
      const pa = pair.peerOf(pair.a);
      const pb = pair.peerOf(pair.b);
      expect(pa.lastHandshakeWallMs).toBe(pair.clock.wallNow());
      expect(pb.lastHandshakeWallMs).toBe(pair.clock.wallNow());
      // byte counters agree across the wire (148 + 92 + data)
      expect(pa.txBytes).toBe(pb.rxBytes);
      expect(pb.txBytes).toBe(pa.rxBytes);
      expect(pa.txBytes).toBe(148 + 64); // initiation + one data packet: 27 bytes padded to 32, + 16 header + 16 tag
    });
  });
}

describe('pair: keys and confirmation', () => {
  it('the responder cannot send under the new keypair until the initiator confirms it', () => {
    const pair = new CorePair();
    // drop a's confirming keepalive
    pair.filter = (d) => !(d.data[0] === DATA && d.from === pair.a.endpoint);
    handshake(pair);
    expect(pair.peerOf(pair.b).keypairs.next).not.toBeNull();
    expect(pair.peerOf(pair.b).keypairs.current).toBeNull();
    pair.send(pair.b, 'too early');
    // b stages its data instead of using the unconfirmed keypair (and its response just went out, so the
    // 5 s handshake gate holds back a new initiation)
    expect(pair.inFlight.filter((d) => d.data[0] === DATA)).toHaveLength(0);
    expect(pair.peerOf(pair.b).staged).toHaveLength(1);
    // a's next packet confirms the keypair; b then flushes what it staged
    pair.filter = () => true;
    pair.send(pair.a, 'confirm');
    pair.flush();
    expect(pair.peerOf(pair.b).keypairs.current).not.toBeNull();
    expect(pair.a.delivered).toHaveLength(1);
    expect(pair.b.delivered).toHaveLength(1);
  });

  it('a confirming packet promotes next to current and completes the responder handshake', () => {
    const pair = new CorePair();
    handshake(pair);
    const pb = pair.peerOf(pair.b);
    expect(pb.keypairs.current).not.toBeNull();
    expect(pb.keypairs.next).toBeNull();
    expect(pair.b.events.some((e) => e.kind === 'handshake-complete')).toBe(true);
  });

  it('is deterministic: same seed and clock give the same initiation bytes', () => {
    const one = new CorePair({ seed: 42 });
    const two = new CorePair({ seed: 42 });
    one.send(one.a);
    two.send(two.a);
    expect(bytesToHex(one.inFlight[0]!.data)).toBe(bytesToHex(two.inFlight[0]!.data));
    const three = new CorePair({ seed: 43 });
    three.send(three.a);
    expect(bytesToHex(three.inFlight[0]!.data)).not.toBe(bytesToHex(one.inFlight[0]!.data));
  });

  it('works with a preshared key, and fails to complete when the keys differ', () => {
    const psk = new Uint8Array(32).fill(9);
    const pair = new CorePair({ psk: undefined, presharedKey: psk } as never);
    pair.send(pair.a);
    pair.flush();
    expect(pair.b.delivered).toHaveLength(1);
    const bad = new CorePair({ presharedKey: psk });
    bad.b.core.setPresharedKey(bad.peerOf(bad.b), new Uint8Array(32).fill(8));
    bad.send(bad.a);
    bad.flush();
    expect(bad.b.delivered).toHaveLength(0);
    expect(bad.a.drops).toContain('handshake-decrypt-failed');
  });
});

describe('pair: timers (spec §7)', () => {
  it('retransmits the initiation every 5 s + jitter and gives up after 20 attempts', () => {
    const pair = new CorePair();
    pair.filter = (d) => d.from !== pair.b.endpoint; // b never answers... because b never hears a
    pair.filter = (d) => d.data[0] !== INIT; // drop every initiation
    pair.send(pair.a);
    expect(pair.sentOfType(INIT, pair.a)).toHaveLength(1);
    pair.advance(4_900);
    expect(pair.sentOfType(INIT, pair.a)).toHaveLength(1);
    pair.advance(600); // 5.5 s: 5 s + up to 333 ms jitter, rounded to the 250 ms tick
    expect(pair.sentOfType(INIT, pair.a)).toHaveLength(2);
    pair.advance(200_000);
    expect(pair.sentOfType(INIT, pair.a)).toHaveLength(20);
    expect(pair.a.events.some((e) => e.kind === 'handshake-gave-up')).toBe(true);
    expect(pair.peerOf(pair.a).staged).toHaveLength(0);
  });

  it('sends a passive keepalive 10 s after receiving data it did not answer', () => {
    const pair = new CorePair();
    handshake(pair);
    pair.send(pair.a, 'data');
    pair.flush();
    const before = pair.sentOfType(DATA, pair.b).length;
    pair.advance(9_750);
    expect(pair.sentOfType(DATA, pair.b).length).toBe(before);
    pair.advance(500);
    const after = pair.sentOfType(DATA, pair.b);
    expect(after.length).toBe(before + 1);
    expect(after[after.length - 1]!.data.length).toBe(32);
  });

  it('starts a new handshake 15 s (+jitter) after sending data that got no answer', () => {
    const pair = new CorePair();
    handshake(pair);
    pair.filter = (d) => d.from !== pair.b.endpoint; // b's answers are lost
    const initsBefore = pair.sentOfType(INIT, pair.a).length;
    pair.send(pair.a, 'anyone there?');
    pair.flush();
    pair.advance(14_750);
    expect(pair.sentOfType(INIT, pair.a).length).toBe(initsBefore);
    pair.advance(1_000);
    expect(pair.sentOfType(INIT, pair.a).length).toBe(initsBefore + 1);
  });

  it('the initiator rekeys on send after 120 s, the responder does not', () => {
    const pair = new CorePair();
    handshake(pair);
    pair.advance(119_000);
    const initsA = pair.sentOfType(INIT, pair.a).length;
    pair.send(pair.a);
    expect(pair.sentOfType(INIT, pair.a).length).toBe(initsA);
    pair.flush();
    pair.advance(2_000);
    pair.send(pair.b);
    expect(pair.sentOfType(INIT, pair.b)).toHaveLength(0);
    pair.send(pair.a);
    expect(pair.sentOfType(INIT, pair.a).length).toBe(initsA + 1);
    pair.flush();
    // the new session replaced the old one and traffic goes on
    const before = pair.b.delivered.length;
    pair.send(pair.a, 'after rekey');
    pair.flush();
    expect(pair.b.delivered.length).toBe(before + 1);
  });

  it('rekeys on receive when the initiator’s keypair is 165 s old', () => {
    const pair = new CorePair();
    handshake(pair);
    pair.advance(166_000);
    const initsA = pair.sentOfType(INIT, pair.a).length;
    pair.send(pair.b, 'from responder');
    pair.flush();
    expect(pair.sentOfType(INIT, pair.a).length).toBe(initsA + 1);
  });

  it('refuses to send or receive on a keypair older than 180 s and re-handshakes', () => {
    const pair = new CorePair();
    handshake(pair);
    const old = pair.peerOf(pair.a).keypairs.current!;
    pair.advance(181_000);
    pair.send(pair.a, 'after expiry');
    expect(pair.inFlight.map((d) => d.data[0])).toEqual([INIT]);
    pair.flush();
    expect(pair.peerOf(pair.a).keypairs.current).not.toBe(old);
    expect(pair.b.delivered).toHaveLength(1);
  });

  it('zeroes all key material 540 s after the last session', () => {
    const pair = new CorePair();
    handshake(pair);
    pair.advance(539_000);
    expect(pair.peerOf(pair.a).keypairs.all().length).toBeGreaterThan(0);
    pair.advance(1_500);
    expect(pair.a.events.some((e) => e.kind === 'keys-zeroed')).toBe(true);
    expect(pair.peerOf(pair.a).keypairs.all()).toHaveLength(0);
    expect(pair.peerOf(pair.b).keypairs.all()).toHaveLength(0);
    expect(pair.a.core.indexCount).toBe(0);
  });

  it('sends a persistent keepalive every interval', () => {
    const pair = new CorePair();
    handshake(pair);
    pair.a.core.setPersistentKeepalive(pair.peerOf(pair.a), 25);
    pair.flush();
    const start = pair.sentOfType(DATA, pair.a).length;
    pair.advance(100_100);
    const keepalives = pair.sentOfType(DATA, pair.a).length - start;
    expect(keepalives).toBe(4);
  });
});

describe('pair: cookies, replay, roaming, routing', () => {
  it('under load answers with a cookie reply; the retransmission carries mac2 and completes', () => {
    const pair = new CorePair({ underLoadHandshakes: 1 });
    pair.send(pair.a);
    pair.flush();
    expect(pair.sentOfType(COOKIE, pair.b)).toHaveLength(1);
    expect(pair.b.drops).toContain('under-load-cookie-sent');
    expect(pair.peerOf(pair.a).cookies.hasFreshCookie(pair.clock.now())).toBe(true);
    expect(pair.b.delivered).toHaveLength(0);
    pair.advance(5_500);
    const inits = pair.sentOfType(INIT, pair.a);
    expect(inits).toHaveLength(2);
    expect(bytesToHex(inits[1]!.data.subarray(132))).not.toBe('00'.repeat(16));
    expect(pair.b.delivered).toHaveLength(1);
  });

  it('under load rate-limits valid initiations per source', () => {
    const pair = new CorePair({ underLoadHandshakes: 1 });
    pair.send(pair.a);
    pair.flush();
    pair.advance(5_500); // the retry with mac2 completes
    const retry = pair.sentOfType(INIT, pair.a)[1]!;
    for (let i = 0; i < 10; i++) pair.b.core.handleDatagram(retry.data.slice(), retry.from);
    expect(pair.b.drops.filter((r) => r === 'rate-limited').length).toBeGreaterThanOrEqual(5);
  });

  it('drops replayed data packets and replayed initiations without touching counters', () => {
    const pair = new CorePair();
    pair.send(pair.a, 'once');
    pair.flush();
    const data = pair.sentOfType(DATA, pair.a).at(-1)!;
    const init = pair.sentOfType(INIT, pair.a)[0]!;
    const pb = pair.peerOf(pair.b);
    const rx = pb.rxBytes;
    pair.b.core.handleDatagram(data.data.slice(), data.from);
    pair.b.core.handleDatagram(init.data.slice(), init.from);
    expect(pair.b.delivered).toHaveLength(1);
    expect(pair.b.drops).toEqual(expect.arrayContaining(['replayed-counter', 'handshake-replay']));
    expect(pb.rxBytes).toBe(rx);
    expect(pair.sentOfType(RESP, pair.b)).toHaveLength(1);
  });

  it('follows the peer to a new endpoint (roaming)', () => {
    const pair = new CorePair();
    handshake(pair);
    pair.a.endpoint = { address: '198.51.100.7', port: 40000 };
    pair.send(pair.a, 'from a new address');
    pair.flush();
    expect(pair.peerOf(pair.b).endpoint).toEqual({ address: '198.51.100.7', port: 40000 });
    pair.send(pair.b, 'reply');
    expect(pair.inFlight[0]!.to).toEqual({ address: '198.51.100.7', port: 40000 });
    pair.flush();
    expect(pair.a.delivered).toHaveLength(1);
    expect(pair.b.events.some((e) => e.kind === 'endpoint-roamed')).toBe(true);
  });

  it('drops inner packets whose source is not the sending peer’s allowed IP', () => {
    const pair = new CorePair();
    handshake(pair);
    pair.a.core.handleTunPackets([ipv4Packet('10.0.0.99', '10.0.0.2', new Uint8Array(8))]);
    pair.flush();
    expect(pair.b.delivered).toHaveLength(0);
    expect(pair.b.drops).toContain('disallowed-source');
  });

  it('drops packets with no route and garbage datagrams as counted drops', () => {
    const pair = new CorePair();
    pair.a.core.handleTunPackets([ipv4Packet('10.0.0.1', '10.9.9.9', new Uint8Array(4)), new Uint8Array([0x60])]);
    expect(pair.a.drops.filter((r) => r === 'no-route')).toHaveLength(2);
    pair.b.core.handleDatagram(new Uint8Array(10), pair.a.endpoint);
    pair.b.core.handleDatagram(new Uint8Array(148).fill(1, 0, 1), pair.a.endpoint);
    expect(pair.b.drops).toEqual(['too-short', 'invalid-mac1']);
    expect(pair.b.core.drops.get('invalid-mac1')).toBe(1);
  });

  it('keeps a late response to our initiation valid while answering the peer’s initiation', () => {
    const pair = new CorePair();
    // both initiate at the same moment
    pair.a.core.sendHandshakeInitiation(pair.peerOf(pair.a), false);
    pair.b.core.sendHandshakeInitiation(pair.peerOf(pair.b), false);
    pair.flush();
    expect(pair.a.drops).not.toContain('unexpected-response');
    expect(pair.b.drops).not.toContain('unexpected-response');
    pair.send(pair.a, 'x');
    pair.send(pair.b, 'y');
    pair.flush();
    expect(pair.a.delivered).toHaveLength(1);
    expect(pair.b.delivered).toHaveLength(1);
  });

  it('stages at most 128 packets while the handshake is pending, dropping the oldest', () => {
    const pair = new CorePair();
    pair.filter = () => false;
    for (let i = 0; i < 130; i++) pair.send(pair.a, `p${i}`);
    expect(pair.peerOf(pair.a).staged).toHaveLength(128);
    expect(pair.a.drops.filter((r) => r === 'staged-overflow')).toHaveLength(2);
  });

  it('removing a peer removes its index entries and routes', () => {
    const pair = new CorePair();
    handshake(pair);
    expect(pair.a.core.indexCount).toBeGreaterThan(0);
    pair.a.core.removePeer(pair.b.publicKey);
    expect(pair.a.core.indexCount).toBe(0);
    expect(pair.a.core.allowedIps.lookup(new Uint8Array([10, 0, 0, 2]))).toBeUndefined();
  });

  it('changing the private key forces a new handshake', () => {
    const pair = new CorePair();
    handshake(pair);
    const newKey = new Uint8Array(32).fill(5);
    pair.b.core.setPrivateKey(newKey);
    pair.advance(5_000);
    // the old keypair can no longer send: b's data waits for a new handshake
    pair.send(pair.b, 'x');
    expect(pair.inFlight.map((d) => d.data[0])).toEqual([INIT]);
  });
});

describe('pair: large batches', () => {
  it('sends a TUN batch larger than the staging queue without dropping any packet', () => {
    const pair = new CorePair();
    handshake(pair);
    const batch = Array.from({ length: 500 }, (_, i) => ipv4Packet('10.0.0.1', '10.0.0.2', new TextEncoder().encode(`p${i}`)));
    pair.a.core.handleTunPackets(batch);
    pair.flush();
    expect(pair.b.delivered).toHaveLength(500);
    expect(pair.a.drops).not.toContain('staged-overflow');
  });
});

describe('pair: what counts as load', () => {
  it('responses to our own initiations never put the device under load (only initiations do)', () => {
    const pair = new CorePair({ underLoadHandshakes: 1 });
    // b initiates; a answers; b consumes the response without sending a cookie reply
    pair.b.core.sendHandshakeInitiation(pair.peerOf(pair.b), false);
    pair.flush();
    expect(pair.sentOfType(COOKIE)).toHaveLength(0);
    expect(pair.b.core.isUnderLoad()).toBe(false);
    expect(pair.peerOf(pair.b).keypairs.current).not.toBeNull();
  });
});
