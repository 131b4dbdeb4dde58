/**
 * Observing a running node: a real HTTP scrape of /metrics, a debug-level run's full log output
 * grepped for every secret, and `kubespand status` (once, and live with -w).
 *
 * n1 runs at --log-level debug with metrics on 10.246.0.1:9100 and reaches discovery through an
 * authenticating HTTP CONNECT proxy (tinyproxy with BasicAuth in the hub), so its proxy credentials
 * are in play. A made-up peer with its own preshared key is set through the UAPI (`wg set`), so a PSK
 * also passes through the daemon's debug logging. A ghost affiliate whose endpoint answers nothing
 * gives handshake attempts and failures to count. Secrets looked for, in base64, base64url and hex:
 * n1's private key, the cluster secret, that PSK; and the proxy password, user:password and its
 * Basic-auth encoding.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { eventually, sleep, type Spawned } from '../support/netns.js';
import { genKeyPair, REPO_ROOT, wgSetPeer } from '../support/wg-impl.js';
import { eui64Address, kubespanPrefix } from '../../src/kubespan/identity.js';
import { BIN, HUB_IP, httpGet, nodeIn, OpsMesh, type OpsNode } from './ops-support.js';

let mesh: OpsMesh;
let n1: OpsNode;
let n2: OpsNode;
let proxy: Spawned;
const PROXY_USER = 'kso-operator';
const PROXY_PASSWORD = `pw-${randomBytes(9).toString('base64url')}`;
const injectedPsk = randomBytes(32);
const injectedPeer = genKeyPair().publicKey;
/** A Talos-shaped affiliate whose only endpoint answers nothing: handshakes to it are attempted and fail. */
const ghost = genKeyPair().publicKey;
let secrets: Record<string, string> = {};

function b64variants(name: string, bytes: Uint8Array): Record<string, string> {
  const b = Buffer.from(bytes);
  return { [`${name} (base64)`]: b.toString('base64'), [`${name} (base64url)`]: b.toString('base64url'), [`${name} (hex)`]: b.toString('hex') };
}

function leaks(text: string): string[] {
  return Object.entries(secrets)
    .filter(([, v]) => text.includes(v))
    .map(([k]) => k);
}

function metricValue(body: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of body.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe('operations: metrics, logs and status of a running node', () => {
  beforeAll(async () => {
    mesh = new OpsMesh('kso');
    const conf = join(mesh.work, 'tinyproxy.conf');
    writeFileSync(conf, [`Port 8888`, `Listen ${HUB_IP}`, 'Timeout 60', 'Allow 10.246.0.0/24', `BasicAuth ${PROXY_USER} ${PROXY_PASSWORD}`, 'ConnectPort 3000', 'LogLevel Connect', 'MaxClients 20', ''].join('\n'));
    await mesh.startDiscovery();
    proxy = mesh.topo.spawn(mesh.hub, 'tinyproxy', ['-d', '-c', conf]);
    await eventually(() => /listening|Accepting/i.test(proxy.output()) || mesh.topo.exec(mesh.hub, 'ss', ['-ltn']).includes(`${HUB_IP}:8888`), 10_000);
    n1 = mesh.addNode('n1', 1);
    n2 = mesh.addNode('n2', 2);
    mesh.writeConfig(n1, {
      env: { http_proxy: `http://${PROXY_USER}:${PROXY_PASSWORD}@${HUB_IP}:8888` },
      kubespand: { metricsListen: `${n1.ip}:9100` },
    });
    mesh.writeConfig(n2);
    mesh.start(n1, ['--log-level', 'debug']);
    mesh.start(n2);
    await n1.proc!.waitFor(/kubespand is running/, 30_000);
    await n2.proc!.waitFor(/kubespand is running/, 30_000);
    await mesh.allUp(n1, 1);
    await mesh.allUp(n2, 1);
    const identity = parse(readFileSync(join(n1.stateDir, 'kubespan-identity.yaml'), 'utf8')) as { privateKey: string };
    secrets = {
      ...b64variants('n1 private key', Buffer.from(identity.privateKey, 'base64')),
      ...b64variants('cluster secret', Buffer.from(mesh.clusterSecret, 'base64')),
      ...b64variants('injected PSK', injectedPsk),
      'proxy password': PROXY_PASSWORD,
      'proxy user:password': `${PROXY_USER}:${PROXY_PASSWORD}`,
      'proxy Basic credentials': Buffer.from(`${PROXY_USER}:${PROXY_PASSWORD}`).toString('base64'),
    };
    // the ghost: published to discovery with an endpoint where nobody listens
    const ghostUla = eui64Address(kubespanPrefix(mesh.clusterId), '02:00:00:00:00:99').split('/')[0]!;
    mesh.topo.spawn(mesh.hub, process.execPath, [
      join(REPO_ROOT, 'test', 'support', 'publish-affiliate.mjs'),
      JSON.stringify({
        endpoint: `http://${HUB_IP}:3000/`,
        clusterId: mesh.clusterId,
        clusterSecret: mesh.clusterSecret,
        affiliate: { nodeId: 'ghost', addresses: [ghostUla], hostname: 'ghost.test', nodename: 'ghost', machineType: 'worker', operatingSystem: 'Talos (v1.11.0)', kubespan: { publicKey: ghost, address: ghostUla, additionalAddresses: [], excludeAdvertisedAddresses: [] } },
        endpoints: [{ address: '10.246.0.99', port: 51820 }],
      }),
    ]);
    // a PSK through the UAPI: a made-up peer the daemon will remove again at its next pass
    wgSetPeer(mesh.topo, n1.ns, n1.ifname, { publicKey: injectedPeer, presharedKey: injectedPsk.toString('base64'), allowedIPs: ['10.99.0.1/32'] });
    // traffic over the tunnel, and datagrams the core must drop (too short to be WireGuard)
    const ula2 = mesh.identity(n2).address;
    expect(mesh.pingOk(n1, ula2, 5)).toBe(true);
    nodeIn(mesh.topo, n2.ns, `import dgram from 'node:dgram'; const s = dgram.createSocket('udp4'); for (let i = 0; i < 5; i++) await new Promise((r) => s.send(Buffer.from('junk'), 51820, ${JSON.stringify(n1.ip)}, r)); s.close();`);
  }, 150_000);

  afterAll(async () => {
    await mesh?.destroy();
  });

  it('serves Prometheus metrics over HTTP: peers, traffic, handshakes, drops, discovery, process; no secret', async () => {
    const id2 = mesh.identity(n2);
    const tag2 = `peer(${id2.publicKey.slice(0, 4)}…${id2.publicKey.slice(39, 43)})`;
    const url = `http://${n1.ip}:9100/metrics`;
    const ghostLabels = { peer: `peer(${ghost.slice(0, 4)}…${ghost.slice(39, 43)})`, label: 'ghost' };
    const r = await eventually(() => {
      const got = httpGet(mesh.topo, n1.ns, url);
      const drops = metricValue(got.body, 'kubespand_dropped_packets_total', { reason: 'too-short' }) ?? 0;
      const failures = metricValue(got.body, 'kubespand_peer_handshake_failures_total', ghostLabels) ?? 0;
      return drops >= 5 && failures >= 1 ? got : false;
    }, 30_000, 500);
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const body = r.body;
    const peer = { peer: tag2, label: 'n2' };
    expect(metricValue(body, 'kubespand_build_info', { version: '0.1.0' })).toBe(1);
    expect(metricValue(body, 'kubespand_peers', { state: 'up' })).toBe(1);
    expect(metricValue(body, 'kubespand_peers', { state: 'unknown' })).toBe(1);
    expect(metricValue(body, 'kubespand_peer_state', { ...peer, state: 'up' })).toBe(1);
    expect(metricValue(body, 'kubespand_peer_state', { ...peer, state: 'down' })).toBe(0);
    // five 84-byte echo replies at least, each in a WireGuard transport message
    expect(metricValue(body, 'kubespand_peer_receive_bytes_total', peer)).toBeGreaterThanOrEqual(5 * (84 + 32));
    expect(metricValue(body, 'kubespand_peer_transmit_bytes_total', peer)).toBeGreaterThanOrEqual(5 * (84 + 32));
    const ageSeconds = metricValue(body, 'kubespand_peer_last_handshake_age_seconds', peer)!;
    expect(ageSeconds).toBeGreaterThanOrEqual(0);
    expect(ageSeconds).toBeLessThan(150);
    expect(metricValue(body, 'kubespand_peer_last_handshake_timestamp_seconds', peer)).toBeGreaterThan(Date.now() / 1000 - 150);
    expect(metricValue(body, 'kubespand_peer_handshakes_total', peer)).toBeGreaterThanOrEqual(1);
    // the ghost: initiations sent every 5 s, each left unanswered; never a handshake, so no age
    expect(metricValue(body, 'kubespand_peer_state', { ...ghostLabels, state: 'unknown' })).toBe(1);
    expect(metricValue(body, 'kubespand_peer_handshake_attempts_total', ghostLabels)).toBeGreaterThanOrEqual(2);
    expect(metricValue(body, 'kubespand_peer_handshake_failures_total', ghostLabels)).toBeGreaterThanOrEqual(1);
    expect(metricValue(body, 'kubespand_peer_handshakes_total', ghostLabels)).toBe(0);
    expect(metricValue(body, 'kubespand_peer_last_handshake_age_seconds', ghostLabels)).toBeUndefined();
    // (n2 may show a failure too: an initiation sent before n2 knew n1 from discovery goes unanswered)
    expect(metricValue(body, 'kubespand_peer_handshake_attempts_total', peer)! + metricValue(body, 'kubespand_peer_handshakes_total', peer)!).toBeGreaterThanOrEqual(1);
    expect(metricValue(body, 'kubespand_peer_endpoint_changes_total', peer)).toBeGreaterThanOrEqual(1);
    expect(metricValue(body, 'kubespand_dropped_packets_total', { reason: 'too-short' })).toBeGreaterThanOrEqual(5);
    expect(metricValue(body, 'kubespand_discovery_connection_state', { state: 'connected' })).toBe(1);
    expect(metricValue(body, 'kubespand_discovery_connection_state', { state: 'backoff' })).toBe(0);
    expect(metricValue(body, 'kubespand_discovery_affiliates')).toBe(2);
    expect(metricValue(body, 'kubespand_discovery_client_events_total', { event: 'hellos' })).toBeGreaterThanOrEqual(1);
    expect(metricValue(body, 'kubespand_reconcile_passes_total')).toBeGreaterThanOrEqual(1);
    expect(metricValue(body, 'kubespand_device_datagrams_received_total')).toBeGreaterThan(5);
    expect(metricValue(body, 'kubespand_config_reloads_total', { result: 'success' })).toBe(0);
    expect(metricValue(body, 'process_resident_memory_bytes')).toBeGreaterThan(10_000_000);
    expect(metricValue(body, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(body).toMatch(/^nodejs_heap_size_used_bytes \d+/m);
    expect(leaks(body)).toEqual([]);
    // the one public key that is exported, only as its fingerprint
    expect(body).not.toContain(id2.publicKey);
    const health = httpGet(mesh.topo, n1.ns, `http://${n1.ip}:9100/healthz`);
    expect([health.status, health.body]).toEqual([200, 'ok\n']);
    expect(httpGet(mesh.topo, n1.ns, `http://${n1.ip}:9100/nope`).status).toBe(404);
  }, 60_000);

  it('prints a one-screen status, and keeps it live with -w', async () => {
    const id2 = mesh.identity(n2);
    const text = mesh.ctl(n1, ['status']);
    expect(text).toMatch(/^kubespand v0\.1\.0 {2}node n1 \(n1\.test\) {2}up \d/m);
    expect(text).toMatch(new RegExp(`^discovery {2}connected {2}http://${HUB_IP}:3000/ {2}2 affiliates`, 'm'));
    expect(text).toMatch(/^device {5}kso\d+n1 {2}port 51820 {2}mtu 1420/m);
    expect(text).toMatch(new RegExp(`^ops {8}metrics http://${n1.ip.replace(/\./g, '\\.')}:9100/metrics {2}log level debug`, 'm'));
    expect(text).toMatch(/^peers {6}2 \(1 up, 0 down, 1 unknown\)/m);
    expect(text).toMatch(/^ghost +peer\(.{4}….{4}\) +unknown +10\.246\.0\.99:51820 +never +0 B/m);
    const row = text.split('\n').find((l) => l.startsWith('n2 '));
    expect(row).toBeDefined();
    expect(row).toContain(`peer(${id2.publicKey.slice(0, 4)}…${id2.publicKey.slice(39, 43)})`);
    expect(row).toMatch(new RegExp(`up +${n2.ip.replace(/\./g, '\\.')}:51820 +\\d+s ago +[\\d.]+ [kM]?B +[\\d.]+ [kM]?B`));
    expect(leaks(text)).toEqual([]);

    // -w into a pipe: frames follow one another; traffic in between shows in a later frame
    const watch = mesh.topo.spawn(n1.ns, BIN, ['status', '-w', '-n', '0.5', '--socket', n1.socket]);
    const rxOf = (frame: string): number => {
      const m = /^n2 .* ([\d.]+) (B|kB|MB) +[\d.]+ (?:B|kB|MB)$/m.exec(frame);
      return m ? Number(m[1]) * (m[2] === 'kB' ? 1e3 : m[2] === 'MB' ? 1e6 : 1) : NaN;
    };
    const frames = (): string[] => watch.output().split(/^(?=\d{4}-\d\d-\d\dT[\d:.]+Z {2}every 0\.5s)/m).filter((f) => f.includes('peers '));
    await eventually(() => frames().length >= 1, 10_000);
    const first = rxOf(frames()[0]!);
    expect(first).toBeGreaterThan(0);
    expect(mesh.pingOk(n1, id2.address, 20)).toBe(true);
    await sleep(1200);
    const later = frames();
    await watch.stop('SIGINT');
    expect(later.length).toBeGreaterThanOrEqual(3);
    expect(rxOf(later[later.length - 1]!)).toBeGreaterThan(first);
  }, 60_000);

  it('writes JSON logs at debug level, names peers by fingerprint, and never prints a secret', async () => {
    const id2 = mesh.identity(n2);
    await n1.proc!.stop('SIGTERM', 15_000);
    const out = n1.proc!.output();
    const lines = out.split('\n').filter((l) => l.trim() !== '');
    expect(lines.length).toBeGreaterThan(20);
    const records = lines.map((l) => JSON.parse(l) as { level: number; msg: string; peer?: string });
    expect(records.some((r) => r.level === 20)).toBe(true);
    expect(records.some((r) => r.peer === `peer(${id2.publicKey.slice(0, 4)}…${id2.publicKey.slice(39, 43)})`)).toBe(true);
    // the proxy was really used, and shown with its password masked
    expect(out).toContain(`via proxy http://${PROXY_USER}:***@${HUB_IP}:8888`);
    expect(proxy.output()).toMatch(/CONNECT/);
    // the UAPI created the made-up peer (and set its PSK) while debug logging was on
    expect(records.some((r) => r.msg === 'peer created' && r.peer === `peer(${injectedPeer.slice(0, 4)}…${injectedPeer.slice(39, 43)})`)).toBe(true);
    expect(leaks(out)).toEqual([]);
    expect(out).not.toContain('[redacted]secret');
    // the scrubber (last line of defence) had nothing to catch: no code path logged a secret
    expect(out).not.toMatch(/secrets were scrubbed/);
    expect(records.at(-1)?.msg).toBe('stopped');
  }, 60_000);
});
