/** The README's main job, `kubespand demo --once`, so it cannot rot: a 3-node mesh comes up, pings pass, nothing is left behind. */
import { describe, expect, it } from 'vitest';
import { spawnSync, execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/wg-impl.js';
import { assertRoot } from '../support/netns.js';

describe('kubespand demo', () => {
  it('builds a 3-node mesh, prints statuses, pings across and cleans up', () => {
    assertRoot();
    const r = spawnSync(join(REPO_ROOT, 'bin', 'kubespand'), ['demo', '--once'], { encoding: 'utf8', timeout: 240_000 });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/all 6 peer links up/);
    expect(r.stdout.match(/ ok \(avg/g)).toHaveLength(4);
    const tag = /prefix (ksdemo\d+)/.exec(r.stdout)![1]!;
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(tag);
  }, 250_000);
});
