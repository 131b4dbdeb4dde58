import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { formatAffiliates, parseDuration, runDiscovery } from '../../../src/cli/discovery.js';
import { cleanup, eventually, localAffiliate, SECRET, testClient } from './support.js';

const stoppable: Array<{ stop(): Promise<void> } | undefined> = [];
const dirs: string[] = [];
afterEach(async () => {
  await cleanup(...stoppable.splice(0));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function io(signal: AbortSignal) {
  const out: string[] = [];
  const err: string[] = [];
  const logs: string[] = [];
  const logDestination = new Writable({
    write(chunk, _enc, cb) {
      logs.push(String(chunk));
      cb();
    },
  });
  let listening!: (p: { port: number; metricsPort?: number }) => void;
  const ports = new Promise<{ port: number; metricsPort?: number }>((r) => (listening = r));
  return {
    out,
    err,
    logs,
    ports,
    io: { stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t), signal, logDestination, onListening: listening },
  };
}

describe('kubespand discovery serve / watch', () => {
  it('serve answers real clients, exposes /metrics, writes the state file on shutdown; watch prints decrypted affiliates without the secret', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ksd-cli-'));
    dirs.push(dir);
    const stateFile = join(dir, 'state.binpb');
    const stopServe = new AbortController();
    const s = io(stopServe.signal);
    const serving = runDiscovery(
      ['serve', '--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', '--state-file', stateFile, '--gc-interval', '1s', '--log-level', 'debug'],
      s.io,
    );
    const { port, metricsPort } = await s.ports;
    const a = testClient(port, 'node-a');
    const b = testClient(port, 'node-b');
    stoppable.push(a, b);
    a.setLocalAffiliate(localAffiliate('node-a'));
    a.setLocalEndpoints([{ address: '192.0.2.10', port: 51820 }]);
    b.setLocalAffiliate(localAffiliate('node-b', { kubespan: undefined }));
    a.start();
    b.start();
    await eventually(() => expect(a.affiliates()).toHaveLength(1));

    // watch --once: prints the current view and exits
    const w = io(new AbortController().signal);
    const args = ['watch', '--endpoint', `http://127.0.0.1:${port}`, '--cluster-id', 'cluster-1', '--cluster-secret', SECRET, '--once'];
    expect(await runDiscovery(args, w.io)).toBe(0);
    const text = w.out.join('');
    expect(text).toMatch(/2 affiliate\(s\), our public IP 127\.0\.0\.1/);
    expect(text).toMatch(/node-a {2}hostname=node-a\.example nodename=node-a type=worker/);
    expect(text).toContain('endpoints: 192.0.2.10:51820');
    expect(text).not.toContain(SECRET);
    expect(w.logs.join('')).not.toContain(SECRET);

    const j = io(new AbortController().signal);
    expect(await runDiscovery([...args, '--json'], j.io)).toBe(0);
    const parsed = JSON.parse(j.out[0]!) as { affiliates: Array<{ nodeId: string }>; publicIp: string };
    expect(parsed.affiliates.map((x) => x.nodeId)).toEqual(['node-a', 'node-b']);

    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/discovery_server_affiliates 2/);
    expect(metrics).toMatch(/discovery_server_requests_total\{method="AffiliateUpdate",code="OK"\} \d+/);
    expect((await fetch(`http://127.0.0.1:${metricsPort}/other`)).status).toBe(404);

    await a.stop();
    await b.stop();
    stopServe.abort();
    expect(await serving).toBe(0);
    expect(existsSync(stateFile)).toBe(true);
    expect(s.logs.join('')).toMatch(/discovery server listening/);
  });

  it('watch reports an unreachable service on stderr and stops when aborted', async () => {
    const stop = new AbortController();
    const w = io(stop.signal);
    const watching = runDiscovery(
      ['watch', '--endpoint', 'http://127.0.0.1:1', '--cluster-id', 'c', '--cluster-secret', SECRET],
      w.io,
    );
    await eventually(() => expect(w.err.join('')).toMatch(/discovery: cannot reach 127\.0\.0\.1:1: /), 5000);
    stop.abort();
    expect(await watching).toBe(0);
    expect(w.err.join('')).not.toContain(SECRET);
  });

  it('bad flags name the flag; bad secrets do not echo the value', async () => {
    const signal = new AbortController().signal;
    await expect(runDiscovery(['serve'], io(signal).io)).rejects.toThrow(/--listen host:port is required/);
    await expect(runDiscovery(['serve', '--listen', 'nope'], io(signal).io)).rejects.toThrow(/listen: "nope" is not host:port/);
    await expect(runDiscovery(['serve', '--listen', '127.0.0.1:0', '--tls-cert', 'x'], io(signal).io)).rejects.toThrow(/--tls-key/);
    await expect(runDiscovery(['serve', '--listen', '127.0.0.1:0', '--gc-interval', 'soon'], io(signal).io)).rejects.toThrow(
      /--gc-interval: "soon"/,
    );
    await expect(runDiscovery(['watch', '--cluster-id', 'c', '--cluster-secret', 'hunter2-not-base64!'], io(signal).io)).rejects.toThrow(
      /^clusterSecret: not standard base64$/,
    );
    await expect(runDiscovery(['watch', '--cluster-id', 'c', '--cluster-secret', SECRET, '--endpoint', 'ftp://x'], io(signal).io)).rejects.toThrow(
      /endpoint: "ftp:\/\/x" has scheme "ftp"/,
    );
    const u = io(signal);
    expect(await runDiscovery(['bogus'], u.io)).toBe(2);
    expect(u.err.join('')).toMatch(/unknown subcommand "bogus"/);
  });

  it('durations and the listing format', () => {
    expect(parseDuration('500ms', 'f')).toBe(500);
    expect(parseDuration('30s', 'f')).toBe(30_000);
    expect(parseDuration('1m', 'f')).toBe(60_000);
    expect(parseDuration('250', 'f')).toBe(250);
    expect(() => parseDuration('0s', 'f')).toThrow(/positive/);
    const text = formatAffiliates(
      [{ ...localAffiliate('n1'), kubespan: undefined, endpoints: [{ address: '2001:db8::1', port: 51820 }] }],
      undefined,
    );
    expect(text).toContain('endpoints: [2001:db8::1]:51820');
    expect(text).not.toContain('kubespan:');
  });
});
