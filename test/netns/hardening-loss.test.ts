/**
 * Loss and disorder (issue 8, item 4) between two kubespand devices.
 *
 * `tc qdisc add dev … root netem …` is what the issue asks for, but this kernel has no netem
 * (CONFIG_NET_SCH_NETEM is not set; `tc` answers "Specified qdisc kind is unknown"); the first test
 * below checks and records that. The impairment is therefore applied by a UDP relay on the path
 * (bench/soak/impair-relay.ts: seeded loss, duplication, delay with jitter, reordering), which sees
 * every WireGuard datagram exactly as netem on the veth would:
 *
 *   ns a1: kubespand 10.233.0.1 ── veth ── 10.233.0.254:51900 [relay, ns m1] 10.233.1.254:51901 ── veth ── 10.233.1.2:51832 kubespand (ns b1)
 *          tunnel 10.234.0.1/24                                                                           tunnel 10.234.0.2/24
 *
 * Shows: a TCP transfer a→b through the tunnel arrives with the sender's SHA-256 under 10 % loss,
 * 5 % reordering, 2 % duplication and 2±1 ms delay on the data direction (100 MB by default; set
 * KSH_LOSS_BYTES to change it); the handshake completes with 30 % loss in both directions, and data
 * then gets through with a matching hash too. The numbers (time, rate, relay counters) are printed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { eventually, Topology, type Spawned } from '../support/netns.js';
import { genKeyPair, ifName, ipUp, REPO_ROOT, startWg, wgDump, wgSet, type WgKeyPair } from '../support/wg-impl.js';

const RELAY = join(REPO_ROOT, 'dist', 'bench', 'soak', 'impair-relay.js');
const TCP_SHA = join(REPO_ROOT, 'dist', 'bench', 'soak', 'tcp-sha.js');
const BYTES = Number(process.env.KSH_LOSS_BYTES ?? 100_000_000);
/** TCP under 30 % loss both ways backs off hard: a small transfer shows integrity, not speed. */
const LOSSY_BYTES = Number(process.env.KSH_LOSSY_BYTES ?? 200_000);
const HANDSHAKES = 3;

let topo: Topology;
let nsA: string;
let nsB: string;
let nsM: string;
let ifA: string;
let ifB: string;
const keys: Record<'a' | 'b', WgKeyPair> = {} as never;
let relay: Spawned | null = null;

function startRelay(ab: string, ba: string, seed: number): Spawned {
  const r = topo.spawn(nsM, process.execPath, [RELAY, '--listen', '10.233.0.254:51900', '--peer', '10.233.1.2:51832', '--via', '10.233.1.254:51901', '--ab', ab, '--ba', ba, '--seed', String(seed)]);
  return r;
}

async function stopRelay(): Promise<Record<string, unknown>> {
  if (!relay) return {};
  const r = relay;
  relay = null;
  await r.stop('SIGTERM');
  const line = r.output().trim().split('\n').pop() ?? '{}';
  return JSON.parse(line) as Record<string, unknown>;
}

/** (Re)configures both devices so a knows only the relay and b learns a's address from the handshake. */
function meet(): void {
  for (const [ns, ifn] of [[nsA, ifA], [nsB, ifB]] as const) {
    for (const p of wgDump(topo, ns, ifn).peers) topo.exec(ns, 'wg', ['set', ifn, 'peer', p.publicKey, 'remove']);
  }
  wgSet(topo, nsA, ifA, { privateKey: keys.a.privateKey, listenPort: 51831, peers: [{ publicKey: keys.b.publicKey, endpoint: '10.233.0.254:51900', allowedIPs: ['10.234.0.2/32'] }] });
  wgSet(topo, nsB, ifB, { privateKey: keys.b.privateKey, listenPort: 51832, peers: [{ publicKey: keys.a.publicKey, allowedIPs: ['10.234.0.1/32'] }] });
}

async function transfer(bytes: number, port: number, timeoutMs: number): Promise<{ sent: { sha256: string; ms: number; mbitPerS: number }; received: { sha256: string; bytes: number } }> {
  const server = topo.spawn(nsB, process.execPath, [TCP_SHA, 'serve', '--listen', `10.234.0.2:${port}`]);
  await server.waitFor(/listening on/, 10_000);
  const sender = topo.spawn(nsA, process.execPath, [TCP_SHA, 'send', '--connect', `10.234.0.2:${port}`, '--bytes', String(bytes), '--seed', String(port)]);
  const timer = setTimeout(() => void sender.stop('SIGKILL'), timeoutMs);
  const code = await sender.exited();
  clearTimeout(timer);
  await server.exited();
  if (code !== 0) throw new Error(`transfer of ${bytes} bytes did not finish within ${timeoutMs} ms (exit ${code}): ${sender.output().slice(-500)} / ${server.output().slice(-500)}`);
  const last = <T>(s: Spawned): T => JSON.parse(s.output().trim().split('\n').pop()!) as T;
  return { sent: last(sender), received: last(server) };
}

describe('loss, duplication, reordering and delay between two kubespand devices', () => {
  beforeAll(async () => {
    topo = new Topology('ksh');
    nsA = topo.netns('la');
    nsB = topo.netns('lb');
    nsM = topo.netns('lm');
    topo.veth(nsA, ['10.233.0.1/24'], nsM, ['10.233.0.254/24']);
    topo.veth(nsM, ['10.233.1.254/24'], nsB, ['10.233.1.2/24']);
    ifA = ifName(topo, 'LA', 1);
    ifB = ifName(topo, 'LB', 1);
    keys.a = genKeyPair();
    keys.b = genKeyPair();
    await Promise.all([startWg(topo, nsA, ifA, 'kubespand'), startWg(topo, nsB, ifB, 'kubespand')]);
    ipUp(topo, nsA, ifA, ['10.234.0.1/24']);
    ipUp(topo, nsB, ifB, ['10.234.0.2/24']);
  }, 60_000);

  afterAll(async () => {
    await stopRelay().catch(() => undefined);
    await topo?.destroy();
  });

  it('records that this kernel has no netem (so the relay stands in for it)', () => {
    const ns = topo.netns('lnetem');
    topo.exec(ns, 'ip', ['link', 'add', 'kshn0', 'type', 'veth', 'peer', 'name', 'kshn1']);
    let error = '';
    try {
      execFileSync('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', 'kshn0', 'root', 'netem', 'loss', '10%'], { stdio: 'pipe' });
    } catch (err) {
      error = String((err as { stderr?: Buffer }).stderr ?? err);
    }
    console.log(`tc netem: ${error.trim() || 'available'}`);
    // if a future kernel has netem, this test says so instead of silently using the relay
    expect(error).toMatch(/qdisc kind is unknown|No such file|not supported/i);
  });

  it(`carries ${BYTES / 1e6} MB a→b intact under 10 % loss, 5 % reordering, 2 % duplication, 2±1 ms delay`, async () => {
    relay = startRelay('loss=10,reorder=5,dup=2,delay=2,jitter=1,gap=8', 'delay=2,jitter=1', 1);
    await relay.waitFor(/relaying/, 10_000);
    meet();
    const r = await transfer(BYTES, 5201, 150_000);
    const counters = await stopRelay();
    console.log(`loss 10%: ${JSON.stringify({ bytes: BYTES, ms: r.sent.ms, mbitPerS: r.sent.mbitPerS, relay: counters })}`);
    expect(r.received.bytes).toBe(BYTES);
    expect(r.received.sha256).toBe(r.sent.sha256);
    const ab = (counters as { counters: { ab: { in: number; lost: number; duplicated: number; reordered: number } } }).counters.ab;
    // the impairment really happened, at about the asked rates
    expect(ab.lost / ab.in).toBeGreaterThan(0.08);
    expect(ab.duplicated).toBeGreaterThan(0);
    expect(ab.reordered).toBeGreaterThan(0);
  }, 180_000);

  it('completes the handshake under 30 % loss both ways, then carries data intact', async () => {
    relay = startRelay('loss=30,delay=1', 'loss=30,delay=1', 2);
    await relay.waitFor(/relaying/, 10_000);
    // three fresh handshakes: each needs an initiation and a response through (0.7 × 0.7), retried every 5 s
    const handshakesMs: number[] = [];
    for (let i = 0; i < HANDSHAKES; i++) {
      meet();
      const started = performance.now();
      // a's data starts the handshake; keep offering packets until one makes it
      const pinger = topo.spawn(nsA, 'ping', ['-n', '-i', '0.5', '-W', '1', '10.234.0.2']);
      handshakesMs.push(
        await eventually(() => {
          const p = wgDump(topo, nsA, ifA).peers[0];
          return p && p.latestHandshake > 0 ? Math.round(performance.now() - started) : 0;
        }, 60_000, 100),
      );
      await eventually(() => /bytes from 10\.234\.0\.2/.test(pinger.output()), 30_000, 200);
      await pinger.stop('SIGINT');
    }
    const r = await transfer(LOSSY_BYTES, 5202, 120_000);
    const counters = await stopRelay();
    console.log(`loss 30%: ${JSON.stringify({ handshakesMs, bytes: LOSSY_BYTES, transferMs: r.sent.ms, relay: counters })}`);
    expect(r.received.sha256).toBe(r.sent.sha256);
    expect(r.received.bytes).toBe(LOSSY_BYTES);
    const c = (counters as { counters: Record<'ab' | 'ba', { in: number; lost: number }> }).counters;
    expect(c.ab.lost / c.ab.in).toBeGreaterThan(0.2);
    expect(c.ba.lost / c.ba.in).toBeGreaterThan(0.2);
  }, 180_000);
});
