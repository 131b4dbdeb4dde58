/**
 * The fuzz harness shared by the property tests (test/unit/fuzz, a modest count in CI) and the long
 * mode (bench/fuzz/run.ts, >= 1,000,000 cases per target). A target is one parser that takes outside
 * bytes, an arbitrary that generates its hostile inputs, and a check that throws when the parser
 * breaks its contract: the contract is always "a value, or a counted drop / a clear error of the
 * documented type; never a crash, a hang or state that grows without bound".
 *
 * Targets keep long-lived state in a context (`setup`), so a run of a million cases against one
 * DeviceCore or one discovery cipher also shows that nothing accumulates across cases.
 */
import fc from 'fast-check';

export interface FuzzTarget<Input, Context = void> {
  /** Short kebab-case name, used by `bench/fuzz/run.ts --target`. */
  name: string;
  /** What is fed and what must hold, one line. */
  description: string;
  /** Built once per run; checks receive it. */
  setup(seed: number): Context;
  /** Inputs to feed. */
  arbitrary(context: Context): fc.Arbitrary<Input>;
  /** Feeds one input and throws if the contract is broken. */
  check(context: Context, input: Input): void | Promise<void>;
  /** Runs after the last case of a run: end-of-run invariants (bounded state). */
  finish?(context: Context): void | Promise<void>;
  /** True when `check` returns a promise. */
  async?: boolean;
  /** One line about what the run exercised (drop reasons seen, …), for the bench report. */
  summary?(context: Context): string;
}

/** Any target, with its input and context types erased (for tables of targets). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyFuzzTarget = FuzzTarget<any, any>;

export interface RunOptions {
  numRuns: number;
  seed?: number;
  /** Called after every `progressEvery` cases with the count so far (bench progress and heap samples). */
  onProgress?: (done: number) => void;
  progressEvery?: number;
}

export interface RunResult {
  target: string;
  cases: number;
  ms: number;
  seed: number;
  summary: string;
}

/**
 * Runs `numRuns` cases of `target` with fast-check (shrinking on failure). Throws fast-check's report,
 * which names the seed, the path and the smallest failing input, when the contract breaks.
 */
export async function runTarget(target: AnyFuzzTarget, opts: RunOptions): Promise<RunResult> {
  const seed = opts.seed ?? Date.now() ^ (Math.random() * 0x7fffffff);
  const context = target.setup(seed);
  const started = performance.now();
  let done = 0;
  const every = opts.progressEvery ?? 0;
  const tick = (): void => {
    done++;
    if (every > 0 && done % every === 0) opts.onProgress?.(done);
  };
  const arbitrary = target.arbitrary(context);
  if (target.async) {
    await fc.assert(
      fc.asyncProperty(arbitrary, async (input) => {
        tick();
        await target.check(context, input);
      }),
      { numRuns: opts.numRuns, seed, endOnFailure: false },
    );
  } else {
    fc.assert(
      fc.property(arbitrary, (input) => {
        tick();
        target.check(context, input);
      }),
      { numRuns: opts.numRuns, seed, endOnFailure: false },
    );
  }
  await target.finish?.(context);
  return { target: target.name, cases: opts.numRuns, ms: performance.now() - started, seed, summary: target.summary?.(context) ?? '' };
}

/** Asserts `cond`, throwing `message` (a string or a function building it lazily) when false. */
export function expectThat(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) throw new Error(typeof message === 'string' ? message : message());
}
