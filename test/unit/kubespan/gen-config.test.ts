import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { genCommand } from '../../../src/cli/gen.js';
import { validateCommand } from '../../../src/cli/validate.js';
import { parseNodeConfig } from '../../../src/kubespan/config.js';
import { generateClusterIdentity, generateNodeConfig, generateNodeConfigFrom, writeSecretFile } from '../../../src/kubespan/gen-config.js';

function seeded(seed: number) {
  let next = seed;
  return {
    fill: (out: Uint8Array) => {
      for (let i = 0; i < out.length; i++) out[i] = (next = (next * 1103515245 + 12345) >>> 0) >>> 24;
      return out;
    },
  };
}

/** Runs a CLI command, capturing what it writes. */
async function run(command: { run(argv: string[]): Promise<number> }, argv: string[]) {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((stdout += String(chunk)), true));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((stderr += String(chunk)), true));
  try {
    const code = await command.run(argv);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

describe('generateNodeConfig', () => {
  it('makes a new cluster id and secret (base64 of 32 random bytes) and a valid KubeSpan config', () => {
    const { text, cluster } = generateNodeConfig({ nodeName: 'node-1', random: seeded(1) });
    expect(Buffer.from(cluster.id, 'base64')).toHaveLength(32);
    expect(Buffer.from(cluster.secret, 'base64')).toHaveLength(32);
    expect(cluster.id).not.toBe(cluster.secret);
    expect(cluster.id).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    const c = parseNodeConfig(text, 'gen.yaml');
    expect(c.cluster.id).toBe(cluster.id);
    expect(c.cluster.secretBase64).toBe(cluster.secret);
    expect(c.machine.network.kubespan.enabled).toBe(true);
    expect(c.cluster.discovery.registries.service.endpoint).toBe('https://discovery.talos.dev/');
    expect(c.kubespand.nodeName).toBe('node-1');
    expect(c.warnings).toEqual([]);
    expect(text).toMatch(/^# kubespand node config/);
    expect(text).toContain('It holds the cluster secret');
  });

  it('two runs make two different clusters', () => {
    expect(generateNodeConfig().cluster.id).not.toBe(generateNodeConfig().cluster.id);
    expect(generateClusterIdentity().secret).not.toBe(generateClusterIdentity().secret);
  });

  it('takes a discovery endpoint and can leave KubeSpan off', () => {
    const c = parseNodeConfig(generateNodeConfig({ endpoint: 'http://10.0.0.1:3000', withKubespan: false }).text, 'gen.yaml');
    expect(c.cluster.discovery.registries.service.target).toMatchObject({ host: '10.0.0.1', port: 3000, tls: false });
    expect(c.machine.network.kubespan.enabled).toBe(false);
    expect(c.kubespand.nodeName).toBeUndefined();
  });

  it('refuses a bad node name or endpoint with the config error', () => {
    expect(() => generateNodeConfig({ nodeName: 'Bad_Name' })).toThrow(/kubespand\.nodeName: is not a Kubernetes node name/);
    expect(() => generateNodeConfig({ endpoint: 'ftp://x' })).toThrow(/has scheme "ftp"/);
  });
});

describe('generateNodeConfigFrom', () => {
  it('keeps the cluster and discovery, takes a new node name, resets node-local settings', () => {
    const base = parseNodeConfig(
      generateNodeConfig({ nodeName: 'node-1', endpoint: 'https://disco.example:8443/', random: seeded(2) }).text.replace(
        /kubespand:\n  nodeName: node-1\n/,
        'kubespand:\n  nodeName: node-1\n  stateDir: /srv/ks1\n  podCIDRs: [10.244.1.0/24]\n  discovery:\n    caFiles: [/etc/ks/ca.pem]\n',
      ),
      'node-1.yaml',
    );
    expect(base.kubespand.stateDir).toBe('/srv/ks1');
    const text = generateNodeConfigFrom(base, { nodeName: 'node-2' });
    const c = parseNodeConfig(text, 'node-2.yaml');
    expect(c.cluster.id).toBe(base.cluster.id);
    expect(c.cluster.secretBase64).toBe(base.cluster.secretBase64);
    expect(c.cluster.discovery).toEqual(base.cluster.discovery);
    expect(c.machine.network.kubespan.enabled).toBe(true);
    expect(c.kubespand.nodeName).toBe('node-2');
    expect(c.kubespand.stateDir).toBe('/var/lib/kubespand');
    expect(c.kubespand.podCIDRs).toEqual([]);
    expect(c.kubespand.discovery.caFiles).toEqual(['/etc/ks/ca.pem']);
    expect(text).toContain('Same cluster as node-1.yaml');
  });

  it('carries the KubeSpan switches and MTU, and needs id and secret', () => {
    const base = parseNodeConfig(
      `cluster:\n  id: abc\n  secret: ${Buffer.alloc(32, 1).toString('base64')}\nmachine:\n  network:\n    kubespan:\n      enabled: true\n      allowDownPeerBypass: true\n      harvestExtraEndpoints: true\n      mtu: 1380\n      filters:\n        endpoints: [10.0.0.0/8]\n`,
      'b.yaml',
    );
    const c = parseNodeConfig(generateNodeConfigFrom(base), 'c.yaml');
    expect(c.machine.network.kubespan).toMatchObject({ enabled: true, allowDownPeerBypass: true, harvestExtraEndpoints: true, advertiseKubernetesNetworks: false, mtu: 1380 });
    expect(c.machine.network.kubespan.filters.endpoints).toEqual([]);
    expect(c.kubespand.nodeName).toBeUndefined();
    expect(() => generateNodeConfigFrom(parseNodeConfig('', 'empty.yaml'))).toThrow(/empty\.yaml: cluster\.id and cluster\.secret are needed/);
  });
});

describe('kubespand gen / validate', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ksk-gen-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('gen config -o writes a 0600 file that validate accepts; --from makes a second node of the same cluster', async () => {
    const first = join(dir, 'node-1.yaml');
    const r1 = await run(genCommand, ['config', '--with-kubespan', '--name', 'node-1', '--endpoint', 'http://127.0.0.1:3000', '-o', first]);
    expect(r1).toMatchObject({ code: 0, stdout: '' });
    expect(r1.stderr).toContain('mode 0600');
    expect(statSync(first).mode & 0o777).toBe(0o600);
    expect(await run(validateCommand, ['--config', first])).toMatchObject({ code: 0, stdout: `${first}: valid\n` });

    const second = join(dir, 'node-2.yaml');
    expect((await run(genCommand, ['config', '--from', first, '--name', 'node-2', '-o', second])).code).toBe(0);
    expect(statSync(second).mode & 0o777).toBe(0o600);
    const a = parseYaml(readFileSync(first, 'utf8'));
    const b = parseYaml(readFileSync(second, 'utf8'));
    expect(b.cluster).toEqual(a.cluster);
    expect(b.kubespand.nodeName).toBe('node-2');
    expect(b.machine.network.kubespan.enabled).toBe(true);
    expect((await run(validateCommand, ['--config', second])).code).toBe(0);
  });

  it('gen config prints to stdout without -o, and refuses to overwrite without --force', async () => {
    const r = await run(genCommand, ['config', '--with-kubespan']);
    expect(r.code).toBe(0);
    expect(parseNodeConfig(r.stdout, 'stdout').machine.network.kubespan.enabled).toBe(true);
    const file = join(dir, 'n.yaml');
    writeFileSync(file, 'keep me\n');
    chmodSync(file, 0o644);
    await expect(run(genCommand, ['config', '--with-kubespan', '-o', file])).rejects.toThrow(`${file}: already exists (pass --force to replace it)`);
    expect(readFileSync(file, 'utf8')).toBe('keep me\n');
    expect((await run(genCommand, ['config', '--with-kubespan', '-o', file, '--force'])).code).toBe(0);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(parseNodeConfig(readFileSync(file, 'utf8'), file).cluster.id).toBeDefined();
  });

  it('gen refuses unknown targets and options, --endpoint with --from, and a bad --name', async () => {
    expect((await run(genCommand, ['secrets'])).code).toBe(2);
    expect((await run(genCommand, ['config', '--nope'])).stderr).toMatch(/Unknown option '--nope'/);
    expect((await run(genCommand, ['config', '--from', 'x.yaml', '--endpoint', 'https://a/'])).stderr).toMatch(/--endpoint cannot be combined with --from/);
    const bad = await run(genCommand, ['config', '--with-kubespan', '--name', 'Node_1']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^--name: is not a Kubernetes node name .* \(got "Node_1"\)/);
    await expect(run(genCommand, ['config', '--endpoint', 'ftp://x'])).rejects.toThrow(/--endpoint: "ftp:\/\/x" has scheme "ftp"/);
  });

  it('validate prints every problem and exits 1; warns on stderr for a valid file', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'machine:\n  network:\n    kubespan:\n      enabled: true\n      mtu: 1000\n');
    const r = await run(validateCommand, ['--config', file]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toEqual([
      `${file}: machine.network.kubespan.mtu: must be at least 1280 (the IPv6 minimum MTU) (got 1000)`,
      `${file}: cluster.id: is required when machine.network.kubespan.enabled is true (got nothing)`,
      `${file}: cluster.secret: is required when machine.network.kubespan.enabled is true (got nothing)`,
    ]);
    const off = join(dir, 'off.yaml');
    writeFileSync(off, 'kubespand:\n  logLevel: warn\n');
    const ok = await run(validateCommand, ['-c', off]);
    expect(ok).toMatchObject({ code: 0, stdout: `${off}: valid\n` });
    expect(ok.stderr).toMatch(/^warning: .*kubespan\.enabled: is false/);
    expect((await run(validateCommand, [])).code).toBe(2);
    expect((await run(validateCommand, ['--config', join(dir, 'missing.yaml')])).stderr).toMatch(/missing\.yaml: cannot read the config file: no such file/);
  });

  it('writeSecretFile keeps the owner-only mode under a permissive umask', () => {
    const old = process.umask(0o000);
    try {
      const file = join(dir, 's.yaml');
      writeSecretFile(file, 'x');
      expect(statSync(file).mode & 0o777).toBe(0o600);
    } finally {
      process.umask(old);
    }
  });
});
