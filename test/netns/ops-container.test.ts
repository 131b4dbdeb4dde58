/**
 * The container image, for real: `podman build` of the repository's Dockerfile (multi-stage, on the
 * local stand-in for node:20-bookworm-slim that ../shared/tools/container-base.sh prepares, with the
 * host's CA bundle handed to the build as a secret for an intercepting proxy), then the image run as a
 * sidecar would be: --cap-drop ALL --cap-add NET_ADMIN, /dev/net/tun, a read-only root, a volume for
 * the state directory, the config mounted read-only, in a network namespace this test made
 * (`--network ns:/run/netns/…`). It meshes with a kubespand running outside it: the built-in discovery
 * server and one host node; both peers come up and ping each other over the ULA.
 *
 * podman is installed by scripts/setup-system.sh; when it is missing or cannot run, the test fails
 * with the reason (it is never skipped).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually } from '../support/netns.js';
import { REPO_ROOT } from '../support/wg-impl.js';
import { OpsMesh, type OpsNode, type PeerStatusRow } from './ops-support.js';

/** ../shared/tools/container-base.sh relative to the repository (CI), else the machine-wide copy. */
export function containerBaseScript(): string {
  const candidates = [join(REPO_ROOT, '..', 'shared', 'tools', 'container-base.sh'), '/work/shared/tools/container-base.sh'];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`container-base.sh not found (looked at ${candidates.join(', ')}); it prepares podman and the local node:20-bookworm-slim base`);
  return found;
}

const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

let mesh: OpsMesh;
let n1: OpsNode;
let ctr: OpsNode;
let podmanEnv: NodeJS.ProcessEnv = process.env;
let image = '';
let name = '';
const timings: Record<string, number> = {};

function podman(args: string[], timeoutMs = 60_000): string {
  const r = spawnSync('podman', args, { encoding: 'utf8', env: podmanEnv, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw new Error(`podman ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`podman ${args.join(' ')} exited ${r.status}: ${(r.stderr || r.stdout).trim().split('\n').slice(-30).join('\n')}`);
  return r.stdout;
}

/** The container's output: `podman logs` replays its stderr (kubespand's JSON log) on stderr. */
function podmanLogs(): string {
  const r = spawnSync('podman', ['logs', name], { encoding: 'utf8', env: podmanEnv, timeout: 30_000, maxBuffer: 64 * 1024 * 1024 });
  return `${r.stdout}${r.stderr}`;
}

function ctrStatuses(): PeerStatusRow[] {
  return JSON.parse(podman(['exec', name, 'kubespand', 'get', 'kubespanpeerstatuses', '-o', 'json'])) as PeerStatusRow[];
}

describe('operations: the container image as a sidecar', () => {
  beforeAll(async () => {
    const t0 = Date.now();
    const base = spawnSync('sh', [containerBaseScript()], { encoding: 'utf8', timeout: 600_000 });
    if (base.status !== 0) throw new Error(`container-base.sh failed (exit ${base.status}): ${(base.stderr || base.stdout).trim().split('\n').slice(-20).join('\n')}`);
    const conf = /export CONTAINERS_CONF=(\S+)/.exec(base.stdout)?.[1];
    if (!conf) throw new Error(`container-base.sh printed no CONTAINERS_CONF line: ${base.stdout}`);
    podmanEnv = { ...process.env, CONTAINERS_CONF: conf };
    timings.baseMs = Date.now() - t0;

    mesh = new OpsMesh('kso');
    image = `localhost/kubespand:${mesh.topo.tag}`;
    name = `${mesh.topo.tag}-ctr`;
    const t1 = Date.now();
    podman(['build', '--pull=never', '--format', 'docker', '--secret', `id=extra_ca,src=${CA_BUNDLE}`, '-t', image, REPO_ROOT], 900_000);
    timings.buildMs = Date.now() - t1;
    mesh.topo.onDestroy(() => {
      spawnSync('podman', ['rm', '-f', '-t', '0', name], { env: podmanEnv, stdio: 'ignore' });
      spawnSync('podman', ['rmi', image], { env: podmanEnv, stdio: 'ignore' });
    });

    await mesh.startDiscovery();
    n1 = mesh.addNode('n1', 1);
    ctr = mesh.addNode('ctr', 3);
    mesh.writeConfig(n1);
    mesh.start(n1);
    // the sidecar's config: image defaults for state dir, control socket and interface
    const state = join(ctr.dir, 'state');
    mkdirSync(state, { mode: 0o700 });
    const config = mesh
      .configText(ctr)
      .split('\n')
      .filter((l) => !/^ {2}(stateDir|controlSocket|interface):/.test(l))
      .join('\n');
    writeFileSync(ctr.config, config, { mode: 0o600 });
    const t2 = Date.now();
    podman([
      'run', '-d', '--name', name,
      '--network', `ns:/run/netns/${ctr.ns}`,
      '--cap-drop', 'ALL', '--cap-add', 'NET_ADMIN',
      '--device', '/dev/net/tun',
      '--read-only',
      '-v', `${state}:/var/lib/kubespand`,
      '-v', `${ctr.config}:/etc/kubespand/config.yaml:ro`,
      image,
    ]);
    await eventually(() => podmanLogs().includes('kubespand is running'), 60_000, 500).catch((err: unknown) => {
      throw new Error(`the container did not start: ${String(err)}\n${podmanLogs().slice(-3000)}`);
    });
    timings.startMs = Date.now() - t2;
  }, 1_200_000);

  afterAll(async () => {
    // eslint-disable-next-line no-console
    console.log(`ops-container timings: ${JSON.stringify(timings)}`);
    await mesh?.destroy();
  });

  it('builds a runtime image with node, iproute2 and nftables but no compilers, running kubespand by default', () => {
    const cfg = JSON.parse(podman(['image', 'inspect', image]))[0] as { Config: { Entrypoint: string[]; Cmd: string[] } };
    expect(cfg.Config.Entrypoint).toEqual(['kubespand']);
    expect(cfg.Config.Cmd).toEqual(['run', '--config', '/etc/kubespand/config.yaml']);
    const tools = podman(['run', '--rm', '--entrypoint', 'sh', image, '-c', 'for t in node ip nft gcc g++ cc make python3; do command -v $t >/dev/null && echo "$t yes" || echo "$t no"; done']);
    expect(tools.trim().split('\n')).toEqual(['node yes', 'ip yes', 'nft yes', 'gcc no', 'g++ no', 'cc no', 'make no', 'python3 no']);
    // the runtime stage has libsodium23, which the data-path addon opens for X25519 and small packets
    expect(podman(['run', '--rm', image, 'version'])).toMatch(/^kubespand v0\.1\.0 \(node v20\..*libsodium 1\./);
  });

  it('meshes with a kubespand outside the container: both peers up, ping over the ULA both ways', async () => {
    const up = await eventually(() => {
      const s = ctrStatuses();
      return s.length === 1 && s[0]!.state === 'up' ? s : false;
    }, 90_000, 1000);
    expect(up[0]!.label).toBe('n1');
    const fromHost = await mesh.allUp(n1, 1);
    expect(fromHost[0]!.label).toBe('ctr');
    const ctrIdentity = (JSON.parse(podman(['exec', name, 'kubespand', 'get', 'kubespanidentities', '-o', 'json'])) as { address: string }[])[0]!;
    const ulaCtr = ctrIdentity.address.split('/')[0]!;
    expect(mesh.pingOk(n1, ulaCtr)).toBe(true);
    expect(mesh.pingOk(ctr, mesh.identity(n1).address)).toBe(true);
    // the device and its routing live in the namespace we handed the container
    expect(mesh.topo.exec(ctr.ns, 'ip', ['-6', 'addr', 'show', 'dev', 'kubespan'])).toContain(ulaCtr);
    expect(podman(['exec', name, 'kubespand', 'status'])).toMatch(/^discovery {2}connected/m);
    // the identity went to the state volume
    expect(existsSync(join(ctr.dir, 'state', 'kubespan-identity.yaml'))).toBe(true);
  }, 150_000);

  it('stops cleanly on podman stop (SIGTERM): exit 0, device removed from the namespace', () => {
    podman(['stop', '-t', '20', name], 60_000);
    expect(podman(['inspect', '--format', '{{.State.ExitCode}}', name]).trim()).toBe('0');
    expect(podmanLogs()).toMatch(/"msg":"stopped"/);
    expect(() => mesh.topo.exec(ctr.ns, 'ip', ['link', 'show', 'kubespan'])).toThrow(/does not exist/);
  }, 90_000);
});
