/**
 * Handshake rate limiter: one token bucket per source, consulted only under load after a valid mac2.
 * Spec: ../shared/spec/wireguard.md §5 (wireguard-go ratelimiter.go; kernel ratelimiter.c).
 *
 * Tokens are measured in milliseconds of allowance. Each packet costs 1000 / 20 = 50 ms; a bucket
 * holds at most 5 × 50 = 250 ms (burst 5). A new source starts with 250 − 50 = 200 and its first
 * packet is allowed; later packets refill by the elapsed time (capped at 250) and are allowed when
 * tokens > 50, strictly, as wireguard-go (the kernel uses ≥). So a burst at one instant lets
 * 4 packets through, and a steady sender gets 20 per second.
 *
 * Time is passed in (`nowMs`, monotonic milliseconds); call `gc(nowMs)` about once a second.
 */
import { RATE_LIMIT_BURST, RATE_LIMIT_PACKETS_PER_SECOND } from './constants.js';
import { parseIp } from './allowed-ips.js';

const PACKET_COST_MS = 1000 / RATE_LIMIT_PACKETS_PER_SECOND;
const MAX_TOKENS_MS = PACKET_COST_MS * RATE_LIMIT_BURST;
/** Entries idle for longer than this are dropped by gc(). */
export const RATE_LIMIT_GC_AFTER_MS = 1_000;

interface Bucket {
  tokens: number;
  lastMs: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  /** Whether a handshake from `sourceKey` (see sourceKeyFor) may be processed at `nowMs`. */
  allow(sourceKey: string, nowMs: number): boolean {
    const bucket = this.buckets.get(sourceKey);
    if (bucket === undefined) {
      this.buckets.set(sourceKey, { tokens: MAX_TOKENS_MS - PACKET_COST_MS, lastMs: nowMs });
      return true;
    }
    // refill by elapsed time (a clock that steps back refills nothing), capped at the burst
    const elapsed = nowMs - bucket.lastMs;
    if (elapsed > 0) {
      bucket.tokens = Math.min(MAX_TOKENS_MS, bucket.tokens + elapsed);
      bucket.lastMs = nowMs;
    }
    if (bucket.tokens > PACKET_COST_MS) {
      bucket.tokens -= PACKET_COST_MS;
      return true;
    }
    return false;
  }

  /** Drops entries idle for more than 1 s. */
  gc(nowMs: number): void {
    for (const [key, bucket] of this.buckets) {
      if (nowMs - bucket.lastMs > RATE_LIMIT_GC_AFTER_MS) this.buckets.delete(key);
    }
  }

  /** Number of sources tracked. */
  get size(): number {
    return this.buckets.size;
  }
}

/**
 * The rate-limit key of a source address as Node reports it (e.g. `rinfo.address`): the full
 * address for IPv4; for IPv6 the /64 prefix, as the kernel does (wireguard-go keys on the full
 * address, but one host can own a whole /64, so the kernel's choice is the safer one). An
 * IPv4-mapped IPv6 address (`::ffff:a.b.c.d` from a dual-stack socket) is keyed as its IPv4
 * address; keying it on its /64 would put every IPv4 sender in one bucket. A zone (`%eth0`) is ignored.
 */
export function sourceKeyFor(address: string): string {
  const zone = address.indexOf('%');
  const bytes = parseIp(zone < 0 ? address : address.slice(0, zone), 'source address');
  if (bytes.length === 4) return `4:${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  let mapped = bytes[10] === 0xff && bytes[11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) mapped = bytes[i] === 0;
  if (mapped) return `4:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  let key = '6:';
  for (let i = 0; i < 8; i++) key += bytes[i]!.toString(16).padStart(2, '0');
  return key;
}
