/**
 * The metrics registry over a hand-made snapshot (names, labels, values, what is left out), and the
 * HTTP listener on 127.0.0.1 (paths, methods, content type, a taken port).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { createMetricsRegistry, type MetricsSnapshot, type PeerMetrics } from '../../../src/metrics/metrics.js';
import { formatListen, startMetricsServer, type MetricsServer } from '../../../src/metrics/server.js';

const KEY_A = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const KEY_B = 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=';
const NOW = 1_800_000_000_000;

function peer(over: Partial<PeerMetrics>): PeerMetrics {
  return {
    publicKey: KEY_A,
    label: 'n2',
    state: 'up',
    receiveBytes: 1000,
    transmitBytes: 2000,
    lastHandshakeTime: NOW - 42_000,
    endpointChanges: 1,
    handshakeAttempts: 3,
    handshakeFailures: 2,
    handshakes: 1,
    ...over,
  };
}

function snapshot(over: Partial<MetricsSnapshot> = {}): MetricsSnapshot {
  return {
    peers: [peer({}), peer({ publicKey: KEY_B, label: 'n3', state: 'down', lastHandshakeTime: 0, receiveBytes: 0, transmitBytes: 0, handshakes: 0 })],
    drops: new Map([
      ['too-short', 5],
      ['decrypt-failed', 1],
    ]),
    device: { datagramsIn: 10, datagramsOut: 11, packetsFromTun: 12, packetsToTun: 13, internalErrors: 0 },
    discovery: { state: 'connected', affiliates: 2, events: { hellos: 1, watchErrors: 0 } },
    reconcile: { passes: 7, errors: 1, lastSuccessAt: NOW - 1000 },
    reloads: { succeeded: 2, failed: 1, lastSuccessAt: NOW - 5000 },
    ...over,
  };
}

/** Value of one series, matching every given label; undefined when absent. */
function value(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

const TAG_A = `peer(${KEY_A.slice(0, 4)}…${KEY_A.slice(39, 43)})`;
const TAG_B = `peer(${KEY_B.slice(0, 4)}…${KEY_B.slice(39, 43)})`;

describe('metrics registry', () => {
  it('exports every peer, device, discovery, reconcile and reload series from one snapshot', async () => {
    let calls = 0;
    const reg = createMetricsRegistry(() => (calls++, snapshot()), { version: '9.9.9', now: () => NOW, processMetrics: false });
    const text = await reg.metrics();
    expect(calls).toBe(1);
    const a = { peer: TAG_A, label: 'n2' };
    const b = { peer: TAG_B, label: 'n3' };
    expect(value(text, 'kubespand_build_info', { version: '9.9.9', node_version: process.version })).toBe(1);
    expect(value(text, 'kubespand_peers', { state: 'up' })).toBe(1);
    expect(value(text, 'kubespand_peers', { state: 'down' })).toBe(1);
    expect(value(text, 'kubespand_peers', { state: 'unknown' })).toBe(0);
    expect(value(text, 'kubespand_peer_state', { ...a, state: 'up' })).toBe(1);
    expect(value(text, 'kubespand_peer_state', { ...a, state: 'down' })).toBe(0);
    expect(value(text, 'kubespand_peer_state', { ...b, state: 'down' })).toBe(1);
    expect(value(text, 'kubespand_peer_receive_bytes_total', a)).toBe(1000);
    expect(value(text, 'kubespand_peer_transmit_bytes_total', a)).toBe(2000);
    expect(value(text, 'kubespand_peer_last_handshake_age_seconds', a)).toBe(42);
    expect(value(text, 'kubespand_peer_last_handshake_timestamp_seconds', a)).toBe((NOW - 42_000) / 1000);
    // a peer that never completed a handshake has a 0 timestamp and no age
    expect(value(text, 'kubespand_peer_last_handshake_timestamp_seconds', b)).toBe(0);
    expect(value(text, 'kubespand_peer_last_handshake_age_seconds', b)).toBeUndefined();
    expect(value(text, 'kubespand_peer_endpoint_changes_total', a)).toBe(1);
    expect(value(text, 'kubespand_peer_handshake_attempts_total', a)).toBe(3);
    expect(value(text, 'kubespand_peer_handshake_failures_total', a)).toBe(2);
    expect(value(text, 'kubespand_peer_handshakes_total', a)).toBe(1);
    expect(value(text, 'kubespand_dropped_packets_total', { reason: 'too-short' })).toBe(5);
    expect(value(text, 'kubespand_dropped_packets_total', { reason: 'decrypt-failed' })).toBe(1);
    expect(value(text, 'kubespand_device_datagrams_received_total')).toBe(10);
    expect(value(text, 'kubespand_device_datagrams_sent_total')).toBe(11);
    expect(value(text, 'kubespand_device_tun_packets_read_total')).toBe(12);
    expect(value(text, 'kubespand_device_tun_packets_written_total')).toBe(13);
    expect(value(text, 'kubespand_device_internal_errors_total')).toBe(0);
    expect(value(text, 'kubespand_discovery_connection_state', { state: 'connected' })).toBe(1);
    expect(value(text, 'kubespand_discovery_connection_state', { state: 'disabled' })).toBe(0);
    expect(value(text, 'kubespand_discovery_affiliates')).toBe(2);
    expect(value(text, 'kubespand_discovery_client_events_total', { event: 'hellos' })).toBe(1);
    expect(value(text, 'kubespand_reconcile_passes_total')).toBe(7);
    expect(value(text, 'kubespand_reconcile_errors_total')).toBe(1);
    expect(value(text, 'kubespand_reconcile_last_success_timestamp_seconds')).toBe((NOW - 1000) / 1000);
    expect(value(text, 'kubespand_config_reloads_total', { result: 'success' })).toBe(2);
    expect(value(text, 'kubespand_config_reloads_total', { result: 'failure' })).toBe(1);
    expect(value(text, 'kubespand_config_last_reload_success_timestamp_seconds')).toBe((NOW - 5000) / 1000);
    // counters are typed as counters, and the full public keys are not exported
    expect(text).toContain('# TYPE kubespand_peer_receive_bytes_total counter');
    expect(text).toContain('# TYPE kubespand_peer_state gauge');
    expect(text).not.toContain(KEY_A);
    expect(text).not.toContain(KEY_B);
    expect(text).not.toMatch(/^process_/m);
  });

  it('drops the series of a peer that is gone, and follows the snapshot on every scrape', async () => {
    let snap = snapshot();
    const reg = createMetricsRegistry(() => snap, { version: '1', now: () => NOW, processMetrics: false });
    expect(value(await reg.metrics(), 'kubespand_peer_receive_bytes_total', { peer: TAG_B })).toBe(0);
    snap = snapshot({ peers: [peer({ receiveBytes: 5000 })], discovery: { state: 'backoff', affiliates: 0, events: {} } });
    const text = await reg.metrics();
    expect(value(text, 'kubespand_peer_receive_bytes_total', { peer: TAG_B })).toBeUndefined();
    expect(value(text, 'kubespand_peer_state', { peer: TAG_B, state: 'down' })).toBeUndefined();
    expect(value(text, 'kubespand_peer_receive_bytes_total', { peer: TAG_A })).toBe(5000);
    expect(value(text, 'kubespand_discovery_connection_state', { state: 'backoff' })).toBe(1);
    expect(value(text, 'kubespand_discovery_connection_state', { state: 'connected' })).toBe(0);
  });

  it('adds the process and Node.js metrics by default', async () => {
    const reg = createMetricsRegistry(() => snapshot(), { version: '1' });
    const text = await reg.metrics();
    expect(value(text, 'process_resident_memory_bytes')).toBeGreaterThan(1_000_000);
    expect(text).toMatch(/^nodejs_heap_size_total_bytes \d+/m);
    expect(text).toMatch(/^process_cpu_seconds_total \d/m);
  });
});

describe('metrics listener', () => {
  let server: MetricsServer | null = null;
  afterEach(async () => {
    await server?.close();
    server = null;
  });

  it('serves /metrics and /healthz over HTTP, 404 elsewhere, 405 for other methods', async () => {
    const reg = createMetricsRegistry(() => snapshot(), { version: '1', processMetrics: false });
    server = await startMetricsServer({ host: '127.0.0.1', port: 0 }, reg);
    expect(server.url).toBe(`http://127.0.0.1:${server.address.port}/metrics`);
    const r = await fetch(server.url);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(value(await r.text(), 'kubespand_peers', { state: 'up' })).toBe(1);
    const base = `http://127.0.0.1:${server.address.port}`;
    const h = await fetch(`${base}/healthz`);
    expect([h.status, await h.text()]).toEqual([200, 'ok\n']);
    expect((await fetch(`${base}/secret`)).status).toBe(404);
    const post = await fetch(server.url, { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    const head = await fetch(server.url, { method: 'HEAD' });
    expect(head.status).toBe(200);
  });

  it('names the setting and the reason when the address is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const reg = createMetricsRegistry(() => snapshot(), { version: '1', processMetrics: false });
      await expect(startMetricsServer({ host: '127.0.0.1', port }, reg)).rejects.toThrow(`kubespand.metricsListen 127.0.0.1:${port}: cannot listen: the address is in use`);
    } finally {
      blocker.close();
    }
  });

  it('formats listen addresses as the config writes them', () => {
    expect(formatListen({ host: '', port: 9100 })).toBe(':9100');
    expect(formatListen({ host: '::1', port: 9100 })).toBe('[::1]:9100');
    expect(formatListen({ host: '10.0.0.1', port: 1 })).toBe('10.0.0.1:1');
  });
});
