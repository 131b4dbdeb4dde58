/**
 * `kubespand status`: the one-screen summary as a pure rendering of the daemon's status and peer
 * rows, and the command end to end against a control socket served by this test.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatStatus, keyTag, reloadCommand, statusCommand, type StatusView } from '../../../src/cli/get.js';
import { startControlServer, type ControlServer } from '../../../src/kubespan/control.js';

const NOW = 1_800_000_000_000;
const PUB = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const PEER2 = 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=';
const PEER3 = 'YJ5ERLmVdJcBG7JbzL/B9RhL0tJ6ALaMhkyJQ0hgNmc=';

function view(over: Partial<StatusView> = {}): StatusView {
  return {
    version: '0.1.0',
    nodeId: 'node-id-1',
    nodeName: 'n1',
    hostname: 'n1.example',
    publicKey: PUB,
    address: 'fd7f:175a:b97c:5602:2c0:ffff:fe00:1',
    interface: 'kubespan',
    listenPort: 51820,
    startedAt: NOW - 3_725_000,
    discovery: { enabled: true, state: 'connected', endpoint: 'https://discovery.talos.dev/', affiliates: 2, publicIp: '203.0.113.7' },
    localEndpoints: [{ address: '10.0.0.1', port: 51820 }, { address: '2001:db8::1', port: 51820 }],
    settings: { mtu: 1420, allowDownPeerBypass: false, harvestExtraEndpoints: true },
    reconcileErrors: 0,
    logLevel: 'info',
    metrics: 'http://localhost:9100/metrics',
    reload: { succeeded: 1, failed: 0, lastSuccessAt: NOW - 90_000, lastAttemptAt: NOW - 90_000 },
    ...over,
  };
}

const PEERS = [
  { id: PEER3, label: 'n3', state: 'down', endpoint: null, lastHandshakeTime: 0, receiveBytes: 0, transmitBytes: 0 },
  { id: PEER2, label: 'n2', state: 'up', endpoint: { address: '10.0.0.2', port: 51820 }, lastHandshakeTime: NOW - 65_000, receiveBytes: 1_234_567, transmitBytes: 999 },
];

describe('formatStatus', () => {
  it('renders identity, device, discovery, endpoints, operations and a peer table on one screen', () => {
    const text = formatStatus(view(), PEERS, NOW);
    expect(text.split('\n')).toEqual([
      'kubespand v0.1.0  node n1 (n1.example)  up 1h2m5s',
      'node id    node-id-1',
      `identity   fd7f:175a:b97c:5602:2c0:ffff:fe00:1  ${PUB}`,
      'device     kubespan  port 51820  mtu 1420  harvest on',
      'discovery  connected  https://discovery.talos.dev/  2 affiliates  public IP 203.0.113.7',
      'endpoints  10.0.0.1:51820, [2001:db8::1]:51820',
      'ops        metrics http://localhost:9100/metrics  log level info  reloaded 1m30s ago',
      'peers      2 (1 up, 1 down, 0 unknown)',
      '',
      'LABEL  PEER             STATE  ENDPOINT        LAST HANDSHAKE  RX      TX',
      `n2     ${keyTag(PEER2)}  up     10.0.0.2:51820  1m5s ago        1.2 MB  999 B`,
      `n3     ${keyTag(PEER3)}  down   -               never           0 B     0 B`,
      '',
    ]);
    expect(text.split('\n').length).toBeLessThan(25);
  });

  it('shows a failed reload with its error, discovery errors, and no peers', () => {
    const text = formatStatus(
      view({
        discovery: { enabled: true, state: 'backoff', endpoint: 'https://d/', affiliates: 0, lastError: 'connection refused' },
        metrics: null,
        reload: { succeeded: 0, failed: 1, lastSuccessAt: 0, lastAttemptAt: NOW - 5000, lastError: 'config reload refused, the running configuration is kept:\n/etc/kubespand/config.yaml: machine.network.kubespan.mtu: must be at least 1280 (got 1000)' },
        reconcileErrors: 2,
      }),
      [],
      NOW,
    );
    expect(text).toContain('discovery  backoff  https://d/  0 affiliates\n           last error: connection refused\n');
    expect(text).toContain('ops        metrics off  log level info  last reload FAILED 5s ago  2 reconcile errors\n');
    expect(text).toContain('           /etc/kubespand/config.yaml: machine.network.kubespan.mtu: must be at least 1280 (got 1000)\n');
    expect(text).toMatch(/peers {6}0 \(0 up, 0 down, 0 unknown\)\n\n$/);
    expect(text).not.toContain('LABEL');
  });

  it('names peers by the fingerprint the logs use', () => {
    expect(keyTag(PEER2)).toBe('peer(HIgo…8ykw)');
    expect(keyTag('not-a-key')).toBe('not-a-key');
  });
});

describe('kubespand status', () => {
  let dir: string;
  let server: ControlServer;
  let reloads = 0;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kso-status-'));
    server = await startControlServer(join(dir, 'control.sock'), {
      get: (kind) => (kind === 'kubespanpeerstatuses' ? PEERS : []),
      status: () => view({ startedAt: Date.now() - 1000 }),
      leave: async () => undefined,
      reload: async () => {
        reloads++;
        if (reloads === 2) throw new Error('config reload refused, the running configuration is kept: x.yaml: kubespand.listenPort changed; a restart is needed to apply it');
        return { changed: ['machine.network.kubespan.mtu'], overridden: ['kubespand.logLevel'] };
      },
    });
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints the summary read over the control socket', async () => {
    const out: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => (out.push(String(chunk)), true));
    try {
      expect(await statusCommand.run(['--socket', server.path])).toBe(0);
    } finally {
      spy.mockRestore();
    }
    expect(out.join('')).toMatch(/^kubespand v0\.1\.0 {2}node n1 \(n1\.example\) {2}up 1s\n/);
    expect(out.join('')).toContain('n2     peer(HIgo');
  });

  it('refuses a bad refresh interval and says when the daemon is not running', async () => {
    const err: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => (err.push(String(chunk)), true));
    try {
      expect(await statusCommand.run(['-w', '-n', '0', '--socket', server.path])).toBe(2);
    } finally {
      spy.mockRestore();
    }
    expect(err.join('')).toContain('-n must be a number of seconds from 0.1 to 3600 (got "0")');
    await expect(statusCommand.run(['--socket', join(dir, 'none.sock')])).rejects.toThrow(`kubespand is not running (no control socket at ${join(dir, 'none.sock')})`);
  });

  it('reload: prints what changed, or the refusal on stderr with exit 1', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const o = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => (out.push(String(chunk)), true));
    const e = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => (err.push(String(chunk)), true));
    try {
      expect(await reloadCommand.run(['--socket', server.path])).toBe(0);
      expect(await reloadCommand.run(['--socket', server.path])).toBe(1);
    } finally {
      o.mockRestore();
      e.mockRestore();
    }
    expect(out.join('')).toBe('reloaded; changed: machine.network.kubespan.mtu\nnot applied (overridden by the command line or environment): kubespand.logLevel\n');
    expect(err.join('')).toContain('kubespand.listenPort changed; a restart is needed to apply it');
  });
});
