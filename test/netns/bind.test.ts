/**
 * UdpBind's SO_MARK in network namespaces (root): the mark must reach the kernel on both sockets and
 * steer routing, since KubeSpan relies on a fwmark rule to keep tunnel traffic out of the tunnel.
 *
 *   netns kst<pid>-a                                   netns kst<pid>-b
 *   ┌─────────────────────────────────────────┐       ┌────────────────────────────────┐
 *   │ bind-probe send (UdpBind)               │ veth  │ bind-probe recv (UdpBind)      │
 *   │ 10.73.0.1/24, fd00:73::1/64 ────────────┼───────┼─ 10.73.0.2/24, fd00:73::2/64   │
 *   │ no route to 10.72.0.1 / fd00:72::1 in   │       │ lo: 10.72.0.1/32, fd00:72::1   │
 *   │ main; table 100 has them, used only by  │       │ listens on :51999              │
 *   │ "fwmark 0x51820 lookup 100"             │       │                                │
 *   └─────────────────────────────────────────┘       └────────────────────────────────┘
 * Unmarked sends fail (ENETUNREACH, counted, not thrown); marked ones arrive, also after a rebind.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topology, eventually } from '../support/netns.js';
import { REPO_ROOT, transpileForChild, type TranspiledTree } from '../support/ts-child.js';

const PROBE = join(REPO_ROOT, 'test', 'support', 'bind-probe.mjs');
const MARK = 0x51820;
const PORT = '51999';

let topo: Topology;
let tree: TranspiledTree;
let nsA: string;
let nsB: string;

beforeAll(async () => {
  topo = new Topology('kst'); // throws a clear error when not root
  tree = await transpileForChild(['src/bind/udp-bind.ts', 'src/bind/bind.ts', 'src/native.ts'], 'kst-bind');
  nsA = topo.netns('a');
  nsB = topo.netns('b');
  topo.veth(nsA, ['10.73.0.1/24', 'fd00:73::1/64'], nsB, ['10.73.0.2/24', 'fd00:73::2/64']);
  topo.exec(nsB, 'ip', ['addr', 'add', '10.72.0.1/32', 'dev', 'lo']);
  topo.exec(nsB, 'ip', ['-6', 'addr', 'add', 'fd00:72::1/128', 'dev', 'lo']);
  topo.exec(nsA, 'ip', ['route', 'add', '10.72.0.1/32', 'via', '10.73.0.2', 'table', '100']);
  topo.exec(nsA, 'ip', ['-6', 'route', 'add', 'fd00:72::1/128', 'via', 'fd00:73::2', 'table', '100']);
  topo.exec(nsA, 'ip', ['rule', 'add', 'fwmark', String(MARK), 'lookup', '100', 'priority', '100']);
  topo.exec(nsA, 'ip', ['-6', 'rule', 'add', 'fwmark', String(MARK), 'lookup', '100', 'priority', '100']);
  // wait until the v6 link-local/global addresses are usable (no DAD failures on a fresh veth)
  await eventually(() => !topo.exec(nsA, 'ip', ['-6', 'addr', 'show', 'tentative']).trim(), 10_000, 100);
  await eventually(() => !topo.exec(nsB, 'ip', ['-6', 'addr', 'show', 'tentative']).trim(), 10_000, 100);
});

afterAll(async () => {
  await topo?.destroy();
  tree?.cleanup();
});

describe('UdpBind SO_MARK steers routing', () => {
  it('unmarked sends fail and are counted; marked sends arrive on v4 and v6, also after a rebind', async () => {
    const recv = topo.spawn(nsB, process.execPath, [PROBE, tree.dir, 'recv', PORT]);
    await recv.waitFor(/listening 51999 families \{"v4":true,"v6":true\}/);
    const send = topo.spawn(nsA, process.execPath, [PROBE, tree.dir, 'send', String(MARK), '10.72.0.1', 'fd00:72::1', PORT]);
    await send.waitFor(/done sent/, 15_000);
    const out = send.output();
    expect(out).toContain('unmarked errors 2 marks v4=0x0 v6=0x0'); // ENETUNREACH on both families
    expect(out).toContain('after setMark marks v4=0x51820 v6=0x51820');
    expect(out).toContain('rebound true marks v4=0x51820 v6=0x51820');
    expect(out).toContain('done sent 4 errors 2');
    await recv.waitFor(/got rebound-v6/, 5_000);
    await recv.waitFor(/got rebound-v4/, 5_000);
    const got = recv.output();
    expect(got).toMatch(/got marked-v4 from 10\.73\.0\.1:\d+/);
    expect(got).toMatch(/got marked-v6 from \[fd00:73::1\]:\d+/);
    expect(got).not.toContain('unmarked');
  });

  it('without CAP_NET_ADMIN setMark fails with a clear EPERM error', async () => {
    const probe = topo.spawn(nsA, 'setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', process.execPath, PROBE, tree.dir, 'eperm', String(MARK)]);
    await probe.waitFor(/setMark (failed|succeeded)/, 10_000);
    expect(probe.output()).toMatch(
      /setMark failed: udp bind port \d+: setting fwmark 0x51820: setSocketMark fd \d+: setsockopt SO_MARK=0x51820 failed: Operation not permitted \(EPERM\)/,
    );
  });
});
