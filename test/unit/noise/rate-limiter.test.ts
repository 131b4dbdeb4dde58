/**
 * Handshake rate limiter (spec §5) on explicit `nowMs` values: 20 packets/s, burst 5, cost 50 ms,
 * a new source starts at 250 − 50 = 200 ms of tokens, strict "tokens > cost" as wireguard-go.
 */
import { describe, expect, it } from 'vitest';
import { RateLimiter, sourceKeyFor } from '../../../src/noise/rate-limiter.js';

/** Sends `n` packets at `nowMs` and returns how many were allowed. */
function burst(rl: RateLimiter, key: string, nowMs: number, n: number): number {
  let allowed = 0;
  for (let i = 0; i < n; i++) if (rl.allow(key, nowMs)) allowed++;
  return allowed;
}

describe('RateLimiter', () => {
  it('a new source gets its first packet and then three more at the same instant (strict >)', () => {
    const rl = new RateLimiter();
    // tokens: new 200 (allowed, no charge) → 150 → 100 → 50 → 50 > 50 is false
    expect(rl.allow('a', 1000)).toBe(true);
    expect(rl.allow('a', 1000)).toBe(true);
    expect(rl.allow('a', 1000)).toBe(true);
    expect(rl.allow('a', 1000)).toBe(true);
    expect(rl.allow('a', 1000)).toBe(false);
    expect(rl.allow('a', 1000)).toBe(false);
    expect(rl.size).toBe(1);
  });

  it('refills by elapsed time: 50 ms of tokens is not enough, 50 ms + ε is', () => {
    const rl = new RateLimiter();
    expect(burst(rl, 'a', 0, 10)).toBe(4); // 50 tokens left, and 50 > 50 is false
    expect(rl.allow('a', 0.5)).toBe(true); // 50.5 > 50 → 0.5 left
    expect(rl.allow('a', 50)).toBe(false); // 0.5 + 49.5 = 50: exactly the cost is not enough
    expect(rl.allow('a', 50.5)).toBe(true); // 50.5 → 0.5 left
    expect(rl.allow('a', 50.5)).toBe(false);
  });

  it('steady state: one packet per 50 ms + 1 is always allowed after the burst', () => {
    const rl = new RateLimiter();
    expect(burst(rl, 'a', 0, 4)).toBe(4); // tokens now 50
    let t = 0;
    for (let i = 0; i < 100; i++) {
      t += 51; // refill 51 → 101 > 50 → allowed, back to 51, …
      expect(rl.allow('a', t), `packet ${i}`).toBe(true);
    }
  });

  it('sustained flood: about 20 per second get through', () => {
    const rl = new RateLimiter();
    let allowed = 0;
    for (let t = 0; t < 10_000; t += 1) if (rl.allow('flood', t)) allowed++;
    // 4 at the start, then one per 50 ms of refill (allowed only when tokens exceed the cost)
    expect(allowed).toBeGreaterThanOrEqual(10 * 20 - 2);
    expect(allowed).toBeLessThanOrEqual(10 * 20 + 4);
  });

  it('tokens are capped at the burst (250 ms): a long pause buys 4 packets, not more', () => {
    const rl = new RateLimiter();
    expect(burst(rl, 'a', 0, 10)).toBe(4);
    expect(burst(rl, 'a', 60_000, 10)).toBe(4); // 250 → 200 → 150 → 100 → 50
  });

  it('sources are independent', () => {
    const rl = new RateLimiter();
    expect(burst(rl, 'a', 0, 10)).toBe(4);
    expect(burst(rl, 'b', 0, 10)).toBe(4);
    expect(rl.size).toBe(2);
  });

  it('a clock that steps back refills nothing and does not corrupt the bucket', () => {
    const rl = new RateLimiter();
    expect(burst(rl, 'a', 10_000, 10)).toBe(4);
    expect(rl.allow('a', 5_000)).toBe(false);
    expect(rl.allow('a', 10_051)).toBe(true);
  });

  it('gc drops entries idle for more than 1 s, and a dropped source starts fresh', () => {
    const rl = new RateLimiter();
    expect(burst(rl, 'old', 0, 10)).toBe(4);
    rl.allow('recent', 500);
    rl.gc(1000); // 'old' idle exactly 1000 ms: kept
    expect(rl.size).toBe(2);
    rl.gc(1001);
    expect(rl.size).toBe(1);
    rl.gc(1501);
    expect(rl.size).toBe(0);
    expect(burst(rl, 'old', 1001, 10)).toBe(4);
  });
});

describe('sourceKeyFor', () => {
  it('keys IPv4 on the full address', () => {
    expect(sourceKeyFor('192.0.2.1')).not.toBe(sourceKeyFor('192.0.2.2'));
    expect(sourceKeyFor('192.0.2.1')).toBe(sourceKeyFor('192.0.2.1'));
  });

  it('keys IPv6 on the /64, whatever the spelling', () => {
    expect(sourceKeyFor('2001:db8:1:2::1')).toBe(sourceKeyFor('2001:db8:1:2:ffff:ffff:ffff:ffff'));
    expect(sourceKeyFor('2001:DB8:1:2::1')).toBe(sourceKeyFor('2001:0db8:0001:0002:0:0:0:9'));
    expect(sourceKeyFor('2001:db8:1:2::1')).not.toBe(sourceKeyFor('2001:db8:1:3::1'));
    expect(sourceKeyFor('fe80::1%eth0')).toBe(sourceKeyFor('fe80::2'));
  });

  it('keys an IPv4-mapped IPv6 source as its IPv4 address, not as one shared /64', () => {
    expect(sourceKeyFor('::ffff:192.0.2.1')).toBe(sourceKeyFor('192.0.2.1'));
    expect(sourceKeyFor('::ffff:192.0.2.1')).not.toBe(sourceKeyFor('::ffff:192.0.2.2'));
  });

  it('IPv4 and IPv6 keys never collide', () => {
    expect(sourceKeyFor('0.0.0.0')).not.toBe(sourceKeyFor('::'));
  });

  it('rejects text that is not an address, naming the field', () => {
    expect(() => sourceKeyFor('example.com')).toThrow(/^source address: /);
  });
});
