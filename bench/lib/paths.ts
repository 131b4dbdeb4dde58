/** Where things are, whether this file runs compiled (dist/bench/lib) or from source under vitest (bench/lib). */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'kubespand') return dir;
      } catch {
        /* not ours: keep going up */
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`bench: no kubespand package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

export const REPO_ROOT = findRoot();
/** The compiled CLI entry that bin/kubespand imports. */
export const CLI_MAIN = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
export const KUBESPAND_BIN = process.env.KSN_KUBESPAND_BIN || join(REPO_ROOT, 'bin', 'kubespand');
/** The profiling wrapper (compiled). */
export const PROFILED_MAIN = join(REPO_ROOT, 'dist', 'bench', 'kubespand-profiled.js');
export const SCALE_PEERS = join(REPO_ROOT, 'dist', 'bench', 'scale-peers.js');
export const RESULTS_DIR = join(REPO_ROOT, 'bench', 'results');
export const UAPI_DIR = '/var/run/wireguard';

/** `2026-11-26T14-30-05Z`: an ISO UTC time usable as a file name. */
export function fileStamp(d = new Date()): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}

/**
 * The checkout's commit, for the record: KSB_COMMIT when set (a build made from `git archive`, which
 * has no .git), else `git rev-parse --short HEAD`, else null. A dirty working tree is marked "+dirty".
 */
export function gitHead(): string | null {
  if (process.env.KSB_COMMIT) return process.env.KSB_COMMIT;
  try {
    const head = execFileSync('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['-C', REPO_ROOT, 'status', '--porcelain', '--untracked-files=no', '--', 'src', 'native', 'binding.gyp'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${head}+dirty` : head;
  } catch {
    return null;
  }
}
