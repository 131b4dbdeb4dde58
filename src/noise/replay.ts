/**
 * Sliding-window replay filter for transport counters (RFC 6479), as wireguard-go's `replay` package
 * and the kernel's counter validation. Spec: ../shared/spec/wireguard.md §4.
 *
 * The bitmap is a ring of 128 blocks of 64 bits (kept as 256 u32 words, low word first). One block
 * is slack that gets cleared as the window advances, so the window is (128 − 1) × 64 = 8128
 * counters: with `last` the highest counter accepted, a counter c ≤ last is still checked while
 * last − c ≤ 8128.
 *
 *        ring blocks, 64 counters each (8192 bits)
 *   ┌────┬────┬────┬─── … ───┬────┬────┐
 *   │ b0 │ b1 │ b2 │         │b126│b127│   block of c = ⌊c / 64⌋ mod 128
 *   └────┴────┴────┴─── … ───┴────┴────┘
 *   a counter beyond `last` moves the window forward, zeroing every block it skips (at most all 128)
 *
 * Checking happens in two phases: `willAccept` (pure) before decryption so forged or replayed
 * packets cost no AEAD work after the cheap check, and `markReceived` (check-and-set) only after
 * the packet authenticated, so a forged counter can never move the window.
 *
 * A new instance is ready to use (equivalent to `reset()`). Not for concurrent use: the core is
 * single-threaded.
 */
import { REJECT_AFTER_MESSAGES, REPLAY_WINDOW_SIZE } from './constants.js';

const BLOCK_BITS = 64;
const RING_BLOCKS = 128;
const BLOCK_MASK = RING_BLOCKS - 1;
const BIT_MASK = BLOCK_BITS - 1;
const WINDOW_SIZE = (RING_BLOCKS - 1) * BLOCK_BITS;

if (WINDOW_SIZE !== REPLAY_WINDOW_SIZE) throw new Error('replay: ring geometry disagrees with REPLAY_WINDOW_SIZE');

export class ReplayFilter {
  /** Highest counter accepted so far (0 before any). */
  private last = 0;
  /** 128 blocks × 64 bits; block b is words 2b (bits 0–31) and 2b + 1 (bits 32–63). */
  private readonly ring = new Uint32Array(RING_BLOCKS * 2);

  /** Forgets every counter: the state of a new filter. Called when a keypair is created. */
  reset(): void {
    this.last = 0;
    this.ring.fill(0);
  }

  /** The highest counter accepted so far (0 when none). */
  get highest(): number {
    return this.last;
  }

  /**
   * Whether `markReceived(counter)` would accept this counter now. Changes nothing; run it before
   * decryption to drop replays and out-of-window counters cheaply.
   */
  willAccept(counter: number): boolean {
    if (!isCounter(counter)) return false;
    if (counter > this.last) return true; // the window moves forward; the bit's block is (or would be) zeroed
    if (this.last - counter > WINDOW_SIZE) return false; // behind the window
    return !this.isSet(counter);
  }

  /**
   * Check-and-set: records `counter` and returns true, or returns false when it was already seen,
   * lies behind the window, or is ≥ REJECT_AFTER_MESSAGES. Run only after the packet authenticated.
   */
  markReceived(counter: number): boolean {
    if (!isCounter(counter)) return false;
    const block = Math.floor(counter / BLOCK_BITS);
    if (counter > this.last) {
      // move the window forward, zeroing the blocks between the old and the new position
      const current = Math.floor(this.last / BLOCK_BITS);
      const diff = Math.min(block - current, RING_BLOCKS);
      for (let i = 1; i <= diff; i++) {
        const b = (current + i) & BLOCK_MASK;
        this.ring[2 * b] = 0;
        this.ring[2 * b + 1] = 0;
      }
      this.last = counter;
    } else if (this.last - counter > WINDOW_SIZE) {
      return false; // behind the window
    }
    // test and set the bit
    const word = wordOf(counter);
    const mask = maskOf(counter);
    const old = this.ring[word]!;
    if ((old & mask) !== 0) return false;
    this.ring[word] = old | mask;
    return true;
  }

  private isSet(counter: number): boolean {
    return (this.ring[wordOf(counter)]! & maskOf(counter)) !== 0;
  }
}

function isCounter(counter: number): boolean {
  return Number.isInteger(counter) && counter >= 0 && counter < REJECT_AFTER_MESSAGES;
}

// `x & n` keeps the exact low bits of any safe integer (ToInt32 is reduction modulo 2^32).

/** Index of the u32 word holding `counter`'s bit. */
function wordOf(counter: number): number {
  return 2 * (Math.floor(counter / BLOCK_BITS) & BLOCK_MASK) + ((counter & BIT_MASK) >>> 5);
}

/** Mask of `counter`'s bit within its word (as an int32; bit 31 is negative, which `&`/`|` handle). */
function maskOf(counter: number): number {
  return 1 << (counter & 31);
}
