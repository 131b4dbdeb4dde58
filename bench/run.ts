/**
 * `npm run bench`: the netns harness (bench/lib/netns-bench.ts) for bare veth, wireguard-go↔wireguard-go,
 * kubespand↔kubespand and kubespand↔wireguard-go in both orders. Prints two tables with ratios to
 * wireguard-go↔wireguard-go from the same run, writes `<out>/<stamp>.json` and `<out>/<stamp>.md`.
 * Never fails on a number: the exit code is 0 whenever the harness itself could run.
 *
 *   npm run build && sudo npm run bench                 # 10 s per figure, about 4 minutes
 *   node dist/bench/run.js --quick                      # 2 s per figure, 20 pings
 *   node dist/bench/run.js --duration 5 --pairs wg-wg,ks-ks --profile
 *
 * Options: --duration S (default 10), --repeat N (run each iperf3 figure N times, keep the best; default 1), --quick, --pairs a,b,… (veth, wg-wg, ks-ks, other, ks-wg, wg-ks),
 * --ping-count N (default 50), --udp-rate R (iperf3 -b, default 2G), --profile (adds a kubespand↔kubespand
 * run under node --cpu-prof and prints where the time goes), --out DIR (default bench/results),
 * --other-build DIR [--other-label NAME]: a second built kubespand checkout (e.g. `git archive` of an
 * older commit + `npm run build`), measured as the `other` pair right after kubespand↔kubespand, so a
 * before/after comparison comes from one run on the same load.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { formatProfileSummary } from './lib/cpu-profile.js';
import { otherBin, PAIR_IDS, runNetnsBench, type NetnsBenchOptions, type PairId } from './lib/netns-bench.js';
import { fileStamp, gitHead, RESULTS_DIR } from './lib/paths.js';
import { describeMachine, machineInfo } from './lib/proc.js';
import { costTable, renderMarkdown, renderText, throughputTable } from './lib/report.js';

const USAGE = 'usage: node dist/bench/run.js [--duration S] [--repeat N] [--quick] [--pairs veth,wg-wg,ks-ks,other,ks-wg,wg-ks] [--ping-count N] [--udp-rate 2G] [--profile] [--out DIR] [--other-build DIR [--other-label NAME]]';

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function positiveInt(name: string, value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) fail(`--${name}: expected a positive whole number, got ${JSON.stringify(value)}`);
  return Number(value);
}

function parsePairs(value: string): PairId[] {
  const ids = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (ids.length === 0) fail('--pairs: empty list');
  for (const id of ids) if (!(PAIR_IDS as readonly string[]).includes(id)) fail(`--pairs: unknown pair ${JSON.stringify(id)} (known: ${PAIR_IDS.join(', ')})`);
  return ids as PairId[];
}

function checkTools(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    process.stderr.write('bench: needs root (network namespaces, veth, TUN devices)\n');
    process.exit(1);
  }
  const missing = ['ip', 'wg', 'wireguard-go', 'iperf3', 'ping', 'ss'].filter((t) => {
    try {
      execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    process.stderr.write(`bench: missing tools: ${missing.join(', ')}\n`);
    process.exit(1);
  }
}


async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string' },
      repeat: { type: 'string', default: '1' },
      quick: { type: 'boolean', default: false },
      pairs: { type: 'string' },
      'ping-count': { type: 'string' },
      'udp-rate': { type: 'string', default: '2G' },
      profile: { type: 'boolean', default: false },
      out: { type: 'string' },
      'other-build': { type: 'string' },
      'other-label': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const durationS = values.duration !== undefined ? positiveInt('duration', values.duration) : values.quick ? 2 : 10;
  const repeat = positiveInt('repeat', values.repeat);
  const pingCount = values['ping-count'] !== undefined ? positiveInt('ping-count', values['ping-count']) : values.quick ? 20 : 50;
  if (!/^\d+(\.\d+)?[KMG]?$/.test(values['udp-rate'])) fail(`--udp-rate: expected an iperf3 rate such as 2G or 800M, got ${JSON.stringify(values['udp-rate'])}`);
  const otherDir = values['other-build'] !== undefined ? resolve(values['other-build']) : null;
  if (otherDir !== null && !existsSync(otherBin(otherDir))) fail(`--other-build: ${JSON.stringify(values['other-build'])} has no bin/kubespand`);
  if (otherDir !== null && !existsSync(join(otherDir, 'dist', 'src', 'cli', 'main.js'))) fail(`--other-build: ${JSON.stringify(values['other-build'])} is not built (no dist/src/cli/main.js; run "npm run build" there)`);
  if (values['other-label'] !== undefined && otherDir === null) fail('--other-label: only with --other-build');
  const otherBuild = otherDir === null ? null : { dir: otherDir, label: values['other-label'] ?? basename(otherDir) };
  const pairs = values.pairs !== undefined ? parsePairs(values.pairs) : PAIR_IDS.filter((id) => id !== 'other' || otherBuild !== null);
  if (pairs.includes('other') && otherBuild === null) fail('--pairs: "other" needs --other-build DIR');
  const out = values.out ?? RESULTS_DIR;
  checkTools();
  mkdirSync(out, { recursive: true });

  const stamp = fileStamp();
  const machine = machineInfo();
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  log(`bench: ${durationS} s per iperf3 figure${repeat > 1 ? ` (best of ${repeat})` : ''}, ${pingCount} pings, UDP offered ${values['udp-rate']}; ${describeMachine(machine)}`);
  const started = new Date();
  const opts: NetnsBenchOptions = { durationS, repeat, pingCount, udpRate: values['udp-rate'], pairs, profile: values.profile, profileOut: out, profileStamp: stamp, otherBuild, log };
  const result = await runNetnsBench(opts);
  const finished = new Date();

  const tables = [throughputTable(result.pairs), costTable(result.pairs)];
  const notes = result.pairs.flatMap((p) => p.notes.map((n) => `${p.label}: ${n}`));
  const head = `${started.toISOString()} · ${describeMachine(machine)} · kubespand ${gitHead() ?? '?'} · ${durationS} s per figure${repeat > 1 ? `, best of ${repeat}` : ''}`;
  const text = [head, '', ...tables.map(renderText).flatMap((t) => [t, ''])];
  if (notes.length > 0) text.push('notes:', ...notes.map((n) => `  ${n}`), '');
  const md = [`${head}`, '', ...tables.map(renderMarkdown).flatMap((t) => [t, ''])];
  if (notes.length > 0) md.push('Notes:', '', ...notes.map((n) => `- ${n}`), '');
  if (result.profile) {
    const p = result.profile;
    const parts = [`Profile: kubespand↔kubespand, TCP 1 stream a→b, ${p.mbps === null ? '–' : p.mbps.toFixed(0)} Mbit/s under node --cpu-prof`];
    if (p.sender) parts.push(formatProfileSummary('sender (a: TUN → encrypt → UDP)', p.sender));
    if (p.receiver) parts.push(formatProfileSummary('receiver (b: UDP → decrypt → TUN)', p.receiver));
    for (const n of p.notes) parts.push(`profile note: ${n}`);
    text.push(...parts, '');
    md.push('```', ...parts, '```', '');
  }

  const jsonPath = join(out, `${stamp}.json`);
  const mdPath = join(out, `${stamp}.md`);
  const report = {
    kind: 'kubespand-netns-bench',
    version: 1,
    started: started.toISOString(),
    finished: finished.toISOString(),
    commit: gitHead(),
    machine,
    loadAverageAtEnd: machineInfo().loadAverage,
    options: { durationS, repeat, pingCount, udpRate: values['udp-rate'], pairs, profile: values.profile, otherBuild },
    tag: result.tag,
    pairs: result.pairs,
    profile: result.profile,
  };
  writeFileSync(jsonPath, JSON.stringify(report, null, 2) + '\n');
  writeFileSync(mdPath, md.join('\n'));
  process.stdout.write(text.join('\n') + '\n');
  process.stdout.write(`Markdown:\n\n${md.join('\n')}\n`);
  process.stdout.write(`wrote ${jsonPath}\nwrote ${mdPath}\n`);
}

main().catch((err) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
