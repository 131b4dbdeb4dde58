/**
 * `kubespand demo [--nodes N] [--once]`: the main job on an embedded default. Builds an N-node KubeSpan
 * mesh (default 3) in network namespaces on this machine — two bridges joined by a router namespace
 * that also runs the built-in discovery server — starts `kubespand run` on every node, prints the peer
 * statuses once every peer is up, pings across (KubeSpan ULA and node addresses, the latter steered
 * through the tunnel), and then keeps the mesh running until Ctrl-C, when it removes everything.
 * `--once` exits after the pings (for scripts and CI). Needs root.
 *
 *      node1   node2   …                     node3  …
 *        \       /                             \
 *   br1 10.240.1.0/24 ── router (discovery :3000) ── br2 10.240.2.0/24
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { eventually, Topology, type Spawned } from '../netns/topology.js';
import { meshNodeConfig } from '../netns/mesh-config.js';
import type { Command } from './main.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'kubespand');

interface DemoNode {
  name: string;
  ns: string;
  ip: string;
  config: string;
  socket: string;
  proc?: Spawned;
}

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

export const demoCommand: Command = {
  summary: 'run a KubeSpan mesh in network namespaces on this machine',
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: { nodes: { type: 'string', default: '3' }, once: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true });
    if (values.help) {
      say('usage: kubespand demo [--nodes N] [--once]   (as root)');
      return 0;
    }
    const count = Number(values.nodes);
    if (!Number.isInteger(count) || count < 2 || count > 20) {
      process.stderr.write(`kubespand demo: --nodes must be an integer from 2 to 20 (got "${values.nodes}")\n`);
      return 2;
    }
    const topo = new Topology('ksdemo');
    const work = mkdtempSync(join(tmpdir(), 'kubespand-demo-'));
    let cleaning: Promise<void> | null = null;
    const cleanup = (): Promise<void> =>
      (cleaning ??= (async () => {
        say('\ncleaning up: stopping nodes, removing namespaces');
        await topo.destroy();
        rmSync(work, { recursive: true, force: true });
      })());
    let interrupted = false;
    const onSignal = (): void => {
      interrupted = true;
      void cleanup().then(() => process.exit(0));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      say(`building ${count} nodes in network namespaces (prefix ${topo.tag})`);
      const hub = topo.netns('router');
      topo.exec(hub, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
      for (const [br, addr] of [['br1', '10.240.1.254/24'], ['br2', '10.240.2.254/24']] as const) {
        topo.exec(hub, 'ip', ['link', 'add', br, 'type', 'bridge']);
        topo.exec(hub, 'ip', ['addr', 'add', addr, 'dev', br]);
        topo.exec(hub, 'ip', ['link', 'set', br, 'up']);
      }
      const clusterId = randomBytes(32).toString('base64');
      const clusterSecret = randomBytes(32).toString('base64');
      const nodes: DemoNode[] = [];
      for (let i = 1; i <= count; i++) {
        const subnet = i <= Math.ceil(count / 2) ? 1 : 2;
        const ip = `10.240.${subnet}.${i}`;
        const name = `node${i}`;
        const ns = topo.netns(name);
        const { ifA, ifB } = topo.veth(ns, [`${ip}/24`], hub, []);
        topo.exec(hub, 'ip', ['link', 'set', ifB, 'master', `br${subnet}`]);
        topo.exec(ns, 'ip', ['route', 'add', 'default', 'via', `10.240.${subnet}.254`]);
        const dir = join(work, name);
        const config = join(work, `${name}.yaml`);
        const socket = join(dir, 'control.sock');
        writeFileSync(
          config,
          meshNodeConfig({
            clusterId,
            clusterSecret,
            discoveryEndpoint: 'http://10.240.1.254:3000/',
            nodeName: name,
            stateDir: `${dir}/state`,
            controlSocket: socket,
            interface: `ks${process.pid % 100000}k${i}`,
            identityLink: ifA,
          }),
          { mode: 0o600 },
        );
        nodes.push({ name, ns, ip, config, socket });
      }
      const server = topo.spawn(hub, BIN, ['discovery', 'serve', '--listen', '0.0.0.0:3000']);
      await server.waitFor(/listening/i, 20_000);
      say('discovery server listening on 10.240.1.254:3000 (router namespace)');
      for (const n of nodes) n.proc = topo.spawn(n.ns, BIN, ['run', '--config', n.config]);
      for (const n of nodes) await n.proc!.waitFor(/kubespand is running/, 30_000);
      say(`${count} kubespand nodes running; waiting for every peer to come up…`);
      const started = Date.now();
      for (const n of nodes) {
        await eventually(() => {
          const rows = JSON.parse(topo.exec(n.ns, BIN, ['get', 'kubespanpeerstatuses', '-o', 'json', '--socket', n.socket])) as { state: string }[];
          return rows.length === count - 1 && rows.every((r) => r.state === 'up');
        }, 120_000, 500);
      }
      say(`all ${count * (count - 1)} peer links up after ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
      for (const n of nodes) {
        say(`── ${n.name} (${n.ip}) ──`);
        say(topo.exec(n.ns, BIN, ['get', 'kubespanpeerstatuses', '--socket', n.socket]).trimEnd());
      }
      say('');
      const first = nodes[0]!;
      let failures = 0;
      for (const target of nodes.slice(1)) {
        const id = (JSON.parse(topo.exec(target.ns, BIN, ['get', 'kubespanidentities', '-o', 'json', '--socket', target.socket])) as { address: string }[])[0]!;
        for (const addr of [id.address.split('/')[0]!, target.ip]) {
          try {
            const out = topo.exec(first.ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', addr], { timeoutMs: 20_000 });
            const rtt = /= [\d.]+\/([\d.]+)\//.exec(out)?.[1];
            say(`ping ${first.name} → ${target.name} ${addr.padEnd(40)} ok (avg ${rtt} ms, through the tunnel)`);
          } catch {
            failures++;
            say(`ping ${first.name} → ${target.name} ${addr.padEnd(40)} FAILED`);
          }
        }
      }
      if (values.once || interrupted) {
        await cleanup();
        return failures === 0 ? 0 : 1;
      }
      say(`\nthe mesh keeps running. Try:  ip netns exec ${first.ns} ${BIN} status --socket ${first.socket}`);
      say('press Ctrl-C to stop and clean up');
      await new Promise(() => undefined);
      return 0;
    } catch (err) {
      process.stderr.write(`kubespand demo: ${err instanceof Error ? err.message : String(err)}\n`);
      await cleanup();
      return 1;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
};
