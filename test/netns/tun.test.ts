/**
 * Real TUN devices inside network namespaces (root). Two layers:
 *  - the bare addon (test/support/tun-echo.mjs): open, poll-driven batched reads, tunWrite/tunWriteBatch,
 *    and the reader's error report when the interface is deleted;
 *  - the TypeScript stack (test/support/tun-ts-echo.mjs on a transpiled copy of src/): openLinuxTun and
 *    tunFromFd, link.ts configuration, LinuxTun.onPackets/write/onClose, batching under a burst.
 * In each, `ping` in the namespace goes out through the TUN and the helper writes the echo replies back.
 *
 *   netns kst<pid>-t                       netns kst<pid>-u
 *   ┌───────────────────────────────┐      ┌──────────────────────────────────────────────┐
 *   │ ping 10.77.0.2 / fd00:77::2   │      │ ping 10.76.0.2, 10.78.0.5 (route), fd00:76::2 │
 *   │   → kst0 (10.77.0.1/24)       │      │   → kst0 (10.76.0.1/24, mtu 1400)             │
 *   │   ↔ tun-echo.mjs (addon)      │      │   ↔ tun-ts-echo.mjs (LinuxTun)                │
 *   └───────────────────────────────┘      └──────────────────────────────────────────────┘
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAddress, addRoute, delRoute, deleteLink, linkExists, linkInfo, setLinkMtu } from '../../src/tun/link.js';
import { Topology, eventually, type Spawned } from '../support/netns.js';
import { REPO_ROOT, transpileForChild, type TranspiledTree } from '../support/ts-child.js';

const ECHO = join(REPO_ROOT, 'test', 'support', 'tun-echo.mjs');
const TS_ECHO = join(REPO_ROOT, 'test', 'support', 'tun-ts-echo.mjs');

let topo: Topology;
let tree: TranspiledTree;

beforeAll(async () => {
  topo = new Topology('kst'); // throws a clear error when not root
  tree = await transpileForChild(['src/tun/tun-linux.ts', 'src/tun/link.ts', 'src/tun/packets.ts'], 'kst-tun');
});

afterAll(async () => {
  await topo?.destroy();
  tree?.cleanup();
});

function pingOk(ns: string, args: string[], count = 3): void {
  const out = topo.exec(ns, 'ping', ['-c', String(count), '-i', '0.2', '-W', '2', ...args], { timeoutMs: 20_000 });
  expect(out).toContain(`${count} packets transmitted, ${count} received`);
}

describe('native addon TUN in a namespace', () => {
  let ns: string;
  let echo: Spawned;

  beforeAll(async () => {
    ns = topo.netns('t');
    echo = topo.spawn(ns, process.execPath, [ECHO, 'kst0', '10.77.0.1/24', 'fd00:77::1/64']);
    await echo.waitFor(/ready kst0/);
  });

  it('answers IPv4 ping through the TUN (reader → JS → tunWrite)', async () => {
    pingOk(ns, ['10.77.0.2']);
    // the synchronous ping blocked our loop: let the helper's output arrive
    await echo.waitFor(/replied 3 batches \d+/, 5_000);
  });

  it('answers IPv6 ping through the TUN', () => {
    pingOk(ns, ['-6', 'fd00:77::2']);
  });

  it('answers a burst (several packets per read batch go out through tunWriteBatch)', () => {
    const out = topo.exec(ns, 'ping', ['-c', '20', '-l', '20', '-i', '0.2', '-W', '3', '-q', '10.77.0.2'], { timeoutMs: 20_000 });
    expect(out).toContain('20 packets transmitted, 20 received');
  });

  it('reports EBADFD through the reader callback when the interface is deleted', async () => {
    topo.exec(ns, 'ip', ['link', 'del', 'dev', 'kst0']);
    await echo.waitFor(/closed EBADFD TUN fd \d+ read failed: File descriptor in bad state \(EBADFD\)/, 5_000);
    expect(await echo.exited()).toBe(0);
  });
});

describe('LinuxTun (TypeScript) in a namespace', () => {
  let ns: string;
  let echo: Spawned;

  beforeAll(async () => {
    ns = topo.netns('u');
    echo = topo.spawn(ns, process.execPath, [TS_ECHO, tree.dir, 'open', 'kst0', '1400', '10.76.0.1/24', 'fd00:76::1/64', '10.78.0.0/24']);
    await echo.waitFor(/ready /);
  });

  it('opens with the requested MTU and configures the link idempotently', () => {
    expect(echo.output()).toMatch(/ready name=kst0 mtu=1400 link-mtu=1400 up=true addrs=10\.76\.0\.1\/24,fd00:76::1\/64/);
  });

  it('answers ping on the connected prefix, a routed prefix and IPv6', () => {
    pingOk(ns, ['10.76.0.2']);
    pingOk(ns, ['10.78.0.5']);
    pingOk(ns, ['-6', 'fd00:76::2']);
  });

  it('delivers a burst that piled up while the loop was busy as one batch', async () => {
    echo.child.kill('SIGUSR2');
    await echo.waitFor(/paused/);
    const out = topo.exec(ns, 'ping', ['-c', '16', '-l', '16', '-W', '5', '-q', '10.76.0.2'], { timeoutMs: 20_000 });
    expect(out).toContain('16 packets transmitted, 16 received');
    await echo.waitFor(/resumed/);
    const maxes = [...echo.output().matchAll(/max (\d+)/g)].map((m) => Number(m[1]));
    expect(Math.max(...maxes)).toBeGreaterThanOrEqual(16);
  });

  it('link.ts works on the namespace from outside (ip -n) and names interface, step and value in errors', async () => {
    const opts = { netns: ns };
    expect(await linkExists('kst0', opts)).toBe(true);
    expect(await linkExists('kstnone', opts)).toBe(false);
    await setLinkMtu('kst0', 1400, opts);
    await addRoute('kst0', 'fd00:78::/64', { ...opts, metric: 10, mtu: 1300 });
    await addRoute('kst0', 'fd00:78::/64', { ...opts, metric: 10, mtu: 1300 }); // replace: idempotent
    expect(topo.exec(ns, 'ip', ['-6', 'route', 'show', 'fd00:78::/64'])).toMatch(/fd00:78::\/64 dev kst0 metric 10 .*mtu 1300/);
    await delRoute('kst0', 'fd00:78::/64', { ...opts, metric: 10 });
    await delRoute('kst0', 'fd00:78::/64', { ...opts, metric: 10 }); // already gone: fine
    expect(topo.exec(ns, 'ip', ['-6', 'route', 'show', 'fd00:78::/64']).trim()).toBe('');
    await addRoute('kst0', '10.79.0.0/24', { ...opts, table: 200 });
    expect(topo.exec(ns, 'ip', ['route', 'show', 'table', '200'])).toContain('10.79.0.0/24 dev kst0');
    await expect(addAddress('kstnone', '10.1.2.3/24', opts)).rejects.toThrow(/^link kstnone: adding address 10\.1\.2\.3\/24 failed: .*(Cannot find device|does not exist)/);
    await expect(setLinkMtu('kst0', 70000, opts)).rejects.toThrow('link kst0: mtu 70000 is not an integer in [68, 65535]');
    await expect(addRoute('kst0', '10.1.2.3/33', opts)).rejects.toThrow('link kst0: route: "10.1.2.3/33" is not a CIDR prefix');
    expect(await linkInfo('kstnone', opts)).toBeUndefined();
  });

  it('reports the deleted interface through onClose with EBADFD', async () => {
    expect(await deleteLink('kst0', { netns: ns })).toBe(true);
    await echo.waitFor(/closed tun kst0: TUN fd \d+ read failed: File descriptor in bad state \(EBADFD\) code=EBADFD/, 5_000);
    expect(await echo.exited()).toBe(0);
    expect(await deleteLink('kst0', { netns: ns })).toBe(false);
  });
});

describe('tunFromFd (WG_TUN_FD path) in a namespace', () => {
  it('takes the kernel name of the fd, sets the MTU and carries traffic; close() reports a clean close', async () => {
    const ns = topo.netns('v');
    const echo = topo.spawn(ns, process.execPath, [TS_ECHO, tree.dir, 'fd', 'kst%d', '1300', '10.75.0.1/24', 'fd00:75::1/64', '10.74.0.0/24']);
    await echo.waitFor(/ready /);
    expect(echo.output()).toMatch(/ready name=kst0 mtu=1300 link-mtu=1300 up=true/);
    pingOk(ns, ['10.75.0.2']);
    echo.child.kill('SIGTERM');
    await echo.waitFor(/closed clean/);
    expect(await echo.exited()).toBe(0);
    // the fd is closed and the TUN was not persistent: the interface is gone
    await eventually(async () => !(await linkExists('kst0', { netns: ns })), 5_000, 100);
  });
});
