/**
 * Smoke runs of the benchmarks, so they cannot rot: the netns harness (`npm run bench`) with 2 s per
 * figure on wireguard-go↔wireguard-go and kubespand↔kubespand plus the CPU profile; the micro
 * benchmarks in quick mode; the scale bench with a few peers. Nothing here judges a figure: the tests
 * check that each figure was measured, is a sane number, agrees with the others where it must (the
 * printed ratio is the ratio of the two measured rates), and that everything the runs created is gone.
 * The pure readers (/proc, iperf3, ping, cpuprofile) are checked on fixed inputs first.
 *
 * Runs the COMPILED scripts (dist/bench), like the other netns tests run bin/kubespand: `npm run build`.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/wg-impl.js';
import { sh } from '../support/netns.js';
import { parseHostCpu, parseStatCpuTicks, parseStatusKb } from '../../bench/lib/proc.js';
import { parseIperfReport, parsePing } from '../../bench/lib/iperf.js';
import { summarizeProfile, type CpuProfile } from '../../bench/lib/cpu-profile.js';
import { ratio } from '../../bench/lib/report.js';
import type { NetnsBenchResult, PairResult } from '../../bench/lib/netns-bench.js';
import type { MicroReport } from '../../bench/micro.js';
import type { ScaleReport } from '../../bench/scale.js';

const DIST = join(REPO_ROOT, 'dist', 'bench');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runNode(script: string, args: string[], timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(DIST, script), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function jsonIn(dir: string, suffix: string): unknown {
  const files = readdirSync(dir).filter((f) => f.endsWith(suffix));
  expect(files, `one *${suffix} in ${dir}: ${readdirSync(dir).join(', ')}`).toHaveLength(1);
  return JSON.parse(readFileSync(join(dir, files[0]!), 'utf8'));
}

function leftovers(tag: string): string[] {
  const ns = sh('ip', ['netns', 'list']).split('\n').filter((l) => l.startsWith(`${tag}-`));
  const socks = existsSync('/var/run/wireguard') ? readdirSync('/var/run/wireguard').filter((f) => f.startsWith(tag)) : [];
  return [...ns, ...socks];
}

let out: string;
beforeAll(() => {
  for (const f of ['run.js', 'micro.js', 'scale.js', 'scale-peers.js', 'kubespand-profiled.js', 'profile-summary.js']) {
    if (!existsSync(join(DIST, f))) throw new Error(`${join(DIST, f)} is missing: run "npm run build" before the netns tests`);
  }
  out = mkdtempSync(join(tmpdir(), 'ksb-smoke-'));
});
afterAll(() => {
  if (out) rmSync(out, { recursive: true, force: true });
});

describe('bench readers on fixed inputs', () => {
  it('reads utime+stime after a command name that contains ") "', () => {
    const stat = '4242 (node ) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 11 0 100 1000 2000';
    expect(parseStatCpuTicks(stat)).toBe(325);
    expect(() => parseStatCpuTicks('garbage')).toThrow(/no "\)"/);
  });

  it('reads VmHWM/VmRSS in bytes and the host CPU line', () => {
    const status = 'Name:\tnode\nVmPeak:\t  999 kB\nVmHWM:\t   81920 kB\nVmRSS:\t   40960 kB\n';
    expect(parseStatusKb(status, 'VmHWM')).toBe(81920 * 1024);
    expect(parseStatusKb(status, 'VmRSS')).toBe(40960 * 1024);
    expect(() => parseStatusKb('Name:\tx\n', 'VmHWM')).toThrow(/VmHWM/);
    const cpu = parseHostCpu('cpu  100 5 50 800 10 1 4 0 0 0\ncpu0 1 2 3 4\n');
    expect(cpu).toEqual({ busy: 160, total: 970, softirq: 4 });
  });

  it('reads iperf3 TCP and UDP reports and refuses a failed run with its message', () => {
    const tcp = JSON.stringify({
      start: { test_start: { protocol: 'TCP' } },
      end: { sum_sent: { seconds: 2, bytes: 200e6, bits_per_second: 800e6, retransmits: 7 }, sum_received: { seconds: 2, bytes: 199e6, bits_per_second: 796e6 } },
    });
    const t = parseIperfReport(tcp);
    expect(t).toMatchObject({ protocol: 'tcp', receivedBitsPerSecond: 796e6, receivedBytes: 199e6, retransmits: 7, lostPercent: null });
    const udp = JSON.stringify({
      start: { test_start: { protocol: 'UDP' } },
      end: {
        sum: { lost_packets: 40, packets: 100, lost_percent: 40, jitter_ms: 0.1 },
        sum_sent: { seconds: 1, bytes: 1e6, bits_per_second: 8e6, packets: 100 },
        sum_received: { seconds: 1, bytes: 6e5, bits_per_second: 4.8e6 },
      },
    });
    expect(parseIperfReport(udp)).toMatchObject({ protocol: 'udp', sentBitsPerSecond: 8e6, receivedBitsPerSecond: 4.8e6, lostPercent: 40, lostPackets: 40, packets: 100 });
    expect(() => parseIperfReport(JSON.stringify({ error: 'unable to connect to server' }))).toThrow(/unable to connect/);
    expect(() => parseIperfReport('iperf3: oops')).toThrow(/not JSON/);
  });

  it('reads ping summaries and each reply time', () => {
    const p = parsePing('64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=12.5 ms\n64 bytes from 10.0.0.2: icmp_seq=2 ttl=64 time=0.41 ms\n\n2 packets transmitted, 2 received, 0% packet loss, time 1001ms\nrtt min/avg/max/mdev = 0.410/6.455/12.500/6.045 ms\n');
    expect(p).toEqual({ transmitted: 2, received: 2, minMs: 0.41, avgMs: 6.455, maxMs: 12.5, replies: [12.5, 0.41] });
    expect(parsePing('3 packets transmitted, 0 received, 100% packet loss').avgMs).toBeNull();
  });

  it('charges each sample the time to the next one and leaves (idle) out of the busy shares', () => {
    const frame = (id: number, functionName: string, url = '', lineNumber = 0) => ({ id, callFrame: { functionName, url, lineNumber, columnNumber: 0, scriptId: '0' } });
    const profile: CpuProfile = {
      nodes: [frame(1, '(root)'), frame(2, '(idle)'), frame(3, 'encrypt', 'file:///x/dist/src/noise/device.js', 284), frame(4, 'sendBatch', 'file:///x/dist/src/bind/udp-bind.js', 151)],
      startTime: 0,
      endTime: 10_000,
      samples: [3, 3, 4, 2, 3],
      timeDeltas: [0, 1000, 2000, 3000, 4000],
    };
    const s = summarizeProfile(profile);
    // encrypt: 1000 + 2000 + mean(2000) = 5000 µs; sendBatch: 3000; idle: 4000
    expect(s.functions.map((f) => [f.name, f.selfMs])).toEqual([
      ['encrypt (src/noise/device.js:285)', 5],
      ['sendBatch (src/bind/udp-bind.js:152)', 3],
    ]);
    expect(s.idleMs).toBe(4);
    expect(s.busyMs).toBe(8);
    expect(s.functions[0]!.share).toBeCloseTo(5 / 8);
    expect(s.files[0]).toMatchObject({ name: 'src/noise/device.js', selfMs: 5 });
  });

  it('takes ratios only of positive, finite figures', () => {
    expect(ratio(150, 300)).toBe(0.5);
    expect(ratio(1, 0)).toBeNull();
    expect(ratio(null, 3)).toBeNull();
    expect(ratio(3, undefined)).toBeNull();
  });
});

describe('npm run bench (netns harness), 2 s per figure', () => {
  let run: Run;
  let report: NetnsBenchResult & { options: { durationS: number }; machine: { nproc: number } };
  const pair = (id: string): PairResult => report.pairs.find((p) => p.id === id)!;

  beforeAll(async () => {
    run = await runNode('run.js', ['--duration', '2', '--ping-count', '10', '--pairs', 'wg-wg,ks-ks', '--profile', '--out', out], 170_000);
    if (run.code !== 0) throw new Error(`bench exited ${run.code}: ${run.stderr.slice(-3000)}`);
    report = jsonIn(out, 'Z.json') as typeof report;
  }, 180_000);

  it('writes the JSON, the Markdown and both tables with the machine it ran on', () => {
    expect(report.options.durationS).toBe(2);
    expect(report.machine.nproc).toBeGreaterThan(0);
    expect(report.pairs.map((p) => p.id)).toEqual(['wg-wg', 'ks-ks']);
    expect(run.stdout).toContain('Throughput (Mbit/s, receiver) and latency (ms)');
    expect(run.stdout).toContain('Cost: daemon CPU seconds per GB');
    const md = readdirSync(out).filter((f) => /Z\.md$/.test(f));
    expect(md).toHaveLength(1);
    expect(readFileSync(join(out, md[0]!), 'utf8')).toMatch(/^\| kubespand↔kubespand \| /m);
  });

  it('measures every figure of both pairs', () => {
    for (const p of report.pairs) {
      expect(p.notes, `${p.label} notes`).toEqual([]);
      for (const t of ['tcp1', 'tcp1r', 'tcp4', 'udp'] as const) {
        const f = p.tests[t]!;
        expect(f.error, `${p.label} ${t}`).toBeNull();
        expect(f.mbps!, `${p.label} ${t} Mbit/s`).toBeGreaterThan(0);
        expect(f.iperf!.seconds).toBeGreaterThan(1);
        for (const side of ['a', 'b'] as const) {
          expect(f[side].cpuSeconds!, `${p.label} ${t} ${side} CPU s`).toBeGreaterThan(0);
          expect(Number.isFinite(f[side].cpuSecondsPerGB)).toBe(true);
        }
        expect(f.hostBusy!).toBeGreaterThan(0);
        expect(f.hostBusy!).toBeLessThanOrEqual(1);
      }
      const udp = p.tests.udp!.iperf!;
      expect(udp.protocol).toBe('udp');
      expect(udp.sentBitsPerSecond).toBeGreaterThanOrEqual(udp.receivedBitsPerSecond);
      expect(udp.lostPercent!).toBeGreaterThanOrEqual(0);
      expect(udp.lostPercent!).toBeLessThanOrEqual(100);
      expect(p.ping!.received).toBeGreaterThan(0);
      expect(p.ping!.minMs!).toBeLessThanOrEqual(p.ping!.avgMs!);
      expect(p.ping!.avgMs!).toBeLessThanOrEqual(p.ping!.maxMs!);
      expect(p.firstReplyMs!).toBeGreaterThan(0);
      expect(p.startToReplyMs!).toBeGreaterThan(p.firstReplyMs!);
      expect(p.readyMs.a!).toBeGreaterThan(0);
      expect(p.startToReplyMs!).toBeGreaterThan(p.readyMs.a!);
      for (const side of ['a', 'b'] as const) {
        expect(p.memory[side]!.peakRss, `${p.label} ${side} peak RSS`).toBeGreaterThan(1 << 20);
        expect(p.memory[side]!.peakRss).toBeGreaterThanOrEqual(p.memory[side]!.rss);
      }
    }
  });

  it('prints each ratio as the kubespand figure over the wireguard-go figure from the same run', () => {
    const ks = pair('ks-ks');
    const wg = pair('wg-wg');
    const row = run.stdout.split('\n').find((l) => l.startsWith('| kubespand↔kubespand |'))!;
    expect(row).toBeDefined();
    const expected = ratio(ks.tests.tcp1!.mbps, wg.tests.tcp1!.mbps)!.toFixed(2);
    expect(row.split('|')[2]!.trim()).toBe(`${ks.tests.tcp1!.mbps!.toFixed(0)} (${expected}×)`);
    const wgRow = run.stdout.split('\n').find((l) => l.startsWith('| wireguard-go↔wireguard-go |'))!;
    expect(wgRow.split('|')[2]!.trim()).toBe(wg.tests.tcp1!.mbps!.toFixed(0));
  });

  it('profiles both kubespand daemons under load and names our own functions', async () => {
    const prof = report.profile!;
    expect(prof.notes).toEqual([]);
    expect(prof.mbps!).toBeGreaterThan(0);
    for (const side of [prof.sender!, prof.receiver!]) {
      expect(side.busyMs).toBeGreaterThan(100);
      expect(side.functions.length).toBeGreaterThan(5);
      expect(side.functions.some((f) => f.name.includes('src/'))).toBe(true);
      const shares = side.functions.reduce((s, f) => s + f.share, 0);
      expect(shares).toBeGreaterThan(0);
      expect(shares).toBeLessThanOrEqual(1.0001);
    }
    expect(existsSync(prof.files.sender!)).toBe(true);
    expect(run.stdout).toContain('sender (a: TUN → encrypt → UDP)');
    // the standalone summary of the kept profile agrees with the harness's
    const again = await runNode('profile-summary.js', [prof.files.sender!, '--json'], 30_000);
    expect(again.code, again.stderr).toBe(0);
    const summary = JSON.parse(again.stdout) as { busyMs: number; functions: { name: string }[] };
    expect(summary.busyMs).toBeCloseTo(prof.sender!.busyMs, 6);
    expect(summary.functions[0]!.name).toBe(prof.sender!.functions[0]!.name);
  });

  it('leaves no namespace, daemon socket or process behind', () => {
    expect(report.tag).toMatch(/^ksb\d+$/);
    expect(leftovers(report.tag)).toEqual([]);
  });
});

describe('bench command line', () => {
  it('refuses bad options naming the option and the value', async () => {
    const zero = await runNode('run.js', ['--duration', '0'], 30_000);
    expect(zero.code).toBe(2);
    expect(zero.stderr).toContain('--duration: expected a positive whole number, got "0"');
    const pairs = await runNode('run.js', ['--pairs', 'wg-wg,bogus'], 30_000);
    expect(pairs.code).toBe(2);
    expect(pairs.stderr).toContain('--pairs: unknown pair "bogus"');
    const peers = await runNode('scale.js', ['--peers', 'many'], 30_000);
    expect(peers.code).toBe(2);
    expect(peers.stderr).toContain('--peers: expected a whole number');
    expect(peers.stderr).toContain('"many"');
  });
});

describe('micro-benchmarks, quick', () => {
  it('measures handshakes, the data path per size and provider, and allowed-IPs lookups', async () => {
    const dir = mkdtempSync(join(out, 'micro-'));
    const r = await runNode('micro.js', ['--quick', '--no-primitives', '--out', dir], 170_000);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const m = jsonIn(dir, '-micro.json') as MicroReport;
    expect(m.providers).toEqual(expect.arrayContaining(['node', 'noble']));
    expect(m.notes.filter((n) => n.includes('handshakes'))).toEqual([]);
    for (const h of m.handshakes) {
      expect(h.noisePerSecond).toBeGreaterThan(1);
      expect(h.devicePerSecond).toBeGreaterThan(1);
    }
    expect(m.dataPath).toHaveLength(m.providers.length * 3);
    for (const d of m.dataPath) {
      expect([64, 512, 1420]).toContain(d.size);
      expect(d.encapPerSecond).toBeGreaterThan(100);
      expect(d.decapPerSecond).toBeGreaterThan(100);
      expect(d.encapGbps).toBeCloseTo((d.encapPerSecond * d.size * 8) / 1e9, 6);
    }
    expect(m.allowedIps.map((a) => [a.family, a.prefixes])).toEqual([['IPv4', 10_000], ['IPv6', 10_000]]);
    for (const a of m.allowedIps) {
      expect(a.lookupsPerSecond).toBeGreaterThan(1000);
      // half the probes are drawn inside inserted prefixes, the other half rarely hit
      expect(a.hitShare).toBeGreaterThan(0.45);
      expect(a.hitShare).toBeLessThan(0.9);
    }
    expect(r.stdout).toContain('| node | 1420 |');
  }, 180_000);
});

describe('scale bench, 20 peers', () => {
  it('configures a hub of each implementation, completes every handshake, and times the controller', async () => {
    const dir = mkdtempSync(join(out, 'scale-'));
    const r = await runNode('scale.js', ['--peers', '20', '--timeout', '40', '--out', dir], 170_000);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const s = jsonIn(dir, '-scale.json') as ScaleReport;
    expect(s.hubs.map((h) => h.impl)).toEqual(['kubespand', 'wireguard-go']);
    for (const h of s.hubs) {
      expect(h.notes, h.impl).toEqual([]);
      expect(h.applyMs!).toBeGreaterThan(0);
      expect(h.handshakes.completed).toBe(20);
      expect(h.handshakes.lastMs!).toBeGreaterThan(0);
      expect(h.handshakes.p50Ms!).toBeLessThanOrEqual(h.handshakes.lastMs!);
      expect(h.getPeersWithHandshake).toBe(20);
      expect(h.memory.configured!.rss).toBeGreaterThan(1 << 20);
      expect(h.memory.afterHandshakes!.peakRss).toBeGreaterThanOrEqual(h.memory.afterHandshakes!.rss);
    }
    expect(s.inProcess.completed).toBe(20);
    expect(s.inProcess.handshakeWallMs!).toBeGreaterThan(0);
    expect(s.reconcile.specs).toBe(20);
    expect(s.reconcile.devicePeers).toBe(20);
    expect(s.reconcile.buildPeerSpecs.medianMs).toBeGreaterThan(0);
    expect(sh('ip', ['netns', 'list'])).not.toMatch(/^ksb\d+-s[kw]\b/m);
  }, 180_000);
});

describe('latency bench, one tunnel per row', () => {
  it('measures every latency figure for wireguard-go and kubespand, with a variant row, and cleans up', async () => {
    const dir = mkdtempSync(join(out, 'latency-'));
    const r = await runNode('latency.js', ['--rounds', '1', '--variant', 'kw:KUBESPAND_KEEPWARM=on,KUBESPAND_WARMUP=off', '--floor', '--out', dir], 170_000);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const report = jsonIn(dir, '-latency.json') as { rounds: number; samples: Record<string, { firstReplyMs: number | null; avg20: number | null; avg100: number | null; avg2: number | null; notes: string[] }[]> };
    const floor = 'plaintext Node tunnel (floor)';
    expect(Object.keys(report.samples)).toEqual(['wireguard-go↔wireguard-go', 'kubespand↔kubespand', 'kubespand (kw)', floor]);
    for (const [name, runs] of Object.entries(report.samples)) {
      expect(runs, name).toHaveLength(1);
      const s = runs[0]!;
      expect(s.notes, name).toEqual([]);
      // the floor (bench/null-tunnel.ts) has no handshake: ping columns only
      if (name === floor) expect(s.firstReplyMs).toBeNull();
      for (const v of name === floor ? [s.avg20, s.avg100, s.avg2] : [s.firstReplyMs, s.avg20, s.avg100, s.avg2]) expect(v, name).toBeGreaterThan(0);
    }
    expect(r.stdout).toMatch(/^\| plaintext Node tunnel \(floor\) \| – \| – \| [\d.]+ \(/m);
    expect(r.stdout).toMatch(/^\| kubespand↔kubespand \| [\d.]+ \([\d.]+×\) \|/m);
    expect(sh('ip', ['netns', 'list'])).not.toMatch(/^ksl/m);
  }, 180_000);

  it('refuses a malformed variant naming it', async () => {
    const r = await runNode('latency.js', ['--variant', 'nokeys'], 30_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--variant "nokeys"');
  });
});

describe('UDP receive bench', () => {
  it('floods a bind through both receive paths and reports both', async () => {
    const r = await runNode('udp-rx.js', ['--seconds', '1', '--rounds', '1'], 60_000);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    for (const path of ['native', 'dgram']) {
      const m = new RegExp(`^median ${path}: (\\d+)k datagrams/s delivered, ([\\d.]+) µs CPU per datagram$`, 'm').exec(r.stdout);
      expect(m, r.stdout).not.toBeNull();
      expect(Number(m![2])).toBeGreaterThan(0);
    }
  });
});

describe('cold-ops bench', () => {
  it('times every operation cold and warm, and refuses bad arguments naming them', async () => {
    const r = await runNode('cold-ops.js', ['--rounds', '3', '--gap-ms', '2'], 60_000);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const rows = r.stdout.split('\n').filter((l) => /^\| [^-o]/.test(l) && !l.startsWith('| operation'));
    expect(rows.length).toBeGreaterThanOrEqual(9);
    for (const row of rows) {
      const m = /\| ([\d.]+) \| ([\d.]+) \|$/.exec(row);
      expect(m, row).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThan(0);
      expect(Number(m![2])).toBeGreaterThan(0);
    }
    const bad = await runNode('cold-ops.js', ['--rounds', '1'], 30_000);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--rounds 3..10000');
    expect(bad.stderr).toContain('"1"');
  });
});
