/**
 * Tables for the netns harness: one for throughput and latency, one for cost (CPU per GB, RSS), each
 * figure followed by its ratio to wireguard-go↔wireguard-go from the same run. The same cells render
 * as aligned text for the terminal and as a Markdown table for docs.
 */
import { BASELINE, type PairResult, type TestId } from './netns-bench.js';

export type Cell = string;

export interface Table {
  title: string;
  header: string[];
  rows: Cell[][];
  footnotes: string[];
}

/** value / base, or null when either is missing or base is not positive. */
export function ratio(value: number | null | undefined, base: number | null | undefined): number | null {
  if (value === null || value === undefined || base === null || base === undefined) return null;
  if (!Number.isFinite(value) || !Number.isFinite(base) || base <= 0) return null;
  return value / base;
}

function fmt(v: number | null | undefined, digits: number): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits);
}

function withRatio(v: number | null | undefined, base: number | null | undefined, digits: number, isBaseRow: boolean): string {
  if (v === null || v === undefined) return '–';
  const r = ratio(v, base);
  return isBaseRow || r === null ? fmt(v, digits) : `${fmt(v, digits)} (${r.toFixed(2)}×)`;
}

const mbps = (p: PairResult | undefined, t: TestId): number | null => p?.tests[t]?.mbps ?? null;
const mib = (bytes: number | null | undefined): number | null => (bytes === null || bytes === undefined ? null : bytes / 1048576);

export function throughputTable(pairs: PairResult[]): Table {
  const base = pairs.find((p) => p.id === BASELINE);
  const rows = pairs.map((p) => {
    const isBase = p.id === BASELINE;
    const udp = p.tests.udp;
    const udpCell = udp?.mbps === null || udp?.mbps === undefined
      ? '–'
      : `${withRatio(udp.mbps, mbps(base, 'udp'), 0, isBase)} of ${fmt((udp.iperf?.sentBitsPerSecond ?? NaN) / 1e6, 0)}, loss ${fmt(udp.iperf?.lostPercent, 1)}%`;
    const ping = p.ping && p.ping.received > 0 ? `${fmt(p.ping.minMs, 3)} / ${withRatio(p.ping.avgMs, base?.ping?.avgMs, 3, isBase)} / ${fmt(p.ping.maxMs, 3)}` : '–';
    return [
      p.label,
      withRatio(mbps(p, 'tcp1'), mbps(base, 'tcp1'), 0, isBase),
      withRatio(mbps(p, 'tcp1r'), mbps(base, 'tcp1r'), 0, isBase),
      withRatio(mbps(p, 'tcp4'), mbps(base, 'tcp4'), 0, isBase),
      udpCell,
      ping,
      withRatio(p.firstReplyMs, base?.firstReplyMs, 1, isBase),
      withRatio(p.startToReplyMs, base?.startToReplyMs, 0, isBase),
    ];
  });
  return {
    title: 'Throughput (Mbit/s, receiver) and latency (ms)',
    header: ['pair (a↔b)', 'TCP 1 a→b', 'TCP 1 b→a', 'TCP 4 a→b', 'UDP a→b delivered of offered', 'ping min / avg / max', 'first reply', 'start→reply'],
    rows,
    footnotes: [
      '(n×) = this row / wireguard-go↔wireguard-go in the same run; throughput higher is better, times lower.',
      'first reply = round trip of the first echo through the fresh tunnel (it waits for the handshake); start→reply = spawning both daemons until that reply.',
    ],
  };
}

export function costTable(pairs: PairResult[]): Table {
  const base = pairs.find((p) => p.id === BASELINE);
  const rows = pairs
    .filter((p) => p.implA !== null)
    .map((p) => {
      const isBase = p.id === BASELINE;
      const t = p.tests.tcp1;
      const r = p.tests.tcp1r;
      const bt = base?.tests.tcp1;
      const br = base?.tests.tcp1r;
      return [
        p.label,
        withRatio(t?.a.cpuSecondsPerGB, bt?.a.cpuSecondsPerGB, 2, isBase),
        withRatio(t?.b.cpuSecondsPerGB, bt?.b.cpuSecondsPerGB, 2, isBase),
        withRatio(r?.b.cpuSecondsPerGB, br?.b.cpuSecondsPerGB, 2, isBase),
        withRatio(r?.a.cpuSecondsPerGB, br?.a.cpuSecondsPerGB, 2, isBase),
        t?.hostBusy === null || t?.hostBusy === undefined ? '–' : `${(100 * t.hostBusy).toFixed(0)}%`,
        withRatio(mib(p.memory.a?.peakRss), mib(base?.memory.a?.peakRss), 1, isBase),
        withRatio(mib(p.memory.b?.peakRss), mib(base?.memory.b?.peakRss), 1, isBase),
      ];
    });
  return {
    title: 'Cost: daemon CPU seconds per GB received (TCP 1 stream) and peak RSS (MiB)',
    header: ['pair (a↔b)', 'a sending', 'b receiving', 'b sending', 'a receiving', 'host busy (TCP 1 a→b)', 'peak RSS a', 'peak RSS b'],
    rows,
    footnotes: [
      'CPU = utime+stime of the daemon (all threads) from /proc/<pid>/stat over the iperf3 run ÷ GB the iperf3 receiver got; "sending" = a→b for a, b→a (-R) for b.',
      'Kernel work done in softirq context (veth, UDP, TUN) is not charged to a daemon; host busy is the share of all CPUs busy during the run.',
      'peak RSS = VmHWM after all tests.',
    ],
  };
}

export function renderText(t: Table): string {
  const widths = t.header.map((h, i) => Math.max(h.length, ...t.rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [t.title, line(t.header), ...t.rows.map(line), ...t.footnotes.map((f) => `  ${f}`)].join('\n');
}

export function renderMarkdown(t: Table): string {
  const esc = (c: string): string => c.replace(/\|/g, '\\|');
  return [
    `**${t.title}**`,
    '',
    `| ${t.header.map(esc).join(' | ')} |`,
    `| ${t.header.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
    ...t.rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
    '',
    ...t.footnotes.map((f) => `${f}`),
  ].join('\n');
}
