/**
 * The long fuzz mode's report schedule (bench/fuzz/progress.ts): heap samples by count, at every 5 %
 * of any case count (a worker's share of 1e6 over 3 jobs included), and heartbeats by time, on a
 * manual clock.
 */
import { describe, expect, it } from 'vitest';
import { HEAP_SAMPLES, HEARTBEAT_MS, ProgressSchedule } from '../../../bench/fuzz/progress.js';

/** The cases at which a run of `cases` reports a heap sample, with the clock standing still. */
function heapCases(cases: number): number[] {
  const s = new ProgressSchedule(cases, 0);
  const out: number[] = [];
  for (let done = 1; done <= cases; done++) if (s.next(done, 0) === 'heap') out.push(done);
  return out;
}

describe('fuzz progress schedule', () => {
  it('samples the heap exactly 20 times, at every 5 %, whatever the count', () => {
    for (const cases of [1_000_000, Math.ceil(1_000_000 / 3), 12_345, 20_000, 3_000, 1_019]) {
      const at = heapCases(cases);
      const every = Math.floor(cases / HEAP_SAMPLES);
      expect(at).toHaveLength(HEAP_SAMPLES);
      expect(at).toEqual(Array.from({ length: HEAP_SAMPLES }, (_, k) => (k + 1) * every));
      // the last sample is within the last 5 % of the run
      expect(cases - at[HEAP_SAMPLES - 1]!).toBeLessThan(every + HEAP_SAMPLES);
    }
  });

  it('samples every case of a run shorter than 20 cases', () => {
    expect(heapCases(7)).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('sends a heartbeat once 2 s passed since the last report, and not before', () => {
    const s = new ProgressSchedule(1_000_000, 1_000);
    expect(s.next(1, 1_000 + HEARTBEAT_MS - 1)).toBeUndefined();
    expect(s.next(2, 1_000 + HEARTBEAT_MS)).toBe('heartbeat');
    expect(s.next(3, 1_000 + HEARTBEAT_MS + 1)).toBeUndefined();
    // a slow case (10 s) is followed by a heartbeat at once
    expect(s.next(4, 1_000 + HEARTBEAT_MS + 10_000)).toBe('heartbeat');
    // a heap sample counts as a report: the next heartbeat is 2 s after it
    expect(s.next(50_000, 20_000)).toBe('heap');
    expect(s.next(50_001, 20_000 + HEARTBEAT_MS - 1)).toBeUndefined();
    expect(s.next(50_002, 20_000 + HEARTBEAT_MS)).toBe('heartbeat');
  });

  it('reports nothing between samples while cases are fast', () => {
    const s = new ProgressSchedule(1_000_000, 0);
    let reports = 0;
    // 40,000 cases in one second: no heap sample is due (the first is at 50,000) and no heartbeat
    for (let done = 1; done <= 40_000; done++) if (s.next(done, done / 40) !== undefined) reports++;
    expect(reports).toBe(0);
  });
});
