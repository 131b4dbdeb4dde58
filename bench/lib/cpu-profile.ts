/**
 * Summary of a V8 `.cpuprofile` (what `node --cpu-prof` writes): self time per function and per
 * source file, from the sample stream. Each sample is charged the time until the next sample
 * (`timeDeltas[i + 1]`), as DevTools does; the last sample gets the mean interval. `(idle)` is the
 * event loop waiting; shares are given of the busy (non-idle) time.
 */

export interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}

export interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface SelfTime {
  /** `name (file:line)`, or V8's pseudo-entries such as `(garbage collector)`. */
  name: string;
  selfMs: number;
  /** Share of busy time, 0..1. */
  share: number;
}

export interface ProfileSummary {
  /** Wall time the profile covers, ms. */
  wallMs: number;
  /** Sampled time not in `(idle)`, ms. */
  busyMs: number;
  idleMs: number;
  samples: number;
  /** Functions by self time, largest first. */
  functions: SelfTime[];
  /** Source files (and pseudo-entries) by self time, largest first. */
  files: SelfTime[];
}

function shortUrl(url: string): string {
  if (url === '') return '';
  const clean = url.replace(/^file:\/\//, '');
  const dist = clean.indexOf('/dist/');
  if (dist >= 0) return clean.slice(dist + 6);
  const nm = clean.lastIndexOf('/node_modules/');
  if (nm >= 0) return clean.slice(nm + 14);
  return clean;
}

function frameName(node: CpuProfileNode): { fn: string; file: string } {
  const { functionName, url, lineNumber } = node.callFrame;
  const name = functionName || '(anonymous)';
  if (name.startsWith('(') && url === '') return { fn: name, file: name };
  const file = shortUrl(url) || '(native)';
  return { fn: `${name} (${file}${url ? `:${lineNumber + 1}` : ''})`, file };
}

/** Self time per function and per file; `top` limits both lists. */
export function summarizeProfile(profile: CpuProfile, top = 25): ProfileSummary {
  if (!Array.isArray(profile.nodes)) throw new Error('cpuprofile: no nodes array');
  const byId = new Map<number, CpuProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  if (samples.length > 0 && deltas.length === samples.length) {
    const total = deltas.reduce((s, d) => s + d, 0);
    const mean = total / Math.max(1, deltas.length);
    for (let i = 0; i < samples.length; i++) {
      const next = deltas[i + 1];
      const us = next !== undefined && next >= 0 ? next : mean;
      const id = samples[i]!;
      selfUs.set(id, (selfUs.get(id) ?? 0) + us);
    }
  } else {
    // no sample stream: fall back to hit counts × the mean interval
    const wall = profile.endTime - profile.startTime;
    const hits = profile.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0);
    const per = hits > 0 ? wall / hits : 0;
    for (const n of profile.nodes) if (n.hitCount) selfUs.set(n.id, n.hitCount * per);
  }
  const fns = new Map<string, number>();
  const files = new Map<string, number>();
  let idleUs = 0;
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const { fn, file } = frameName(node);
    if (fn === '(idle)') {
      idleUs += us;
      continue;
    }
    busyUs += us;
    fns.set(fn, (fns.get(fn) ?? 0) + us);
    files.set(file, (files.get(file) ?? 0) + us);
  }
  const rank = (m: Map<string, number>): SelfTime[] =>
    [...m.entries()]
      .sort((x, y) => y[1] - x[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, selfMs: us / 1000, share: busyUs > 0 ? us / busyUs : 0 }));
  return {
    wallMs: (profile.endTime - profile.startTime) / 1000,
    busyMs: busyUs / 1000,
    idleMs: idleUs / 1000,
    samples: samples.length,
    functions: rank(fns),
    files: rank(files),
  };
}

/** A plain-text table of the top entries, for the terminal and docs. */
export function formatProfileSummary(title: string, s: ProfileSummary, rows = 15): string {
  const lines = [
    `${title}: ${(s.wallMs / 1000).toFixed(1)} s profiled, ${(s.busyMs / 1000).toFixed(2)} s busy (${s.wallMs > 0 ? ((100 * s.busyMs) / s.wallMs).toFixed(0) : '?'}% of wall), ${s.samples} samples`,
    '  self ms   busy%  function',
  ];
  for (const f of s.functions.slice(0, rows)) lines.push(`  ${f.selfMs.toFixed(0).padStart(7)}  ${(100 * f.share).toFixed(1).padStart(5)}%  ${f.name}`);
  lines.push('  by file:');
  for (const f of s.files.slice(0, Math.min(rows, 10))) lines.push(`  ${f.selfMs.toFixed(0).padStart(7)}  ${(100 * f.share).toFixed(1).padStart(5)}%  ${f.name}`);
  return lines.join('\n');
}
