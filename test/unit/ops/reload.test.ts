/**
 * Config reload decisions without a daemon: which keys apply live and which need a restart
 * (planReload), and the ConfigReloader against real files and recording targets: refused files
 * leave the targets untouched, messages name keys but never secrets, reloads run one at a time.
 * Config files are written 0600, as `gen config` writes them: one that others can read is refused.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { parseNodeConfigFile } from '../../../src/kubespan/config.js';
import { ConfigReloader, LIVE_FIELDS, planReload, ReloadError, RESTART_FIELDS, runtimeConfigFrom, type ReloadTargets, type RuntimeConfig } from '../../../src/kubespan/reload.js';
import type { DaemonSettings } from '../../../src/kubespan/daemon.js';

const SECRET = 'c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=';
const OTHER_SECRET = 'b3RoZXJvdGhlcm90aGVyb3RoZXJvdGhlcm90aGVyMTI=';

let dir: string;
let file: string;

function config(over: { kubespan?: Record<string, unknown>; kubespand?: Record<string, unknown>; cluster?: Record<string, unknown>; env?: Record<string, string> } = {}): string {
  return stringify({
    cluster: { id: 'cluster-1', secret: SECRET, discovery: { registries: { service: { endpoint: 'https://discovery.example/' } } }, ...over.cluster },
    machine: { network: { kubespan: { enabled: true, ...over.kubespan } }, ...(over.env ? { env: over.env } : {}) },
    kubespand: { nodeName: 'n1', hostname: 'n1.test', stateDir: '/var/lib/kubespand', ...over.kubespand },
  });
}

/** Writes the config file, private as it must be (it holds the cluster secret). */
function write(text: string): void {
  writeFileSync(file, text, { mode: 0o600 });
  chmodSync(file, 0o600);
}

function load(text: string): RuntimeConfig {
  write(text);
  return runtimeConfigFrom(parseNodeConfigFile(file));
}

interface Recorder extends ReloadTargets {
  calls: string[];
  settings: DaemonSettings[];
}

function recorder(opts: { failMetrics?: boolean; slowApplyMs?: number } = {}): Recorder {
  const r: Recorder = {
    calls: [],
    settings: [],
    async applySettings(next, changed) {
      r.calls.push(`apply:start ${changed.join(',')}`);
      if (opts.slowApplyMs) await new Promise((res) => setTimeout(res, opts.slowApplyMs));
      r.settings.push(next);
      r.calls.push('apply:end');
    },
    setLogLevel(level) {
      r.calls.push(`level ${level}`);
    },
    async setMetricsListen(listen) {
      r.calls.push(`metrics ${listen ? `${listen.host}:${listen.port}` : 'off'}`);
      if (opts.failMetrics) throw new Error('kubespand.metricsListen 10.0.0.1:9100: cannot listen: the address is not on this host');
    },
  };
  return r;
}

/** The error a promise rejects with (fails the test when it resolves). */
async function refusal(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the reload to be refused');
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kso-reload-'));
  file = join(dir, 'node.yaml');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('planReload', () => {
  it('finds nothing to do for the same file', () => {
    const a = load(config());
    expect(planReload(a, load(config()))).toEqual({ changed: [], restartRequired: [] });
  });

  it('applies KubeSpan options, discovery, proxies, names, log level and metrics live', () => {
    const a = load(config());
    const b = load(
      config({
        kubespan: { mtu: 1380, allowDownPeerBypass: true, harvestExtraEndpoints: true, advertiseKubernetesNetworks: true, filters: { endpoints: ['10.0.0.0/8'], excludeAdvertisedNetworks: ['10.5.0.0/16'] }, extraAnnouncedEndpoints: ['192.0.2.1:51820'] },
        cluster: { discovery: { registries: { service: { endpoint: 'https://other.example/' } } } },
        env: { https_proxy: 'http://proxy.example:3128' },
        kubespand: { nodeName: 'n1b', hostname: 'n1b.test', podCIDRs: ['10.244.1.0/24'], logLevel: 'debug', metricsListen: ':9100' },
      }),
    );
    const plan = planReload(a, b);
    expect(plan.restartRequired).toEqual([]);
    expect([...plan.changed].sort()).toEqual(LIVE_FIELDS.map((f) => f.key).filter((k) => k !== 'cluster.discovery.enabled' && k !== 'kubespand.discovery.caFiles').sort());
  });

  it('sends identity, device and socket keys to a restart', () => {
    const a = load(config());
    const b = load(
      config({
        cluster: { id: 'cluster-2', secret: OTHER_SECRET },
        kubespand: { stateDir: '/var/lib/other', interface: 'ks1', listenPort: 51821, identityLink: 'eth1', controlSocket: '/run/other.sock' },
      }),
    );
    expect(planReload(a, b)).toEqual({ changed: [], restartRequired: RESTART_FIELDS.map((f) => f.key) });
  });
});

describe('ConfigReloader', () => {
  it('applies a changed file: metrics first, then the daemon, then the log level', async () => {
    const t = recorder();
    const r = new ConfigReloader(file, load(config()), t, { now: () => 1234 });
    write(config({ kubespan: { mtu: 1400 }, kubespand: { logLevel: 'debug', metricsListen: '127.0.0.1:9100' } }));
    const result = await r.reload();
    expect(result).toEqual({ file, changed: ['machine.network.kubespan.mtu', 'kubespand.logLevel', 'kubespand.metricsListen'], overridden: [] });
    expect(t.calls).toEqual(['metrics 127.0.0.1:9100', 'apply:start machine.network.kubespan.mtu', 'apply:end', 'level debug']);
    expect(t.settings[0]!.kubespan.mtu).toBe(1400);
    expect(r.counters).toMatchObject({ succeeded: 1, failed: 0, lastSuccessAt: 1234 });
    expect(r.config.settings.kubespan.mtu).toBe(1400);
    // the same file again changes nothing and calls nobody
    t.calls.length = 0;
    expect((await r.reload()).changed).toEqual([]);
    expect(t.calls).toEqual([]);
  });

  it('refuses an invalid file naming every problem, calls no target and keeps the running config', async () => {
    const t = recorder();
    const r = new ConfigReloader(file, load(config()), t);
    write(config({ kubespan: { mtu: 900, filters: { endpoints: ['not-a-cidr'] } }, kubespand: { logLevl: 'debug' } }));
    const err = await refusal(r.reload());
    expect(err).toBeInstanceOf(ReloadError);
    expect(err.message).toContain('config reload refused, the running configuration is kept');
    expect(err.message).toContain(`${file}: machine.network.kubespan.mtu: must be at least 1280 (the IPv6 minimum MTU) (got 900)`);
    expect(err.message).toContain('machine.network.kubespan.filters.endpoints[0]');
    expect(err.message).toContain('kubespand.logLevl: unknown key; did you mean "logLevel"?');
    expect(t.calls).toEqual([]);
    expect(r.config.settings.kubespan.mtu).toBe(1420);
    expect(r.counters).toMatchObject({ succeeded: 0, failed: 1 });
    expect(r.counters.lastError).toBe(err.message);
  });

  it('refuses a file that cannot be read, or whose CA file is missing', async () => {
    const t = recorder();
    const r = new ConfigReloader(file, load(config()), t);
    rmSync(file);
    await expect(r.reload()).rejects.toThrow(`${file}: cannot read the config file: no such file`);
    write(config({ kubespand: { discovery: { caFiles: [join(dir, 'missing-ca.pem')] } } }));
    await expect(r.reload()).rejects.toThrow(`kubespand.discovery.caFiles[0]: cannot be read: no such file (got "${join(dir, 'missing-ca.pem')}")`);
    expect(t.calls).toEqual([]);
  });

  it('refuses a file that others can read, as run does at start, keeps the running config and counts a failure', async () => {
    const t = recorder();
    const r = new ConfigReloader(file, load(config()), t, { now: () => 1234 });
    const before = r.config;
    write(config({ kubespan: { mtu: 1400 }, kubespand: { logLevel: 'debug' } }));
    chmodSync(file, 0o644);
    const err = await refusal(r.reload());
    expect(err).toBeInstanceOf(ReloadError);
    expect(err.message).toBe(
      `config reload refused, the running configuration is kept:\n${file}: mode 0644 lets others read the cluster secret; refusing to use it (fix with: chmod 600 ${file})`,
    );
    expect(err.message).not.toContain(SECRET);
    expect(err.message).not.toContain(Buffer.from(SECRET, 'base64').toString('hex'));
    expect(t.calls).toEqual([]);
    expect(r.config).toBe(before);
    expect(r.config.settings.kubespan.mtu).toBe(1420);
    expect(r.counters).toMatchObject({ succeeded: 0, failed: 1, lastSuccessAt: 0, lastError: err.message });
    // readable and writable by others: refused too, and the file itself is left as it is
    chmodSync(file, 0o606);
    await expect(r.reload()).rejects.toThrow(`mode 0606 lets others read the cluster secret; refusing to use it (fix with: chmod 600 ${file})`);
    expect(statSync(file).mode & 0o777).toBe(0o606);
    expect(r.counters.failed).toBe(2);
    // once fixed, the same file applies
    chmodSync(file, 0o600);
    expect((await r.reload()).changed).toEqual(['machine.network.kubespan.mtu', 'kubespand.logLevel']);
    expect(r.counters).toMatchObject({ succeeded: 1, failed: 2, lastSuccessAt: 1234 });
    expect(r.counters.lastError).toBeUndefined();
  });

  it('says which identity keys need a restart, without the secret', async () => {
    const t = recorder();
    const r = new ConfigReloader(file, load(config()), t);
    write(config({ cluster: { secret: OTHER_SECRET }, kubespan: { mtu: 1400 }, kubespand: { listenPort: 51999 } }));
    const err = await refusal(r.reload());
    expect(err.message).toContain('cluster.secret, kubespand.listenPort changed; a restart is needed to apply them (systemctl restart kubespand), as these keys define the node\'s identity, device or sockets');
    expect(err.message).not.toContain(OTHER_SECRET);
    expect(err.message).not.toContain(SECRET);
    expect(err.message).not.toContain(Buffer.from(OTHER_SECRET, 'base64').toString('hex'));
    // nothing of the file applies, not even the live mtu
    expect(t.calls).toEqual([]);
    expect(r.config.settings.kubespan.mtu).toBe(1420);
  });

  it('keeps a log level given on the command line, and reports it as overridden', async () => {
    const t = recorder();
    const r = new ConfigReloader(file, load(config()), t, { logLevelOverride: 'warn' });
    write(config({ kubespand: { logLevel: 'trace' } }));
    expect(await r.reload()).toMatchObject({ changed: ['kubespand.logLevel'], overridden: ['kubespand.logLevel'] });
    expect(t.calls).toEqual([]);
  });

  it('does not touch the daemon when the metrics address is refused', async () => {
    const t = recorder({ failMetrics: true });
    const r = new ConfigReloader(file, load(config()), t);
    write(config({ kubespan: { mtu: 1400 }, kubespand: { metricsListen: '10.0.0.1:9100' } }));
    await expect(r.reload()).rejects.toThrow('cannot listen: the address is not on this host');
    expect(t.calls).toEqual(['metrics 10.0.0.1:9100']);
    expect(r.config.settings.kubespan.mtu).toBe(1420);
  });

  it('runs concurrent reloads one after the other', async () => {
    const t = recorder({ slowApplyMs: 50 });
    const r = new ConfigReloader(file, load(config()), t);
    write(config({ kubespan: { mtu: 1400 } }));
    const [a, b] = await Promise.all([r.reload(), r.reload()]);
    expect(a.changed).toEqual(['machine.network.kubespan.mtu']);
    expect(b.changed).toEqual([]);
    expect(t.calls).toEqual(['apply:start machine.network.kubespan.mtu', 'apply:end']);
  });
});
