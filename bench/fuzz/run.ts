/**
 * The long fuzz mode: every target of test/fuzz (one per parser that takes outside bytes) for
 * 1,000,000 cases by default, split over worker processes, with a watchdog for hangs and heap
 * samples (after a forced GC) for unbounded memory.
 *
 *   npm run build:ts && node dist/bench/fuzz/run.js                       # all targets, 1e6 cases each
 *   node dist/bench/fuzz/run.js --cases 200000 --target wireguard-device --jobs 2 --seed 7
 *   node dist/bench/fuzz/run.js --list
 *
 * A case that breaks a contract stops that target and prints fast-check's report (seed, path and the
 * shrunk input); rerun the unit test with FUZZ_SEED=<seed> FUZZ_RUNS=<n> to reproduce it. Exit status:
 * 0 when every target held, 1 otherwise (contract broken, hang, or heap growth past --max-growth-mb).
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { FUZZ_TARGETS, runTarget, type AnyFuzzTarget } from '../../test/fuzz/index.js';
import { ProgressSchedule } from './progress.js';

const USAGE = 'usage: node dist/bench/fuzz/run.js [--cases N] [--target NAME]... [--jobs J] [--seed S] [--stall-seconds S] [--max-growth-mb M] [--list]';

interface WorkerMessage {
  kind: 'progress' | 'done' | 'failed';
  done?: number;
  heapMB?: number;
  ms?: number;
  summary?: string;
  error?: string;
  heapFirstMB?: number;
  heapEndMB?: number;
}

function forceGc(): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  return gc;
}

function heapMB(gc: () => void): number {
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

/** Runs one share of a target in this process and reports over IPC. */
async function worker(name: string, cases: number, seed: number): Promise<void> {
  const target = FUZZ_TARGETS.find((t) => t.name === name);
  if (!target) throw new Error(`--target: unknown target "${name}"`);
  const gc = forceGc();
  const send = (m: WorkerMessage): void => void process.send?.(m);
  // the last message must reach the parent before the process exits
  const sendLast = (m: WorkerMessage): Promise<void> => new Promise((resolve) => (process.send ? process.send(m, undefined, {}, () => resolve()) : resolve()));
  // heap samples (after a forced GC) at every 5 % of the cases, exactly; a heartbeat whenever 2 s
  // passed in between, so the parent's hang watchdog hears from slow targets too (progress.ts)
  const schedule = new ProgressSchedule(cases, Date.now());
  let heapFirstMB: number | undefined;
  try {
    const result = await runTarget(target, {
      numRuns: cases,
      seed,
      progressEvery: 1,
      onProgress: (done) => {
        const report = schedule.next(done, Date.now());
        if (report === 'heap') {
          const heap = heapMB(gc);
          // the first sample (after 5% of the cases) is the baseline: setup and warm-up are done
          heapFirstMB ??= heap;
          send({ kind: 'progress', done, heapMB: heap });
        } else if (report === 'heartbeat') {
          send({ kind: 'progress', done });
        }
      },
    });
    await sendLast({ kind: 'done', done: cases, ms: result.ms, summary: result.summary, heapFirstMB: heapFirstMB ?? heapMB(gc), heapEndMB: heapMB(gc) });
  } catch (err) {
    // fast-check's report names the seed and the shrunk input; the contract's own message is the cause
    const cause = (err as { cause?: unknown }).cause;
    const why = cause instanceof Error ? `\nCaused by: ${cause.message}` : '';
    await sendLast({ kind: 'failed', error: `${err instanceof Error ? err.message : String(err)}${why}` });
  }
}

interface TargetResult {
  name: string;
  cases: number;
  wallMs: number;
  ok: boolean;
  problem?: string;
  heapGrowthMB: number;
  summaries: string[];
}

/** Runs `cases` of one target over `jobs` child processes; watches for stalls. */
function runParallel(target: AnyFuzzTarget, cases: number, jobs: number, seed: number, stallMs: number): Promise<TargetResult> {
  const started = performance.now();
  const share = Math.ceil(cases / jobs);
  const self = fileURLToPath(import.meta.url);
  return new Promise((resolve) => {
    const result: TargetResult = { name: target.name, cases: 0, wallMs: 0, ok: true, heapGrowthMB: 0, summaries: [] };
    let running = 0;
    const progress = new Array<number>(jobs).fill(0);
    const lastHeard = new Array<number>(jobs).fill(Date.now());
    const children = [] as ReturnType<typeof fork>[];
    let lastPrinted = 0;
    const finish = (): void => {
      clearInterval(watchdog);
      result.wallMs = performance.now() - started;
      resolve(result);
    };
    const watchdog = setInterval(() => {
      lastHeard.forEach((t, i) => {
        const child = children[i];
        // still running (a killed child keeps exitCode null: its signalCode is set) and silent too long
        if (Date.now() - t > stallMs && child && child.exitCode === null && child.signalCode === null && !child.killed) {
          if (result.ok) {
            // the first problem stands: a contract failure already reported is not overwritten
            result.ok = false;
            result.problem = `worker ${i} made no progress for ${stallMs / 1000} s (a hang) after ${progress[i]} cases`;
          }
          child.kill('SIGKILL');
        }
      });
    }, 1_000);
    for (let i = 0; i < jobs; i++) {
      const n = Math.min(share, cases - i * share);
      if (n <= 0) break;
      running++;
      const child = fork(self, ['--worker', '--target', target.name, '--cases', String(n), '--seed', String(seed + i * 7919)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      children[i] = child;
      child.on('message', (m: WorkerMessage) => {
        lastHeard[i] = Date.now();
        if (m.kind === 'progress') {
          progress[i] = m.done ?? 0;
          const total = progress.reduce((a, b) => a + b, 0);
          if (m.heapMB !== undefined && total - lastPrinted >= cases / 10) {
            lastPrinted = total;
            const rate = total / ((performance.now() - started) / 1000);
            process.stderr.write(`  ${target.name}: ${total}/${cases} cases, ${rate.toFixed(0)}/s, worker ${i} heap ${m.heapMB?.toFixed(1)} MB\n`);
          }
        } else if (m.kind === 'done') {
          result.cases += m.done ?? 0;
          result.heapGrowthMB = Math.max(result.heapGrowthMB, (m.heapEndMB ?? 0) - (m.heapFirstMB ?? 0));
          if (m.summary) result.summaries.push(m.summary);
        } else if (m.kind === 'failed') {
          result.ok = false;
          result.problem = m.error ?? 'failed';
          for (const c of children) if (c !== child) c.kill('SIGKILL');
        }
      });
      let reported = false;
      child.on('message', (m: WorkerMessage) => {
        if (m.kind === 'done' || m.kind === 'failed') reported = true;
      });
      child.on('exit', (code, signal) => {
        if (code !== 0 && result.ok) {
          result.ok = false;
          result.problem = `worker ${i} exited with ${signal ?? code}`;
        } else if (!reported && result.ok) {
          // its cases would be missing from the count without a word
          result.ok = false;
          result.problem = `worker ${i} exited without reporting its result after ${progress[i]} cases`;
        }
        if (--running === 0) finish();
      });
    }
  });
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        cases: { type: 'string', default: '1000000' },
        target: { type: 'string', multiple: true },
        jobs: { type: 'string' },
        seed: { type: 'string' },
        'stall-seconds': { type: 'string', default: '120' },
        'max-growth-mb': { type: 'string', default: '32' },
        list: { type: 'boolean' },
        worker: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const int = (name: string, v: string | undefined, fallback: number, min = 1): number => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${name}: ${JSON.stringify(v)} is not an integer >= ${min}`);
    return n;
  };
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (values.list) {
    for (const t of FUZZ_TARGETS) process.stdout.write(`${t.name.padEnd(18)} ${t.description}\n`);
    return 0;
  }
  const cases = int('cases', values.cases, 1_000_000);
  const seed = int('seed', values.seed, Date.now() % 1_000_000_000, 0);
  if (values.worker) {
    await worker(values.target?.[0] ?? '', cases, seed);
    return 0;
  }
  const names = (values.target ?? []).flatMap((t) => t.split(','));
  const unknown = names.filter((n) => !FUZZ_TARGETS.some((t) => t.name === n));
  if (unknown.length > 0) throw new Error(`--target: unknown ${unknown.join(', ')} (see --list)`);
  const targets = names.length === 0 ? FUZZ_TARGETS : FUZZ_TARGETS.filter((t) => names.includes(t.name));
  const { availableParallelism } = await import('node:os');
  const jobs = int('jobs', values.jobs, availableParallelism());
  const stallMs = int('stall-seconds', values['stall-seconds'], 120) * 1000;
  const maxGrowth = int('max-growth-mb', values['max-growth-mb'], 32, 0);
  process.stderr.write(`fuzz: ${targets.length} target(s), ${cases} cases each, ${jobs} worker(s), seed ${seed}, node ${process.version}\n`);
  const results: TargetResult[] = [];
  for (const t of targets) {
    const r = await runParallel(t, cases, jobs, seed, stallMs);
    if (r.ok && r.heapGrowthMB > maxGrowth) {
      r.ok = false;
      r.problem = `heap grew ${r.heapGrowthMB.toFixed(1)} MB between the 5% sample and the end (limit ${maxGrowth} MB)`;
    }
    results.push(r);
    process.stderr.write(`  ${t.name}: ${r.ok ? 'held' : `FAILED: ${r.problem}`}\n`);
  }
  const rows = results.map((r) => `| ${r.name} | ${r.cases} | ${(r.wallMs / 1000).toFixed(1)} | ${(r.cases / (r.wallMs / 1000)).toFixed(0)} | ${r.heapGrowthMB.toFixed(1)} | ${r.ok ? 'held' : 'FAILED'} |`);
  process.stdout.write(['', '| target | cases | wall s | cases/s | heap growth MB | contract |', '| --- | ---: | ---: | ---: | ---: | --- |', ...rows, ''].join('\n'));
  for (const r of results) {
    for (const s of r.summaries.slice(0, 1)) process.stdout.write(`\n${r.name}: ${s}\n`);
    if (!r.ok) process.stdout.write(`\n${r.name} FAILED:\n${r.problem}\n`);
  }
  return results.every((r) => r.ok) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`fuzz: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  },
);
