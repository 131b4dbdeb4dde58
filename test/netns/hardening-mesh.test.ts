/**
 * Faults, restarts and secrets on a three-node KubeSpan mesh (issue 8, items 5, 6 and 8).
 *
 *     n1 (10.241.1.1)   n2 (10.241.1.2)   n3 (10.241.1.3)         each: kubespand run, logLevel trace,
 *            \               |               /                     metrics on 127.0.0.1:9109 in its namespace
 *             ───────── br1 (hub) 10.241.1.254 ─────────
 *             discovery server :3000 (--state-file), tinyproxy :8888 with BasicAuth; every node reaches
 *             discovery through the proxy (machine.env.http_proxy with a user and password)
 *
 * 5. Discovery outage (20 s here, KSH_OUTAGE_SECONDS to change; bench/soak.ts --outage 120 runs the
 *    two-minute one): established peers keep carrying traffic; a node restarted while discovery is down
 *    rejoins from its on-disk cache of the last known affiliates; when the server returns every
 *    client reconnects (with back-off) and the mesh is whole.
 * 6. SIGKILL in the middle of traffic, then restart: same identity and address, `ip rule`, table 180
 *    and the nftables ruleset reconciled without duplicates, peers up again (time printed).
 * 8. No private key, cluster secret or proxy password in any log line (trace level included), error
 *    message, metric or `get`/`status` output; state files 0600 in a 0700 directory, control socket
 *    0600, UAPI socket 0700 in a 0755 directory; a group/world-readable identity or state file, and a
 *    world-readable config file, are refused with an error naming the file and the fix.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { eventually, sleep, Topology, type Spawned } from '../support/netns.js';
import { REPO_ROOT, uapiSocketPath } from '../support/wg-impl.js';
import { controlRequest } from '../../src/kubespan/control.js';
import { keyFromBase64 } from '../../src/noise/keys.js';

const BIN = join(REPO_ROOT, 'bin', 'kubespand');
const HUB = '10.241.1.254';
const OUTAGE_MS = Number(process.env.KSH_OUTAGE_SECONDS ?? 20) * 1000;
const PROXY_USER = 'kshproxy';
const PROXY_PASSWORD = `pw-${randomBytes(9).toString('base64url')}`;

interface Node {
  name: string;
  ns: string;
  ip: string;
  dir: string;
  stateDir: string;
  config: string;
  socket: string;
  ifname: string;
  proc?: Spawned;
}

interface StatusRow {
  id: string;
  label: string;
  state: string;
}

let topo: Topology;
let hub: string;
let work: string;
let server: Spawned;
const clusterId = randomBytes(32).toString('base64');
const clusterSecret = randomBytes(32).toString('base64');
const nodes: Record<string, Node> = {};
/** Every process started, so the secrets check reads every line any of them ever wrote. */
const allProcs: Spawned[] = [];

function nodeConfig(n: Node): string {
  return [
    'cluster:',
    `  id: ${clusterId}`,
    `  secret: ${clusterSecret}`,
    '  discovery:',
    '    enabled: true',
    '    registries:',
    '      service:',
    `        endpoint: http://${HUB}:3000/`,
    'machine:',
    '  network:',
    '    kubespan:',
    '      enabled: true',
    '  env:',
    `    http_proxy: http://${PROXY_USER}:${PROXY_PASSWORD}@${HUB}:8888`,
    'kubespand:',
    `  nodeName: ${n.name}`,
    `  hostname: ${n.name}.test`,
    `  stateDir: ${n.stateDir}`,
    `  controlSocket: ${n.socket}`,
    `  interface: ${n.ifname}`,
    '  logLevel: trace',
    '  metricsListen: 127.0.0.1:9109',
    '',
  ].join('\n');
}

function startNode(n: Node): Spawned {
  writeFileSync(n.config, nodeConfig(n), { mode: 0o600 });
  n.proc = topo.spawn(n.ns, BIN, ['run', '--config', n.config]);
  allProcs.push(n.proc);
  return n.proc;
}

function startServer(): Spawned {
  const s = topo.spawn(hub, BIN, ['discovery', 'serve', '--listen', `${HUB}:3000`, '--state-file', join(work, 'discovery.state'), '--log-level', 'debug']);
  allProcs.push(s);
  return s;
}

async function status(n: Node): Promise<{ discovery: { state: string; affiliates: number } }> {
  const r = await controlRequest(n.socket, { op: 'status' });
  return r.status as { discovery: { state: string; affiliates: number } };
}

async function statuses(n: Node): Promise<StatusRow[]> {
  return (await controlRequest(n.socket, { op: 'get', kind: 'kubespanpeerstatuses' })).items as StatusRow[];
}

async function allUp(n: Node, count: number, timeoutMs = 60_000): Promise<StatusRow[]> {
  return eventually(async () => {
    const s = await statuses(n).catch(() => []);
    return s.length === count && s.every((p) => p.state === 'up') ? s : false;
  }, timeoutMs, 250);
}

async function identity(n: Node): Promise<{ address: string; publicKey: string }> {
  const row = (await controlRequest(n.socket, { op: 'get', kind: 'kubespanidentities' })).items as { address: string; publicKey: string }[];
  return { address: row[0]!.address, publicKey: row[0]!.publicKey };
}

function ula(id: { address: string }): string {
  return id.address.split('/')[0]!;
}

function pingOnce(ns: string, target: string): boolean {
  try {
    topo.exec(ns, 'ping', ['-n', '-c', '1', '-W', '1', target], { timeoutMs: 5_000 });
    return true;
  } catch {
    return false;
  }
}

/** The host state kubespand manages in a node's namespace, as counts (duplicates would raise them). */
function dataplaneCounts(n: Node): Record<string, number> {
  const lines = (s: string): number => s.split('\n').filter((l) => l.trim() !== '').length;
  return {
    rules4: lines(topo.exec(n.ns, 'ip', ['-4', 'rule', 'show', 'priority', '32500'])),
    rules6: lines(topo.exec(n.ns, 'ip', ['-6', 'rule', 'show', 'priority', '32500'])),
    routes4: lines(topo.exec(n.ns, 'ip', ['-4', 'route', 'show', 'table', '180'])),
    routes6: lines(topo.exec(n.ns, 'ip', ['-6', 'route', 'show', 'table', '180'])),
    nftTables: lines(topo.exec(n.ns, 'nft', ['list', 'tables'])),
    nftRules: lines(topo.exec(n.ns, 'nft', ['list', 'table', 'inet', 'kubespand'])),
    // the TUN (and its address) exists only while the process runs
    addresses: lines(topo.exec(n.ns, 'ip', ['-6', 'addr', 'show', 'scope', 'global']).split('\n').filter((l) => l.includes('inet6')).join('\n')),
  };
}

function pingLoss(p: Spawned): { sent: number; received: number } {
  const m = /(\d+) packets transmitted, (\d+) received/.exec(p.output());
  if (!m) throw new Error(`no ping summary: ${p.output().slice(-300)}`);
  return { sent: Number(m[1]), received: Number(m[2]) };
}

describe('KubeSpan mesh under faults, restarts and secret checks', () => {
  beforeAll(async () => {
    topo = new Topology('ksh');
    work = mkdtempSync(join(tmpdir(), 'ksh-mesh-'));
    topo.onDestroy(() => rmSync(work, { recursive: true, force: true }));
    hub = topo.netns('mhub');
    topo.exec(hub, 'ip', ['link', 'add', 'br1', 'type', 'bridge']);
    topo.exec(hub, 'ip', ['addr', 'add', `${HUB}/24`, 'dev', 'br1']);
    topo.exec(hub, 'ip', ['link', 'set', 'br1', 'up']);
    for (const [i, name] of ['n1', 'n2', 'n3'].entries()) {
      const ns = topo.netns(`m${name}`);
      const ip = `10.241.1.${i + 1}`;
      const { ifB } = topo.veth(ns, [`${ip}/24`], hub, []);
      topo.exec(hub, 'ip', ['link', 'set', ifB, 'master', 'br1']);
      const dir = join(work, name);
      mkdirSync(dir, { recursive: true });
      nodes[name] = { name, ns, ip, dir, stateDir: join(dir, 'state'), config: join(dir, 'node.yaml'), socket: join(dir, 'control.sock'), ifname: `${topo.tag}m${name}`.slice(0, 15) };
    }
    // an authenticating HTTP CONNECT proxy in front of discovery
    const proxyConf = join(work, 'tinyproxy.conf');
    writeFileSync(proxyConf, [`Port 8888`, `Listen ${HUB}`, 'Timeout 600', 'Allow 10.241.1.0/24', 'ConnectPort 3000', `BasicAuth ${PROXY_USER} ${PROXY_PASSWORD}`, 'MaxClients 50', ''].join('\n'), { mode: 0o600 });
    allProcs.push(topo.spawn(hub, 'tinyproxy', ['-d', '-c', proxyConf]));
    server = startServer();
    await server.waitFor(/listening|serving/i, 15_000);
    for (const n of Object.values(nodes)) startNode(n);
    for (const n of Object.values(nodes)) await n.proc!.waitFor(/kubespand is running/, 30_000);
  }, 90_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  it('meshes three nodes whose discovery goes through an authenticating proxy', async () => {
    for (const n of Object.values(nodes)) await allUp(n, 2);
    // the last known affiliates reach the disk once discovery has answered
    for (const n of Object.values(nodes)) await eventually(() => existsSync(join(n.stateDir, 'affiliates-cache.json')), 20_000, 250);
    expect(readFileSync(join(work, 'tinyproxy.conf'), 'utf8')).toContain('BasicAuth');
  }, 90_000);

  let outageStartedAt = 0;
  let outagePing: Spawned;

  it(`keeps established peers carrying traffic while discovery is down (${OUTAGE_MS / 1000} s)`, async () => {
    const n1 = nodes.n1!;
    const target = ula(await identity(nodes.n2!));
    outagePing = topo.spawn(n1.ns, 'ping', ['-n', '-i', '0.2', '-W', '1', target]);
    await sleep(1000);
    await server.stop('SIGTERM');
    outageStartedAt = performance.now();
    await eventually(async () => (await status(n1)).discovery.state !== 'connected', 20_000, 250);
  }, 60_000);

  it('rejoins a node restarted during the outage from its on-disk cache of last known peers', async () => {
    const n3 = nodes.n3!;
    const before = await identity(n3);
    await n3.proc!.stop('SIGTERM', 10_000);
    const started = performance.now();
    startNode(n3);
    await n3.proc!.waitFor(/kubespand is running/, 30_000);
    await allUp(n3, 2, 40_000);
    const rejoinMs = performance.now() - started;
    const s = await status(n3);
    expect(s.discovery.state).not.toBe('connected');
    const affiliates = (await controlRequest(n3.socket, { op: 'get', kind: 'affiliates' })).items as { nodeId: string }[];
    expect(affiliates.length).toBe(2);
    expect(await identity(n3)).toEqual(before);
    expect(pingOnce(n3.ns, ula(await identity(nodes.n1!)))).toBe(true);
    expect(pingOnce(nodes.n2!.ns, ula(before))).toBe(true);
    console.log(`outage: n3 restarted ${Math.round((started - outageStartedAt) / 100) / 10} s into the outage rejoined from its cache in ${Math.round(rejoinMs)} ms`);
  }, 90_000);

  it('reconnects every client with back-off when discovery returns; no traffic was lost meanwhile', async () => {
    const wait = outageStartedAt + OUTAGE_MS - performance.now();
    if (wait > 0) await sleep(wait);
    server = startServer();
    const returnedAt = performance.now();
    await server.waitFor(/listening|serving/i, 15_000);
    const reconnectMs: Record<string, number> = {};
    await Promise.all(
      Object.values(nodes).map(async (n) => {
        await eventually(async () => (await status(n)).discovery.state === 'connected', 90_000, 250);
        reconnectMs[n.name] = Math.round(performance.now() - returnedAt);
      }),
    );
    for (const n of Object.values(nodes)) {
      await eventually(async () => (await status(n)).discovery.affiliates === 2, 30_000, 250);
      await allUp(n, 2, 30_000);
    }
    await outagePing.stop('SIGINT');
    const loss = pingLoss(outagePing);
    console.log(`outage: ${OUTAGE_MS / 1000} s; reconnect after return (ms) ${JSON.stringify(reconnectMs)}; n1→n2 pings during it ${loss.received}/${loss.sent}`);
    // back-off: attempts keep coming (the server was back for at most a bounded time before each client retried)
    for (const ms of Object.values(reconnectMs)) expect(ms).toBeLessThan(60_000);
    expect(loss.sent).toBeGreaterThan(OUTAGE_MS / 1000 * 4);
    expect(loss.received / loss.sent).toBeGreaterThan(0.95);
  }, 180_000);

  it('recovers from SIGKILL in the middle of traffic: same identity and address, no duplicate rules, routes or nftables', async () => {
    const n1 = nodes.n1!;
    const n2 = nodes.n2!;
    const id = await identity(n2);
    const baseline = dataplaneCounts(n2);
    const traffic = topo.spawn(n1.ns, 'ping', ['-n', '-i', '0.05', '-W', '1', ula(id)]);
    await sleep(1000);
    n2.proc!.child.kill('SIGKILL');
    await n2.proc!.exited();
    // what a crash leaves behind: the TUN goes with the process, rules and the nftables table stay
    const leftover = dataplaneCounts(n2);
    expect(leftover.rules4).toBe(baseline.rules4);
    expect(leftover.nftTables).toBe(baseline.nftTables);
    const restartedAt = performance.now();
    startNode(n2);
    await n2.proc!.waitFor(/kubespand is running/, 30_000);
    const runningMs = performance.now() - restartedAt;
    await allUp(n2, 2, 60_000);
    const upMs = performance.now() - restartedAt;
    const firstPingMs = await eventually(() => (pingOnce(n1.ns, ula(id)) ? performance.now() - restartedAt : 0), 60_000, 100);
    await traffic.stop('SIGINT');
    console.log(`crash: running again after ${Math.round(runningMs)} ms, peers up after ${Math.round(upMs)} ms, n1→n2 ping after ${Math.round(firstPingMs)} ms; dataplane ${JSON.stringify(dataplaneCounts(n2))}`);
    expect(await identity(n2)).toEqual(id);
    expect(dataplaneCounts(n2)).toEqual(baseline);
    // and from n2's side too
    expect(pingOnce(n2.ns, ula(await identity(nodes.n3!)))).toBe(true);
  }, 120_000);

  it('keeps secrets out of every log line, error message, metric and get/status output', async () => {
    const secrets: [string, string][] = [
      ['cluster secret', clusterSecret],
      ['cluster secret (hex)', Buffer.from(clusterSecret, 'base64').toString('hex')],
      ['proxy password', PROXY_PASSWORD],
    ];
    for (const n of Object.values(nodes)) {
      const doc = parseYaml(readFileSync(join(n.stateDir, 'kubespan-identity.yaml'), 'utf8')) as { privateKey: string };
      secrets.push([`${n.name} private key`, doc.privateKey], [`${n.name} private key (hex)`, Buffer.from(keyFromBase64(doc.privateKey, 'k')).toString('hex')]);
    }
    const texts: [string, string][] = [];
    for (const [i, p] of allProcs.entries()) texts.push([`process ${i} output`, p.output()]);
    const kinds = ['kubespanidentities', 'kubespanpeerspecs', 'kubespanpeerstatuses', 'kubespanendpoints', 'affiliates'];
    // what `get` prints, in every format, on one node; the same resources straight from every node's control socket
    for (const kind of kinds) {
      for (const o of ['json', 'yaml', 'table']) texts.push([`n1 get ${kind} -o ${o}`, topo.exec(nodes.n1!.ns, BIN, ['get', kind, '-o', o, '--socket', nodes.n1!.socket])]);
    }
    for (const n of Object.values(nodes)) {
      for (const kind of kinds) texts.push([`${n.name} control get ${kind}`, JSON.stringify(await controlRequest(n.socket, { op: 'get', kind }))]);
      texts.push([`${n.name} control status`, JSON.stringify(await controlRequest(n.socket, { op: 'status' }))]);
      texts.push([`${n.name} status`, topo.exec(n.ns, BIN, ['status', '--socket', n.socket])]);
      texts.push([`${n.name} metrics`, topo.exec(n.ns, process.execPath, ['-e', "fetch('http://127.0.0.1:9109/metrics', { signal: AbortSignal.timeout(2000) }).then((r) => r.text()).then((t) => process.stdout.write(t), (e) => { console.error(String(e)); process.exit(1); })"])]);
      texts.push([`${n.name} affiliates cache`, readFileSync(join(n.stateDir, 'affiliates-cache.json'), 'utf8')]);
    }
    // error messages: a config whose secret sits in a mis-indented section, a damaged secret, a broken proxy URL
    const bad = join(work, 'bad.yaml');
    const broken = readFileSync(nodes.n1!.config, 'utf8')
      .replace(`  secret: ${clusterSecret}`, `  - secret: ${clusterSecret}`)
      .replace(`${HUB}:8888`, `${HUB}:99999`);
    writeFileSync(bad, broken, { mode: 0o600 });
    for (const cmd of [['validate', '--config', bad], ['run', '--config', bad]]) {
      const r = topo.spawn(nodes.n1!.ns, BIN, cmd);
      expect(await r.exited()).not.toBe(0);
      texts.push([`kubespand ${cmd[0]} with a broken config`, r.output()]);
    }
    // the logs were really written at every level, trace included
    expect(nodes.n1!.proc!.output()).toMatch(/"level":10,/);
    expect(texts.find(([w]) => w === 'n1 metrics')![1]).toMatch(/kubespan/);
    for (const [where, text] of texts) {
      for (const [what, secret] of secrets) {
        expect(text.includes(secret), `${what} appears in ${where}`).toBe(false);
      }
    }
  }, 120_000);

  it('keeps state files 0600 in a 0700 directory, the control socket 0600 and the UAPI socket 0700 in a 0755 directory', () => {
    for (const n of Object.values(nodes)) {
      expect(statSync(n.stateDir).mode & 0o777).toBe(0o700);
      for (const f of ['kubespan-identity.yaml', 'node-identity.yaml', 'affiliates-cache.json']) {
        expect((statSync(join(n.stateDir, f)).mode & 0o777).toString(8), `${n.name} ${f}`).toBe('600');
      }
      expect((statSync(n.socket).mode & 0o777).toString(8)).toBe('600');
      expect((statSync(uapiSocketPath(n.ifname)).mode & 0o777).toString(8)).toBe('700');
    }
    expect((statSync('/var/run/wireguard').mode & 0o777).toString(8)).toBe('755');
  });

  it('refuses a group/world-readable identity or state file and a world-readable config, naming the file and the fix', async () => {
    const n3 = nodes.n3!;
    await n3.proc!.stop('SIGTERM', 10_000);
    const refusals: string[] = [];
    for (const file of ['kubespan-identity.yaml', 'node-identity.yaml', 'affiliates-cache.json']) {
      const path = join(n3.stateDir, file);
      chmodSync(path, 0o644);
      try {
        const p = startNode(n3);
        const code = await Promise.race([p.exited(), sleep(15_000).then(() => "still running after 15 s")]);
        await p.stop('SIGTERM', 10_000);
        expect(code, `${file} 0644 was accepted`).not.toBe(0);
        expect(p.output()).toContain(path);
        expect(p.output()).toMatch(/chmod 600/);
        refusals.push(p.output().split('\n').find((l) => l.includes(path)) ?? '');
      } finally {
        chmodSync(path, 0o600);
      }
    }
    // the config file holds the cluster secret
    chmodSync(n3.config, 0o644);
    const p = topo.spawn(n3.ns, BIN, ['run', '--config', n3.config]);
    allProcs.push(p);
    expect(await Promise.race([p.exited(), sleep(15_000).then(() => 'still running after 15 s')])).not.toBe(0);
    await p.stop('SIGTERM', 10_000);
    expect(p.output()).toContain(n3.config);
    expect(p.output()).toMatch(/chmod 600/);
    refusals.push(p.output().trim());
    // a wg-style static device: the up config file holds a private key
    const upConfig = join(work, 'up.yaml');
    const upKey = randomBytes(32).toString('base64');
    writeFileSync(upConfig, `interface: ${topo.tag}up\nwireguard:\n  privateKey: ${upKey}\n`, { mode: 0o644 });
    chmodSync(upConfig, 0o644);
    const up = topo.spawn(n3.ns, BIN, ['up', '--config', upConfig]);
    allProcs.push(up);
    expect(await Promise.race([up.exited(), sleep(15_000).then(() => 'still running after 15 s')])).toBe(1);
    expect(up.output()).toContain(upConfig);
    expect(up.output()).toMatch(/chmod 600/);
    expect(up.output()).not.toContain(upKey);
    refusals.push(up.output().trim());
    console.log(`refusals:\n${refusals.join('\n')}`);
    // with the modes fixed it starts again, with the same identity
    chmodSync(n3.config, 0o600);
    startNode(n3);
    await n3.proc!.waitFor(/kubespand is running/, 30_000);
    await allUp(n3, 2, 60_000);
  }, 120_000);
});
