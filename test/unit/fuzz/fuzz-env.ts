/**
 * How many cases the CI property tests run per target: FUZZ_RUNS (default below) and FUZZ_SEED to
 * replay a failure fast-check reported. The long mode is `node dist/bench/fuzz/run.js`.
 */
export function fuzzRuns(fallback: number): number {
  const v = Number(process.env.FUZZ_RUNS);
  return Number.isInteger(v) && v > 0 ? v : fallback;
}

export function fuzzSeed(): number | undefined {
  const v = Number(process.env.FUZZ_SEED);
  return Number.isInteger(v) ? v : undefined;
}
