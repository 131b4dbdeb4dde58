/**
 * Runs project TypeScript in a child process (e.g. under `ip netns exec`, since a process cannot move
 * itself into another network namespace). Node 20 cannot execute .ts, so the entry files and every
 * relative import they reach are transpiled (types stripped, no type check) with vite's oxc transform
 * into node_modules/.cache/<tag>-<pid>/, keeping the src/ layout: relative imports, bare package
 * imports and the native addon lookup (build/Release, found by walking up) all resolve as in the repo.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { transformWithOxc } from 'vite';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface TranspiledTree {
  /** Root of the transpiled tree; `src/tun/tun-linux.ts` is at `<dir>/src/tun/tun-linux.js`. */
  dir: string;
  /** Absolute path of the transpiled file for a repo-relative .ts path. */
  path(repoRelativeTs: string): string;
  cleanup(): void;
}

const RELATIVE_IMPORT = /(?:from\s*|import\s*\(\s*)['"](\.{1,2}\/[^'"]+)\.js['"]/g;

export async function transpileForChild(entries: string[], tag: string): Promise<TranspiledTree> {
  const dir = join(REPO_ROOT, 'node_modules', '.cache', `${tag}-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  const seen = new Set<string>();
  const queue = entries.map((e) => resolve(REPO_ROOT, e));
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const source = readFileSync(file, 'utf8');
    const { code } = await transformWithOxc(source, file, { target: 'es2022' });
    const out = join(dir, relative(REPO_ROOT, file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, code);
    for (const m of code.matchAll(RELATIVE_IMPORT)) queue.push(resolve(dirname(file), `${m[1]}.ts`));
  }
  return {
    dir,
    path: (rel) => join(dir, rel.replace(/\.ts$/, '.js')),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
