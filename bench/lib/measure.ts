/**
 * Small timing helpers for the in-process benchmarks (no framework): a rate is the best of five
 * equal windows after a warm-up, so a burst of load from other processes on a shared machine lowers
 * one window rather than the figure; a duration is the median of repeated runs.
 */
import { randomFillSync } from 'node:crypto';
import type { CryptoProvider } from '../../src/noise/crypto.js';

/**
 * Operations per second of `step`, which performs some operations and returns how many. Runs a
 * warm-up of a quarter of the budget (at most 200 ms), then five windows of budget/5 each.
 */
export function bestRate(step: () => number, budgetMs: number): number {
  const warmUntil = performance.now() + Math.min(200, budgetMs / 4);
  while (performance.now() < warmUntil) step();
  const windowMs = budgetMs / 5;
  let best = 0;
  for (let w = 0; w < 5; w++) {
    let ops = 0;
    const start = performance.now();
    let elapsed = 0;
    while (elapsed < windowMs) {
      ops += step();
      elapsed = performance.now() - start;
    }
    best = Math.max(best, (ops * 1000) / elapsed);
  }
  return best;
}

/** Median of `runs` timings of `fn`, ms (plus min and max). */
export function medianMs(fn: () => void, runs: number): { medianMs: number; minMs: number; maxMs: number } {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { medianMs: times[Math.floor(times.length / 2)]!, minMs: times[0]!, maxMs: times[times.length - 1]! };
}

export function randomBytes(n: number): Uint8Array {
  return randomFillSync(new Uint8Array(n));
}

function looksLikeProvider(v: unknown): v is CryptoProvider {
  const p = v as Partial<CryptoProvider> | null;
  return typeof p === 'object' && p !== null && typeof p.name === 'string' && typeof p.aead === 'function' && typeof p.dh === 'function' && typeof p.hash === 'function';
}

/** A provider is usable when a prepared key seals and opens a packet and the one-shot path agrees. */
function usable(p: CryptoProvider): string | null {
  try {
    const key = randomBytes(32);
    const pt = randomBytes(100);
    const aead = p.aead(key);
    const sealed = aead.seal(5, pt);
    const opened = aead.open(5, sealed);
    if (!opened || Buffer.compare(Buffer.from(opened), Buffer.from(pt)) !== 0) return 'aead round trip failed';
    const oneShot = p.seal(key, 5, pt, new Uint8Array(0));
    if (Buffer.compare(Buffer.from(oneShot), Buffer.from(sealed)) !== 0) return 'prepared and one-shot seal disagree';
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * Every crypto provider this build has: node and noble always; others (e.g. a native data-path
 * provider) when their module exists in this checkout and the provider works on this machine. The
 * modules are found at run time so the bench builds against any revision of src/noise.
 */
export async function discoverProviders(log: (line: string) => void = () => undefined): Promise<CryptoProvider[]> {
  const found = new Map<string, CryptoProvider>();
  for (const file of ['crypto-node.js', 'crypto-noble.js', 'crypto-native.js']) {
    const specifier = `../../src/noise/${file}`;
    let mod: Record<string, unknown>;
    try {
      mod = (await import(specifier)) as Record<string, unknown>;
    } catch {
      continue; // not in this revision
    }
    for (const value of Object.values(mod)) {
      if (!looksLikeProvider(value) || found.has(value.name)) continue;
      const problem = usable(value);
      if (problem) log(`provider ${value.name}: not usable here (${problem}); skipped`);
      else found.set(value.name, value);
    }
  }
  return [...found.values()];
}
