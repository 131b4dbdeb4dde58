/**
 * The client's run loop on a manual clock: back-off waits before every (re)connect including the
 * first, growing ×1.5 and reset after a successful refresh; the periodic refresh at TTL/2 re-sends
 * even when nothing changed. gRPC itself runs for real (loopback server, or a dead port).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ClientTimers } from '../../../src/discovery-client/index.js';
import { cleanup, eventually, localAffiliate, startServer, testClient } from './support.js';

class ManualTimers implements ClientTimers {
  timeouts = new Map<number, { fn: () => void; ms: number }>();
  intervals = new Map<number, { fn: () => void; ms: number }>();
  requestedWaits: number[] = [];
  #next = 1;
  setTimeout(fn: () => void, ms: number): number {
    const id = this.#next++;
    this.timeouts.set(id, { fn, ms });
    this.requestedWaits.push(ms);
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timeouts.delete(h as number);
  }
  setInterval(fn: () => void, ms: number): number {
    const id = this.#next++;
    this.intervals.set(id, { fn, ms });
    return id;
  }
  clearInterval(h: unknown): void {
    this.intervals.delete(h as number);
  }
  /** Fires the pending back-off wait (there is at most one). */
  fireWait(): void {
    const [id, t] = [...this.timeouts][0] ?? [];
    if (id === undefined || !t) throw new Error('no pending wait');
    this.timeouts.delete(id);
    t.fn();
  }
  fireIntervals(): void {
    for (const t of this.intervals.values()) t.fn();
  }
}

const stoppable: Array<{ stop(): Promise<void> } | undefined> = [];
afterEach(async () => {
  await cleanup(...stoppable.splice(0));
});

describe('client run loop on a manual clock', () => {
  it('waits before the first connect, then 0.5 s ×1.5 per failed attempt (jitter fixed at its midpoint)', async () => {
    const timers = new ManualTimers();
    const c = testClient(1, 'node-a', { timers, random: () => 0.5, backoff: {} });
    stoppable.push(c);
    c.start();
    // nothing is attempted until the first wait fires
    await new Promise((r) => setTimeout(r, 100));
    expect(timers.requestedWaits).toEqual([500]);
    expect(c.state()).toBe('backoff');
    expect(c.counters().helloErrors).toBe(0);
    for (let attempt = 1; attempt <= 4; attempt++) {
      timers.fireWait();
      await eventually(() => expect(c.counters().helloErrors).toBe(attempt));
      await eventually(() => expect(timers.timeouts.size).toBe(1));
    }
    expect(timers.requestedWaits).toEqual([500, 750, 1125, 1688, 2531]);
    expect(c.lastError()).toMatch(/cannot reach 127\.0\.0\.1:1/);
  });

  it('refresh every TTL/2 (15 min by default) re-sends unchanged data; a successful refresh resets the back-off', async () => {
    const server = stoppable[stoppable.push(await startServer()) - 1] as Awaited<ReturnType<typeof startServer>>;
    const timers = new ManualTimers();
    const c = testClient(server.port(), 'node-a', { timers, random: () => 0.5, backoff: {} });
    stoppable.push(c);
    c.setLocalAffiliate(localAffiliate('node-a'));
    c.start();
    timers.fireWait();
    await eventually(() => expect(c.counters().updatesSent).toBe(1));
    expect([...timers.intervals.values()].map((t) => t.ms)).toEqual([15 * 60_000]);
    // the update carried a 30 min TTL
    const remaining = server.state.export().clusters[0]!.affiliates[0]!.remainingMs;
    expect(remaining).toBeGreaterThan(29 * 60_000);
    expect(remaining).toBeLessThanOrEqual(30 * 60_000);
    timers.fireIntervals();
    await eventually(() => expect(c.counters().updatesSent).toBe(2));
    timers.fireIntervals();
    await eventually(() => expect(c.counters().updatesSent).toBe(3));
    // server goes away: the watch fails; the next wait starts again from 0.5 s
    await server.stop();
    await eventually(() => expect(timers.timeouts.size).toBe(1));
    expect(timers.requestedWaits).toEqual([500, 500]);
    expect(timers.intervals.size).toBe(0);
  });

  it('a shorter TTL goes on the wire and the refresh follows it (TTL/2); TTL above 30 min is refused', async () => {
    const server = stoppable[stoppable.push(await startServer()) - 1] as Awaited<ReturnType<typeof startServer>>;
    const timers = new ManualTimers();
    const c = testClient(server.port(), 'node-a', { timers, ttlMs: 10 * 60_000 });
    stoppable.push(c);
    c.setLocalAffiliate(localAffiliate('node-a'));
    c.start();
    timers.fireWait();
    await eventually(() => expect(c.counters().updatesSent).toBe(1));
    expect([...timers.intervals.values()].map((t) => t.ms)).toEqual([5 * 60_000]);
    const remaining = server.state.export().clusters[0]!.affiliates[0]!.remainingMs;
    expect(remaining).toBeGreaterThan(9 * 60_000);
    expect(remaining).toBeLessThanOrEqual(10 * 60_000);
    expect(() => testClient(server.port(), 'x', { ttlMs: 31 * 60_000 })).toThrow(/ttlMs: 1860000 must be 0\.\.1800000/);
  });
});
