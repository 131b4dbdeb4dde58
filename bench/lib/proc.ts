/**
 * What the benchmarks read from /proc: a process's CPU time (utime + stime of all its threads, from
 * /proc/<pid>/stat), its resident memory (VmRSS, and VmHWM, the peak), the host's CPU counters
 * (/proc/stat) and a one-paragraph description of the machine. Parsers are pure and take the file's
 * text, so they can be checked without a live process.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';

let clockTicks: number | undefined;

/** Clock ticks per second for /proc times (`getconf CLK_TCK`, 100 on every Linux we know). */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      const v = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
      clockTicks = Number.isInteger(v) && v > 0 ? v : 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/**
 * utime + stime in clock ticks from the text of /proc/<pid>/stat. The command name (field 2) is in
 * parentheses and may itself contain spaces or ')', so fields are counted from the last ')'.
 */
export function parseStatCpuTicks(stat: string): number {
  const close = stat.lastIndexOf(')');
  if (close < 0) throw new Error(`/proc stat: no ")" after the command name in ${JSON.stringify(stat.slice(0, 80))}`);
  const rest = stat.slice(close + 2).trim().split(/\s+/);
  // rest[0] is field 3 (state); utime is field 14, stime field 15
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`/proc stat: utime/stime are not numbers (${rest[11]}, ${rest[12]})`);
  return utime + stime;
}

/** CPU seconds (user + system, all threads) a live process has used so far. */
export function processCpuSeconds(pid: number): number {
  return parseStatCpuTicks(readFileSync(`/proc/${pid}/stat`, 'utf8')) / clockTicksPerSecond();
}

/** A `Vm…:  N kB` field of /proc/<pid>/status, in bytes. */
export function parseStatusKb(status: string, field: 'VmRSS' | 'VmHWM' | 'VmSize' | 'VmPeak'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
  if (!m) throw new Error(`/proc status: no ${field} line`);
  return Number(m[1]) * 1024;
}

export interface ProcessMemory {
  /** Resident set now, bytes. */
  rss: number;
  /** Peak resident set since start (VmHWM), bytes. */
  peakRss: number;
}

export function processMemory(pid: number): ProcessMemory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { rss: parseStatusKb(status, 'VmRSS'), peakRss: parseStatusKb(status, 'VmHWM') };
}

/** The command name of a live process (`/proc/<pid>/comm`), or null when it is gone. */
export function processName(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return null;
  }
}

export interface HostCpu {
  /** Ticks spent doing anything but idle/iowait, over all CPUs. */
  busy: number;
  total: number;
  /** Of `busy`, ticks in softirq (where much of the kernel's network work lands). */
  softirq: number;
}

/** The aggregate `cpu` line of /proc/stat. */
export function parseHostCpu(procStat: string): HostCpu {
  const line = procStat.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) throw new Error('/proc/stat: no aggregate "cpu " line');
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest fields are already inside user/nice)
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
  const total = user + nice + system + idle + iowait + irq + softirq + steal;
  return { busy: total - idle - iowait, total, softirq };
}

export function hostCpu(): HostCpu {
  return parseHostCpu(readFileSync('/proc/stat', 'utf8'));
}

/** Share of all CPUs busy between two samples, 0..1 (null when no time passed). */
export function busyShare(before: HostCpu, after: HostCpu): number | null {
  const total = after.total - before.total;
  return total > 0 ? (after.busy - before.busy) / total : null;
}

export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  kernel: string;
  node: string;
  wireguardGo: string | null;
  iperf3: string | null;
  /** 1/5/15-minute load averages when the run started: other work on a shared host shows here. */
  loadAverage: number[];
}

function firstLine(cmd: string, args: string[]): string | null {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5_000 }).split('\n')[0]!.trim() || null;
  } catch {
    return null;
  }
}

export function machineInfo(): MachineInfo {
  const list = cpus();
  return {
    nproc: list.length,
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    kernel: release(),
    node: process.version,
    wireguardGo: firstLine('wireguard-go', ['--version']),
    iperf3: firstLine('iperf3', ['--version']),
    loadAverage: loadavg().map((v) => Math.round(v * 100) / 100),
  };
}

export function describeMachine(m: MachineInfo): string {
  return `${m.nproc} CPU ${m.cpuModel}, kernel ${m.kernel}, node ${m.node}` +
    `${m.wireguardGo ? `, ${m.wireguardGo}` : ''}${m.iperf3 ? `, ${m.iperf3}` : ''}, load average ${m.loadAverage.join(' ')} at start`;
}
