/**
 * When a long-fuzz worker (bench/fuzz/run.ts) reports to its parent: a heap sample (after a forced GC)
 * at every 5 % of its cases, counted exactly whatever the case count, and a heartbeat for the parent's
 * hang watchdog once 2 s have passed since the last report, however slow or fast the cases are.
 *
 *   case:      1 … heapEvery … 2·heapEvery … 20·heapEvery (≤ cases)
 *   report:        heap         heap            heap         (20 samples)
 *              heartbeat whenever now − last report ≥ HEARTBEAT_MS in between
 *
 * Pure: the caller passes the count and the clock.
 */
export const HEAP_SAMPLES = 20;
export const HEARTBEAT_MS = 2_000;

export type ProgressReport = 'heap' | 'heartbeat' | undefined;

export class ProgressSchedule {
  /** Cases between heap samples (the first one, at 5 %, is the baseline). */
  readonly heapEvery: number;
  private lastReportAt: number;

  constructor(cases: number, startedAt: number) {
    this.heapEvery = Math.max(1, Math.floor(cases / HEAP_SAMPLES));
    this.lastReportAt = startedAt;
  }

  /** After case number `done` (counted from 1) at time `now` (ms): what to report, if anything. */
  next(done: number, now: number): ProgressReport {
    if (done % this.heapEvery === 0 && done / this.heapEvery <= HEAP_SAMPLES) {
      this.lastReportAt = now;
      return 'heap';
    }
    if (now - this.lastReportAt >= HEARTBEAT_MS) {
      this.lastReportAt = now;
      return 'heartbeat';
    }
    return undefined;
  }
}
