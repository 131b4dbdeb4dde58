/** The real Clock and Random for the shells (the sans-IO core only sees the interfaces). */
import { randomFillSync, randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Clock, Random } from '../noise/clock.js';

export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
};

export const systemRandom: Random = {
  fill: (out) => randomFillSync(out),
  u32: () => randomInt(0, 0x1_0000_0000),
};
