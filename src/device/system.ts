/** The real Clock and Random for the shells (the sans-IO core only sees the interfaces). */
import { randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Clock, Random } from '../noise/clock.js';

export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
};

/**
 * u32() hands out words from a pool refilled by the CSPRNG 1024 at a time: the data path asks for
 * one per sent data packet after a reply (timer jitter), and crypto.randomInt costs a few µs a call.
 */
const pool = new Uint32Array(1024);
let poolNext = pool.length;

export const systemRandom: Random = {
  fill: (out) => randomFillSync(out),
  u32: () => {
    if (poolNext === pool.length) {
      randomFillSync(pool);
      poolNext = 0;
    }
    const v = pool[poolNext]!;
    pool[poolNext++] = 0; // a word is used once and does not linger
    return v;
  },
};
