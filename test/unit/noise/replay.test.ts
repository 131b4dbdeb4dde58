/**
 * RFC 6479 replay window: a numbered case list in the manner of wireguard-go's replay_test.go (itself
 * ported from the kernel's selftest), bulk fills at the window edges, and a property test against a
 * naive Set-based oracle. The window is 8128 counters; the limit is REJECT_AFTER_MESSAGES, which is
 * clamped to Number.MAX_SAFE_INTEGER here (see constants.ts).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ReplayFilter } from '../../../src/noise/replay.js';
import { REJECT_AFTER_MESSAGES, REPLAY_WINDOW_SIZE } from '../../../src/noise/constants.js';

const WINDOW = REPLAY_WINDOW_SIZE; // 8128
const LIMIT = REJECT_AFTER_MESSAGES; // first rejected counter
const T = WINDOW + 1; // the first counter that pushes 0 out of the window

/** Runs [counter, expected] steps in order; willAccept must predict markReceived at every step. */
function run(filter: ReplayFilter, steps: [number, boolean][]): void {
  steps.forEach(([counter, expected], i) => {
    const label = `case ${i + 1}: counter ${counter}`;
    expect(filter.willAccept(counter), `${label} (willAccept)`).toBe(expected);
    expect(filter.markReceived(counter), label).toBe(expected);
  });
}

describe('ReplayFilter numbered cases', () => {
  it('walks in order, out of order, edges, big jumps and the limit', () => {
    const f = new ReplayFilter();
    run(f, [
      [0, true], //  1 first counter of a fresh filter
      [1, true], //  2 in order
      [1, false], //  3 duplicate
      [9, true], //  4 skip ahead
      [8, true], //  5 out of order, inside the window
      [7, true], //  6
      [7, false], //  7 duplicate of an out-of-order counter
      [T, true], //  8 moves the window so 0 falls out
      [T - 1, true], //  9 just behind the highest
      [T - 1, false], // 10
      [T - 2, true], // 11
      [2, true], // 12 T − 2 = 8127 back: exactly inside (distance ≤ 8128)
      [2, false], // 13
      [T + 16, true], // 14 window moves by 16: 3 is now 8142 behind
      [3, false], // 15 too old
      [T + 16, false], // 16 duplicate of the highest
      [T * 4, true], // 17 big jump: the whole ring is cleared
      [T * 4 - (T - 1), true], // 18 exactly at the window edge (distance 8128)
      [10, false], // 19 far too old
      [T * 4 - T, false], // 20 one past the edge (distance 8129)
      [T * 4 - (T + 1), false], // 21 two past the edge
      [T * 4 - (T - 2), true], // 22 inside, next to the edge
      [T * 4 + 1 - T, false], // 23 same as 18 reached from the other side: already seen
      [0, false], // 24 zero is long gone
      [LIMIT, false], // 25 at the limit: never accepted
      [LIMIT - 1, true], // 26 the last usable counter
      [LIMIT, false], // 27
      [LIMIT - 1, false], // 28 duplicate
      [LIMIT - 2, true], // 29 just behind
      [LIMIT + 1, false], // 30 beyond the limit (not even a safe integer)
      [LIMIT + 2, false], // 31
      [LIMIT - 2, false], // 32 duplicate
      [LIMIT - 3, true], // 33
      [0, false], // 34 the window is at the limit now
    ]);
  });

  it('rejects counters that are not non-negative integers', () => {
    const f = new ReplayFilter();
    for (const bad of [-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 64]) {
      expect(f.willAccept(bad)).toBe(false);
      expect(f.markReceived(bad)).toBe(false);
    }
    expect(f.markReceived(0)).toBe(true);
  });

  it('willAccept changes nothing', () => {
    const f = new ReplayFilter();
    expect(f.willAccept(100)).toBe(true);
    expect(f.willAccept(100)).toBe(true);
    expect(f.highest).toBe(0);
    expect(f.willAccept(0)).toBe(true);
    expect(f.markReceived(0)).toBe(true);
    expect(f.willAccept(0)).toBe(false);
  });

  it('reset forgets everything', () => {
    const f = new ReplayFilter();
    run(f, [
      [5, true],
      [5000, true],
    ]);
    f.reset();
    expect(f.highest).toBe(0);
    run(f, [
      [5, true],
      [5000, true],
      [5, false],
    ]);
  });

  it('a jump of exactly one ring length and of ring + 1 block clears stale bits', () => {
    // 8192 = 128 × 64 lands in the same ring block as 0; its bit must be fresh, and 64 (next block) too
    const f = new ReplayFilter();
    run(f, [
      [0, true],
      [64, true],
      [8192, true],
      [8192 + 64, true],
      [8192 + 65, true],
      [64, false], // behind the window (8257 − 64 > 8128)
    ]);
  });

  it('a jump of exactly 128 blocks from the current block clears that block too', () => {
    // 0 and 8192 share ring block 0; 8192 must not see 0's bit
    const f = new ReplayFilter();
    run(f, [
      [0, true],
      [8192, true],
      [8192 + 8192 + 5, true],
      [8192 + 5, false], // now behind the window
    ]);
    const g = new ReplayFilter();
    run(g, [
      [70, true], // block 1, bit 6
      [70 + 8192, true], // block 129 → same ring slot and bit
    ]);
  });

  it('works at counters far above 2^32 (high word of the ring arithmetic)', () => {
    const base = 2 ** 40 + 7;
    const f = new ReplayFilter();
    run(f, [
      [base, true],
      [base - 1, true],
      [base - WINDOW, true],
      [base - WINDOW - 1, false],
      [base + 31, true],
      [base + 32, true],
      [base + 63, true],
      [base + 32, false],
      [base + 2 ** 33, true],
      [base, false],
    ]);
  });
});

describe('ReplayFilter bulk fills (window edges)', () => {
  it('1: 1 … 8128 then 0 fits, 0 again does not', () => {
    const f = new ReplayFilter();
    for (let i = 1; i <= WINDOW; i++) expect(f.markReceived(i), `${i}`).toBe(true);
    run(f, [
      [0, true],
      [0, false],
    ]);
  });

  it('2: 2 … 8129, then 1 fits and 0 is one too far', () => {
    const f = new ReplayFilter();
    for (let i = 2; i <= WINDOW + 1; i++) expect(f.markReceived(i), `${i}`).toBe(true);
    run(f, [
      [1, true],
      [0, false],
    ]);
  });

  it('3: descending 8129 … 1 all fit', () => {
    const f = new ReplayFilter();
    for (let i = WINDOW + 1; i > 0; i--) expect(f.markReceived(i), `${i}`).toBe(true);
    expect(f.markReceived(0)).toBe(false);
  });

  it('4: descending 8130 … 2, then 0 is out', () => {
    const f = new ReplayFilter();
    for (let i = WINDOW + 2; i > 1; i--) expect(f.markReceived(i), `${i}`).toBe(true);
    expect(f.markReceived(0)).toBe(false);
  });

  it('5: descending 8128 … 1, then 8129 moves the window and 0 is out', () => {
    const f = new ReplayFilter();
    for (let i = WINDOW; i > 0; i--) expect(f.markReceived(i), `${i}`).toBe(true);
    run(f, [
      [WINDOW + 1, true],
      [0, false],
    ]);
  });

  it('6: descending 8128 … 1, 0, then 8129', () => {
    const f = new ReplayFilter();
    for (let i = WINDOW; i > 0; i--) expect(f.markReceived(i), `${i}`).toBe(true);
    run(f, [
      [0, true],
      [WINDOW + 1, true],
    ]);
  });

  it('every counter of a long in-order stream is accepted once', () => {
    const f = new ReplayFilter();
    for (let i = 0; i < 50_000; i++) {
      if (!f.markReceived(i)) throw new Error(`rejected ${i}`);
      if (i >= 3 && f.markReceived(i - 3)) throw new Error(`accepted a replay of ${i - 3}`);
    }
  });
});

/** The specification written as plainly as possible: remember everything, compare distances. */
class OracleFilter {
  private readonly seen = new Set<number>();
  private last = 0;
  accept(counter: number): boolean {
    if (counter >= LIMIT) return false;
    if (counter <= this.last && this.last - counter > WINDOW) return false;
    if (this.seen.has(counter)) return false;
    this.seen.add(counter);
    if (counter > this.last) this.last = counter;
    return true;
  }
}

describe('ReplayFilter property test against a Set-based oracle', () => {
  // moves: mostly small steps around the highest counter, sometimes near the window edge, sometimes
  // big jumps, sometimes exact repeats
  const move = fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: -200, max: 200 }).map((d) => ({ kind: 'near' as const, d })) },
    { weight: 3, arbitrary: fc.integer({ min: WINDOW - 70, max: WINDOW + 70 }).map((d) => ({ kind: 'edge' as const, d })) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 40_000 }).map((d) => ({ kind: 'jump' as const, d })) },
    { weight: 2, arbitrary: fc.nat({ max: 50 }).map((d) => ({ kind: 'repeat' as const, d })) },
  );

  it('agrees with the oracle on every step, and willAccept predicts markReceived', () => {
    fc.assert(
      fc.property(fc.nat({ max: 2 ** 45 }), fc.array(move, { minLength: 1, maxLength: 400 }), (start, moves) => {
        const f = new ReplayFilter();
        const oracle = new OracleFilter();
        const history: number[] = [];
        let highest = start;
        for (const m of moves) {
          let counter: number;
          if (m.kind === 'near') counter = highest + m.d;
          else if (m.kind === 'edge') counter = highest - m.d;
          else if (m.kind === 'jump') counter = highest + m.d;
          else counter = history.length > 0 ? history[history.length - 1 - Math.min(m.d, history.length - 1)]! : highest;
          if (counter < 0) counter = 0;
          const predicted = f.willAccept(counter);
          const actual = f.markReceived(counter);
          const expected = oracle.accept(counter);
          if (predicted !== expected || actual !== expected) return false;
          history.push(counter);
          if (actual && counter > highest) highest = counter;
        }
        return true;
      }),
      { numRuns: 400 },
    );
  });
});
