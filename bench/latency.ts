/**
 * Latency through a fresh tunnel, repeated: the figures the main bench measures once per pair
 * (first reply, start→reply, ping) are noisy on a shared host, so this runs N fresh tunnels per
 * pair, interleaved (wg-wg, ks-ks, wg-wg, …) so both see the same host, and reports medians.
 *
 * Per tunnel: spawn both daemons, configure with `wg`, one echo through the fresh tunnel (the
 * handshake included), then pings at three rates: 50 at 20 ms (what the main bench does), 20 at
 * 100 ms (an idle daemon: caches go cold between echoes) and 300 at 2 ms (a busy one).
 *
 * Variants run kubespand with extra environment (A/B of a setting), e.g.
 *   --variant no-warmup:KUBESPAND_WARMUP=0 --variant dgram-recv:KUBESPAND_NATIVE_UDP_RECV=0
 *
 * --other-build DIR adds a row for another kubespand checkout (built), e.g. the commit before a change.
 *
 * --floor adds a row for bench/null-tunnel.ts: a plaintext tunnel over kubespand's own TUN reader and
 * UDP bind in Node, no protocol at all (ping columns only). It is the floor under kubespand's ping: what
 * Node and the shells cost, so the difference to the kubespand row is the protocol core.
 *
 *   npm run build && node dist/bench/latency.js [--rounds 5] [--variant NAME:K=V[,K=V]]… [--other-build DIR]
 *       [--floor] [--out DIR] [--no-wg]
 *
 * Writes `<out>/<stamp>-latency.json` and prints a Markdown table. Never fails on a number.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Topology } from '../src/netns/topology.js';
import { fileURLToPath } from 'node:url';
import { ADDR, buildTunnel, emptyResult, pingSummary, stopDaemon, tunnelHosts, type PairId } from './lib/netns-bench.js';
import { fileStamp, gitHead, RESULTS_DIR } from './lib/paths.js';
import { describeMachine, machineInfo } from './lib/proc.js';

interface Variant {
  name: string;
  /** 'floor': the plaintext null tunnel (--floor). */
  pair: PairId | 'floor';
  env: Record<string, string>;
  other?: string;
}

interface Sample {
  readyMs: number | null;
  firstReplyMs: number | null;
  startToReplyMs: number | null;
  /** ping avg per rate, ms */
  avg20: number | null;
  min20: number | null;
  avg100: number | null;
  avg2: number | null;
  notes: string[];
}

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    variant: { type: 'string', multiple: true, default: [] },
    out: { type: 'string', default: RESULTS_DIR },
    'no-wg': { type: 'boolean', default: false },
    'other-build': { type: 'string' },
    floor: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (values.help) {
  process.stdout.write(
    'node dist/bench/latency.js [--rounds 5] [--variant NAME:KEY=VALUE[,KEY=VALUE]]… [--other-build DIR] [--floor] [--out DIR] [--no-wg]\n' +
      '  N fresh tunnels per row, interleaved; medians of first reply, start→reply and pings every 20/100/2 ms.\n' +
      '  --variant   a kubespand row with extra environment (e.g. keepwarm:KUBESPAND_KEEPWARM=on)\n' +
      '  --other-build DIR   a row for another built kubespand checkout\n' +
      '  --floor     a row for a plaintext Node tunnel over the same TUN and UDP shells (no protocol)\n',
  );
  process.exit(0);
}
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 100) {
  process.stderr.write(`latency: --rounds must be a whole number from 1 to 100, got ${JSON.stringify(values.rounds)}\n`);
  process.exit(2);
}
const variants: Variant[] = [];
if (!values['no-wg']) variants.push({ name: 'wireguard-go↔wireguard-go', pair: 'wg-wg', env: {} });
variants.push({ name: 'kubespand↔kubespand', pair: 'ks-ks', env: {} });
for (const spec of values.variant) {
  const colon = spec.indexOf(':');
  const name = colon < 0 ? '' : spec.slice(0, colon);
  const env: Record<string, string> = {};
  for (const kv of colon < 0 ? [] : spec.slice(colon + 1).split(',')) {
    const eq = kv.indexOf('=');
    if (eq <= 0) {
      process.stderr.write(`latency: --variant ${JSON.stringify(spec)}: expected NAME:KEY=VALUE[,KEY=VALUE], "${kv}" has no KEY=\n`);
      process.exit(2);
    }
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  if (!name || Object.keys(env).length === 0) {
    process.stderr.write(`latency: --variant ${JSON.stringify(spec)}: expected NAME:KEY=VALUE[,KEY=VALUE]\n`);
    process.exit(2);
  }
  variants.push({ name: `kubespand (${name})`, pair: 'ks-ks', env });
}

if (values.floor) variants.push({ name: 'plaintext Node tunnel (floor)', pair: 'floor', env: {} });

if (values['other-build'] !== undefined) {
  const dir = values['other-build'];
  variants.push({ name: `kubespand (${dir})`, pair: 'other', env: {}, other: dir });
}

const log = (line: string): void => void process.stderr.write(line + '\n');

async function withEnv<T>(env: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

const NULL_TUNNEL = fileURLToPath(new URL('./null-tunnel.js', import.meta.url));

/** The --floor row: two null tunnels (bench/null-tunnel.ts) across a veth pair; ping columns only. */
async function oneFloor(topo: Topology, n: number): Promise<Sample> {
  const s: Sample = { readyMs: null, firstReplyMs: null, startToReplyMs: null, avg20: null, min20: null, avg100: null, avg2: null, notes: [] };
  const { nsA, nsB, ifA, ifB } = tunnelHosts(topo, n);
  const a = topo.spawn(nsA, process.execPath, [NULL_TUNNEL, ifA, `${ADDR.tunnelA}/24`, String(ADDR.portA), ADDR.outerB, String(ADDR.portB)]);
  const b = topo.spawn(nsB, process.execPath, [NULL_TUNNEL, ifB, `${ADDR.tunnelB}/24`, String(ADDR.portB), ADDR.outerA, String(ADDR.portA)]);
  try {
    const deadline = performance.now() + 20_000;
    while (!(a.output().includes('ready') && b.output().includes('ready'))) {
      if (performance.now() > deadline) {
        s.notes.push(`null tunnel not ready within 20 s: ${(a.output() + b.output()).slice(-300)}`);
        return s;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    // one echo first, like the tunnels' first reply (it also fills the neighbour tables)
    await pingSummary(nsA, ADDR.tunnelB, 1, 0.2, 6);
    const p20 = await pingSummary(nsA, ADDR.tunnelB, 50, 0.02, 2);
    s.avg20 = p20.avgMs;
    s.min20 = p20.minMs;
    s.avg100 = (await pingSummary(nsA, ADDR.tunnelB, 20, 0.1, 2)).avgMs;
    s.avg2 = (await pingSummary(nsA, ADDR.tunnelB, 300, 0.002, 2)).avgMs;
  } finally {
    await Promise.all([a.stop('SIGTERM', 5_000), b.stop('SIGTERM', 5_000)]);
  }
  return s;
}

async function oneTunnel(topo: Topology, n: number, v: Variant): Promise<Sample> {
  if (v.pair === 'floor') return oneFloor(topo, n);
  const impl = v.pair === 'wg-wg' ? 'wireguard-go' : v.pair === 'other' ? 'kubespand-other' : 'kubespand';
  const result = emptyResult(v.pair as PairId);
  const s: Sample = { readyMs: null, firstReplyMs: null, startToReplyMs: null, avg20: null, min20: null, avg100: null, avg2: null, notes: result.notes };
  // daemons inherit process.env at spawn time
  const tunnel = await withEnv(v.env, () => buildTunnel(topo, n, impl, impl, result, null, v.other ?? null));
  s.readyMs = result.readyMs.a !== null && result.readyMs.b !== null ? Math.max(result.readyMs.a, result.readyMs.b) : null;
  s.firstReplyMs = result.firstReplyMs;
  s.startToReplyMs = result.startToReplyMs;
  if (!tunnel) return s;
  try {
    const p20 = await pingSummary(tunnel.nsA, ADDR.tunnelB, 50, 0.02, 2);
    s.avg20 = p20.avgMs;
    s.min20 = p20.minMs;
    s.avg100 = (await pingSummary(tunnel.nsA, ADDR.tunnelB, 20, 0.1, 2)).avgMs;
    s.avg2 = (await pingSummary(tunnel.nsA, ADDR.tunnelB, 300, 0.002, 2)).avgMs;
  } finally {
    await Promise.all([stopDaemon(tunnel.a, 5_000), stopDaemon(tunnel.b, 5_000)]);
  }
  return s;
}

function median(xs: (number | null)[]): number | null {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

const COLUMNS: [keyof Sample, string, number][] = [
  ['firstReplyMs', 'first reply', 1],
  ['startToReplyMs', 'start→reply', 0],
  ['min20', 'ping min @20 ms', 3],
  ['avg20', 'ping avg @20 ms', 3],
  ['avg100', 'ping avg @100 ms', 3],
  ['avg2', 'ping avg @2 ms', 3],
];

const machine = machineInfo();
const started = new Date();
const topo = new Topology('ksl');
const onSignal = (): void => void topo.destroy().finally(() => process.exit(130));
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);
const samples = new Map<string, Sample[]>(variants.map((v) => [v.name, []]));
try {
  let n = 0;
  for (let r = 1; r <= rounds; r++) {
    for (const v of variants) {
      n++;
      log(`round ${r}/${rounds}: ${v.name} …`);
      try {
        samples.get(v.name)!.push(await oneTunnel(topo, n, v));
      } catch (err) {
        log(`  ${v.name}: ${(err as Error).message}`);
      }
    }
  }
} finally {
  await topo.destroy();
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
}

const baseline = variants[0]!.pair === 'wg-wg' ? variants[0]!.name : null;
const medians = new Map<string, Partial<Record<keyof Sample, number | null>>>();
for (const v of variants) {
  const m: Partial<Record<keyof Sample, number | null>> = {};
  for (const [key] of COLUMNS) m[key] = median(samples.get(v.name)!.map((s) => s[key] as number | null));
  medians.set(v.name, m);
}
const fmt = (x: number | null | undefined, digits: number): string => (x === null || x === undefined ? '–' : x.toFixed(digits));
const lines: string[] = [];
lines.push(`${started.toISOString()} · ${describeMachine(machine)} · kubespand ${gitHead()} · ${rounds} fresh tunnels per row, medians (ms)`);
lines.push('');
lines.push(`| pair | ${COLUMNS.map((c) => c[1]).join(' | ')} |`);
lines.push(`| --- | ${COLUMNS.map(() => '---:').join(' | ')} |`);
for (const v of variants) {
  const m = medians.get(v.name)!;
  const base = baseline && v.name !== baseline ? medians.get(baseline)! : null;
  const cells = COLUMNS.map(([key, , digits]) => {
    const x = m[key] ?? null;
    const b = base?.[key] ?? null;
    return x !== null && b ? `${fmt(x, digits)} (${(x / b).toFixed(2)}×)` : fmt(x, digits);
  });
  lines.push(`| ${v.name} | ${cells.join(' | ')} |`);
}
lines.push('');
lines.push('(n×) = this row / wireguard-go↔wireguard-go, same run; lower is better. first reply = the first echo through the fresh tunnel (its handshake included); start→reply = spawning both daemons until that reply.');
if (values.floor) lines.push('plaintext Node tunnel (floor) = bench/null-tunnel.ts: kubespand\'s TUN reader and UDP bind forwarding packets unchanged, no protocol; the gap between it and kubespand is the protocol core.');
process.stdout.write(lines.join('\n') + '\n');
mkdirSync(values.out, { recursive: true });
const file = join(values.out, `${fileStamp(started)}-latency.json`);
writeFileSync(file, JSON.stringify({ kind: 'kubespand-latency-bench', started: started.toISOString(), commit: gitHead(), machine, rounds, variants, samples: Object.fromEntries(samples), medians: Object.fromEntries(medians) }, null, 2) + '\n');
process.stdout.write(`wrote ${file}\n`);
