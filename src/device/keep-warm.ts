/**
 * Keep-warm (opt-in: KUBESPAND_KEEPWARM=on|<ms>): while live traffic flows, one ping-sized packet
 * through the private warm-up pair (warmup.ts WarmPair) every few milliseconds, so the data path's code
 * is still in the CPU's caches when the next live packet comes.
 *
 * Why: an idle daemon runs each packet with cold caches. On the bench VM one cold packet through the
 * protocol core cost ~100 µs against ~5 µs warm (each distinct function or V8 builtin it touches costs
 * 2-8 µs or more cold: bench/cold-ops.ts). In one latency run (bench/latency.ts --floor, 20:31Z) a ping
 * every 20 / 100 ms took 0.848 / 0.785 ms through kubespand, 0.648 / 0.618 with a tick every 3 ms,
 * 0.619 / 0.564 through a plaintext Node tunnel over the same TUN and UDP shells (the floor), and
 * 0.483 / 0.491 through wireguard-go (docs/benchmarks.md "Latency"). A predictive variant (one tick just
 * before the next expected packet) bought nothing: it is the sustained activity that helps.
 *
 * Cost: each tick wakes the process (~50 µs of CPU on the bench VM, all threads) and runs the packet
 * (~20 µs), so a 3 ms period cost ~3-5 % of a core per daemon while pings flowed every 100 ms
 * (/proc/PID/task/N/schedstat). Ticks run only within KEEPWARM_WINDOW_MS of the last live packet and are
 * skipped when live packets already ran the path since the previous tick (bulk traffic pays nothing),
 * and an idle daemon has no keep-warm timer at all: the device calls back on its next live packet
 * (WireguardDevice.onNextActivity). In a cluster some packet is always less than a second away, so the
 * cost is permanent there; that is why it is not the default.
 *
 * The decision is a pure function of the counters and `now` (keepWarmStep); the timer lives in the
 * shell (runtime.ts).
 */

/** How long after the last live packet the ticks go on. */
export const KEEPWARM_WINDOW_MS = 1000;
/** The period KUBESPAND_KEEPWARM=on means. 2, 3, 5 and 10 ms all helped; 3 was best on the bench VM. */
export const KEEPWARM_DEFAULT_PERIOD_MS = 3;

export interface KeepWarmState {
  /** Live packets handled (TUN reads + datagrams received) when last looked at. */
  lastCount: number;
  /** When the counters last moved (monotonic ms). */
  lastLiveAt: number;
}

export interface KeepWarmDecision {
  /** Send one packet through the warm pair now. */
  tick: boolean;
  /** Keep the timer: false once the window since the last live packet has passed (go idle). */
  keep: boolean;
}

/** The state when live traffic (counter at `count`) wakes the keep-warm at `now`. */
export function keepWarmWake(now: number, count: number): KeepWarmState {
  return { lastCount: count, lastLiveAt: now };
}

/** Updates `state` for a timer firing at `now` with the live-packet counter at `count`. */
export function keepWarmStep(state: KeepWarmState, now: number, count: number, windowMs = KEEPWARM_WINDOW_MS): KeepWarmDecision {
  if (count !== state.lastCount) {
    // live packets ran the path since the last look: it is warm already
    state.lastCount = count;
    state.lastLiveAt = now;
    return { tick: false, keep: true };
  }
  const keep = now - state.lastLiveAt <= windowMs;
  return { tick: keep, keep };
}

/**
 * KUBESPAND_KEEPWARM: unset, empty, "off" or "0" leaves it off; "on" means KEEPWARM_DEFAULT_PERIOD_MS;
 * a whole number of milliseconds from 1 to 1000 sets the period. Returns the period, or null for off.
 */
export function keepWarmPeriodFromEnv(value: string | undefined): number | null {
  if (value === undefined || value === '' || value === 'off' || value === '0') return null;
  if (value === 'on') return KEEPWARM_DEFAULT_PERIOD_MS;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 1000) {
    throw new Error(`KUBESPAND_KEEPWARM: expected "off", "on" or a period in whole milliseconds from 1 to 1000, got ${JSON.stringify(value)}`);
  }
  return n;
}
