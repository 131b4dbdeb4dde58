/**
 * Property tests of the WireGuard receive path (test/fuzz/wireguard-targets.ts has the contracts).
 * A modest count here; `node dist/bench/fuzz/run.js --target wireguard-device` runs a million.
 */
import { describe, expect, it } from 'vitest';
import { runTarget } from '../../fuzz/target.js';
import { DeviceFuzzBed, deviceDatagramTarget, feedHostile, parseMessageTarget } from '../../fuzz/wireguard-targets.js';
import { fuzzRuns, fuzzSeed } from './fuzz-env.js';

describe('fuzz: WireGuard datagrams', () => {
  it('parseMessage agrees with the (type, exact length) oracle on arbitrary bytes', async () => {
    const r = await runTarget(parseMessageTarget, { numRuns: fuzzRuns(20_000), seed: fuzzSeed() });
    expect(r.cases).toBeGreaterThan(0);
  });

  it('DeviceCore.handleDatagram: every hostile datagram is one counted drop; the live session is untouched', async () => {
    const r = await runTarget(deviceDatagramTarget, { numRuns: fuzzRuns(3_000), seed: fuzzSeed() });
    expect(r.cases).toBeGreaterThan(0);
  });

  it('the bed really exercises cookies, valid mac2 and live indexes (the property is not vacuous)', () => {
    const bed = new DeviceFuzzBed(99);
    const session = bed.dutPeer.keypairs.current;
    expect(session).not.toBeNull();
    expect(bed.corpus.length).toBeGreaterThanOrEqual(4);
    // a burst of valid-mac1 garbage from one source puts the responder under load
    for (let i = 0; i < 30; i++) {
      feedHostile(bed, { datagram: { kind: 'mac1-garbage', type: 1, body: new Uint8Array(148).fill(i), receiver: { random: 0 } }, source: { kind: 'attacker4', a: 7, port: 1000 }, advanceMs: 0 });
    }
    expect(bed.cookieReplies).toBeGreaterThan(0);
    expect(bed.dut.isUnderLoad()).toBe(true);
    // the attacker now holds a cookie: its next message passes mac2 and is rate limited or fails Noise
    const drops = new Map(bed.dut.drops);
    for (let i = 0; i < 10; i++) {
      feedHostile(bed, { datagram: { kind: 'mac1-garbage', type: 1, body: new Uint8Array(148).fill(200 + i), receiver: { random: 0 } }, source: { kind: 'attacker4', a: 7, port: 1000 }, advanceMs: 0 });
    }
    const grew = (r: string): number => (bed.dut.drops.get(r as never) ?? 0) - (drops.get(r as never) ?? 0);
    expect(grew('rate-limited') + grew('handshake-decrypt-failed')).toBe(10);
    expect(grew('rate-limited')).toBeGreaterThan(0);
    // data aimed at the live keypair's index fails authentication
    feedHostile(bed, { datagram: { kind: 'transport', receiver: { live: 0 }, counter: 5, content: new Uint8Array(40) }, source: { kind: 'legit' }, advanceMs: 0 });
    expect(bed.lastDrop).toBe('decrypt-failed');
    // every captured legitimate packet replayed is a drop
    for (let i = 0; i < bed.corpus.length; i++) feedHostile(bed, { datagram: { kind: 'replay', index: i }, source: { kind: 'legit' }, advanceMs: 1500 });
    expect(bed.dutPeer.keypairs.current).toBe(session);
  });
});
