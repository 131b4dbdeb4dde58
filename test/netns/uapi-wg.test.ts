/**
 * The real `wg` (wireguard-tools 1.0.20210914) against our UAPI server (spec/wireguard.md §11): the
 * server runs in this process for `ksu<pid><x>` in /var/run/wireguard with the in-memory
 * FakeUapiDevice, and every command is the unmodified `wg` binary: show/dump/showconf, set,
 * setconf, syncconf, show all, show interfaces, and its error reporting.
 *
 * Root is needed for /var/run/wireguard. Other engineers' sockets may share that directory, so
 * listings are filtered to our names, and one test repeats them in a private mount namespace
 * (`unshare --mount` with a bind mount over /var/run/wireguard) where the output can be exact.
 *
 * `wg` is run asynchronously: it talks to a server on this very event loop.
 */
import { execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startUapiServer, type UapiServer } from '../../src/uapi/server.js';
import { FakeUapiDevice } from '../support/fake-uapi-device.js';
import { assertRoot } from '../support/netns.js';

const UAPI_DIR = '/var/run/wireguard';
const TAG = `ksu${process.pid % 10000}`;
const ifname = (x: string): string => `${TAG}${x}`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function wg(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile('wg', args, { env: { ...process.env, WG_COLOR_MODE: 'never', ...env }, timeout: 15_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function wgOk(args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await wg(args, env);
  if (r.code !== 0) throw new Error(`wg ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

function keyPair(seed: number): { priv: string; pub: string; pubBytes: Uint8Array } {
  const priv = new Uint8Array(32).map((_, i) => (seed * 37 + i * 11 + 5) & 0xff);
  priv[0]! &= 248;
  priv[31] = (priv[31]! & 127) | 64;
  const pubBytes = nacl.scalarMult.base(priv);
  return { priv: Buffer.from(priv).toString('base64'), pub: Buffer.from(pubBytes).toString('base64'), pubBytes };
}

const ME = keyPair(1);
const B = keyPair(2);
const C = keyPair(3);
const D = keyPair(4);
const PSK = Buffer.from(new Uint8Array(32).map((_, i) => 200 - i)).toString('base64');

let work: string;
const servers: UapiServer[] = [];
const pids: number[] = [];

function file(name: string, content: string): string {
  const path = join(work, name);
  writeFileSync(path, content, { mode: 0o600 });
  return path;
}

async function serve(x: string, device = new FakeUapiDevice(), dir?: string): Promise<{ server: UapiServer; device: FakeUapiDevice; name: string }> {
  const name = ifname(x);
  const server = await startUapiServer(name, device, dir ? { dir } : {});
  servers.push(server);
  return { server, device, name };
}

beforeAll(() => {
  assertRoot();
  work = mkdtempSync(join(tmpdir(), 'ksu-wg-'));
  chmodSync(work, 0o700);
});

afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const pid of pids.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('wg against the kubespand UAPI server', () => {
  it('socket 0700 in a 0755 directory, and gone after close', async () => {
    const { server, name } = await serve('m');
    expect(server.path).toBe(`${UAPI_DIR}/${name}.sock`);
    expect(statSync(UAPI_DIR).mode & 0o7777).toBe(0o755);
    const st = lstatSync(server.path);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o7777).toBe(0o700);
    expect(st.uid).toBe(0);
    await server.close();
    expect(existsSync(server.path)).toBe(false);
    const r = await wg(['show', name]);
    expect(r.code).not.toBe(0);
    // with no userspace socket wg falls back to netlink, and there is no kernel module here
    expect(r.stderr).toMatch(/Unable to access interface: (No such device|Protocol not supported)/);
    expect((await wgOk(['show', 'interfaces'])).split(/\s+/)).not.toContain(name);
  });

  it('wg show dump of an empty device', async () => {
    const { name } = await serve('e');
    expect(await wgOk(['show', name, 'dump'])).toBe('(none)\t(none)\t0\toff\n');
    expect(await wgOk(['showconf', name])).toBe('[Interface]\n\n');
  });

  it('wg set with keys, port, peers, allowed IPs, endpoints, keepalive; then dump, show and showconf', async () => {
    const { name, device } = await serve('s');
    await wgOk([
      'set', name,
      'private-key', file('me.key', `${ME.priv}\n`),
      'listen-port', '51820',
      'fwmark', '0x20',
      'peer', B.pub, 'allowed-ips', '10.0.0.2/32,fd00::2/128,10.1.2.3/16', 'endpoint', '192.0.2.1:51821', 'persistent-keepalive', '25',
      'peer', C.pub, 'preshared-key', file('psk', `${PSK}\n`), 'allowed-ips', '10.0.0.3/32', 'endpoint', '[fd00::3]:4242',
      'peer', D.pub,
    ]);
    expect(device.listenPort).toBe(51820);
    expect(device.fwmark).toBe(0x20);
    device.setStats(B.pubBytes, { rxBytes: 244, txBytes: 156, lastHandshakeWallMs: 1_795_696_922_500 });
    expect(await wgOk(['show', name, 'dump'])).toBe(
      [
        `${ME.priv}\t${ME.pub}\t51820\t0x20`,
        `${B.pub}\t(none)\t192.0.2.1:51821\t10.0.0.2/32,fd00::2/128,10.1.0.0/16\t1795696922\t244\t156\t25`,
        `${C.pub}\t${PSK}\t[fd00::3]:4242\t10.0.0.3/32\t0\t0\t0\toff`,
        `${D.pub}\t(none)\t(none)\t(none)\t0\t0\t0\toff`,
        '',
      ].join('\n'),
    );
    // the single-field forms
    expect(await wgOk(['show', name, 'public-key'])).toBe(`${ME.pub}\n`);
    expect(await wgOk(['show', name, 'private-key'])).toBe(`${ME.priv}\n`);
    expect(await wgOk(['show', name, 'listen-port'])).toBe('51820\n');
    expect(await wgOk(['show', name, 'fwmark'])).toBe('0x20\n');
    expect(await wgOk(['show', name, 'peers'])).toBe(`${B.pub}\n${C.pub}\n${D.pub}\n`);
    expect(await wgOk(['show', name, 'endpoints'])).toBe(`${B.pub}\t192.0.2.1:51821\n${C.pub}\t[fd00::3]:4242\n${D.pub}\t(none)\n`);
    expect(await wgOk(['show', name, 'allowed-ips'])).toBe(`${B.pub}\t10.0.0.2/32 fd00::2/128 10.1.0.0/16\n${C.pub}\t10.0.0.3/32\n${D.pub}\t(none)\n`);
    expect(await wgOk(['show', name, 'persistent-keepalive'])).toBe(`${B.pub}\t25\n${C.pub}\toff\n${D.pub}\toff\n`);
    expect(await wgOk(['show', name, 'preshared-keys'])).toBe(`${B.pub}\t(none)\n${C.pub}\t${PSK}\n${D.pub}\t(none)\n`);
    expect(await wgOk(['show', name, 'transfer'])).toBe(`${B.pub}\t244\t156\n${C.pub}\t0\t0\n${D.pub}\t0\t0\n`);
    expect(await wgOk(['show', name, 'latest-handshakes'])).toBe(`${B.pub}\t1795696922\n${C.pub}\t0\n${D.pub}\t0\n`);

    // pretty output: keys hidden, the handshaked peer first
    const pretty = await wgOk(['show', name]);
    expect(pretty).toContain(`interface: ${name}\n  public key: ${ME.pub}\n  private key: (hidden)\n  listening port: 51820\n  fwmark: 0x20\n`);
    expect(pretty).not.toContain(ME.priv);
    expect(pretty).not.toContain(PSK);
    expect(pretty.indexOf(`peer: ${B.pub}`)).toBeLessThan(pretty.indexOf(`peer: ${C.pub}`));
    expect(pretty).toContain(`peer: ${B.pub}\n  endpoint: 192.0.2.1:51821\n  allowed ips: 10.0.0.2/32, fd00::2/128, 10.1.0.0/16\n`);
    expect(pretty).toContain('transfer: 244 B received, 156 B sent\n  persistent keepalive: every 25 seconds\n');
    expect(pretty).toContain(`peer: ${C.pub}\n  preshared key: (hidden)\n  endpoint: [fd00::3]:4242\n  allowed ips: 10.0.0.3/32\n`);

    expect(await wgOk(['showconf', name])).toBe(
      [
        '[Interface]',
        'ListenPort = 51820',
        'FwMark = 0x20',
        `PrivateKey = ${ME.priv}`,
        '',
        '[Peer]',
        `PublicKey = ${B.pub}`,
        'AllowedIPs = 10.0.0.2/32, fd00::2/128, 10.1.0.0/16',
        'Endpoint = 192.0.2.1:51821',
        'PersistentKeepalive = 25',
        '',
        '[Peer]',
        `PublicKey = ${C.pub}`,
        `PresharedKey = ${PSK}`,
        'AllowedIPs = 10.0.0.3/32',
        'Endpoint = [fd00::3]:4242',
        '',
        '[Peer]',
        `PublicKey = ${D.pub}`,
        '',
      ].join('\n'),
    );
  });

  it('wg set: remove a peer, replace and move allowed IPs, turn keepalive off, clear the psk, ignore our own key', async () => {
    const { name, device } = await serve('r');
    await wgOk(['set', name, 'private-key', file('me2.key', ME.priv), 'peer', B.pub, 'allowed-ips', '10.0.0.2/32', 'persistent-keepalive', '5', 'preshared-key', file('psk2', PSK), 'peer', C.pub, 'allowed-ips', '10.0.0.3/32']);
    await wgOk(['set', name, 'peer', C.pub, 'remove']);
    expect([...device.peers.values()].map((p) => Buffer.from(p.publicKey).toString('base64'))).toEqual([B.pub]);
    // allowed-ips without +/- replaces the list; the prefix moves from D to B
    await wgOk(['set', name, 'peer', D.pub, 'allowed-ips', '10.9.0.0/16']);
    await wgOk(['set', name, 'peer', B.pub, 'allowed-ips', '10.9.0.0/16,10.8.0.0/16', 'persistent-keepalive', 'off', 'preshared-key', '/dev/null']);
    // our own public key as a peer: accepted and ignored, as wireguard-go does
    await wgOk(['set', name, 'peer', ME.pub, 'allowed-ips', '0.0.0.0/0']);
    expect(await wgOk(['show', name, 'dump'])).toBe(
      [
        `${ME.priv}\t${ME.pub}\t0\toff`,
        `${B.pub}\t(none)\t(none)\t10.9.0.0/16,10.8.0.0/16\t0\t0\t0\toff`,
        `${D.pub}\t(none)\t(none)\t(none)\t0\t0\t0\toff`,
        '',
      ].join('\n'),
    );
    // removing the private key
    await wgOk(['set', name, 'private-key', '/dev/null']);
    expect((await wgOk(['show', name, 'dump'])).split('\n')[0]).toBe('(none)\t(none)\t0\toff');
  });

  it('wg setconf replaces everything; wg syncconf changes only the difference', async () => {
    const { name, device } = await serve('c');
    await wgOk(['set', name, 'peer', D.pub, 'allowed-ips', '172.16.0.0/12']);
    const conf1 = file(
      'c1.conf',
      [
        '[Interface]',
        `PrivateKey = ${ME.priv}`,
        'ListenPort = 40000',
        'FwMark = 1234',
        '',
        '[Peer]',
        `PublicKey = ${B.pub}`,
        `PresharedKey = ${PSK}`,
        'AllowedIPs = 10.0.0.2/32, fd00::2/128',
        'Endpoint = 192.0.2.1:51820',
        'PersistentKeepalive = 25',
        '',
        '[Peer]',
        `PublicKey = ${C.pub}`,
        'AllowedIPs = 10.0.0.3/32',
        'Endpoint = [fd00::3]:51820',
        '',
      ].join('\n'),
    );
    await wgOk(['setconf', name, conf1]);
    expect(await wgOk(['show', name, 'dump'])).toBe(
      [
        `${ME.priv}\t${ME.pub}\t40000\t0x4d2`,
        `${B.pub}\t${PSK}\t192.0.2.1:51820\t10.0.0.2/32,fd00::2/128\t0\t0\t0\t25`,
        `${C.pub}\t(none)\t[fd00::3]:51820\t10.0.0.3/32\t0\t0\t0\toff`,
        '',
      ].join('\n'),
    );
    expect(device.calls).toContain('removeAllPeers()');

    // syncconf: B changes endpoint, C is gone, D is new; B keeps its counters (not re-created), and
    // keeps its preshared key and keepalive because wg sends only the keys the file names
    device.setStats(B.pubBytes, { rxBytes: 1000, txBytes: 2000 });
    device.calls.length = 0;
    const conf2 = file(
      'c2.conf',
      [
        '[Interface]',
        `PrivateKey = ${ME.priv}`,
        'ListenPort = 40000',
        '',
        '[Peer]',
        `PublicKey = ${B.pub}`,
        'AllowedIPs = 10.0.0.2/32',
        'Endpoint = 192.0.2.99:51820',
        '',
        '[Peer]',
        `PublicKey = ${D.pub}`,
        'AllowedIPs = 10.0.0.4/32',
        '',
      ].join('\n'),
    );
    await wgOk(['syncconf', name, conf2]);
    expect(device.calls).not.toContain('removeAllPeers()');
    expect(await wgOk(['show', name, 'dump'])).toBe(
      [
        `${ME.priv}\t${ME.pub}\t40000\toff`,
        `${B.pub}\t${PSK}\t192.0.2.99:51820\t10.0.0.2/32\t0\t1000\t2000\t25`,
        `${D.pub}\t(none)\t(none)\t10.0.0.4/32\t0\t0\t0\toff`,
        '',
      ].join('\n'),
    );
  });

  it('wg reports our negative errno as its error text', async () => {
    const { name, device } = await serve('x', new FakeUapiDevice({ busyPorts: [5353] }));
    const busy = await wg(['set', name, 'listen-port', '5353']);
    expect(busy.code).not.toBe(0);
    expect(busy.stderr).toMatch(/Unable to modify interface: Address already in use/);
    expect(device.listenPort).toBe(0);
  });

  it('wg show all dump and wg show interfaces list our interfaces', async () => {
    const a = await serve('a');
    const b = await serve('b');
    await wgOk(['set', a.name, 'private-key', file('a.key', ME.priv), 'listen-port', '1111', 'peer', B.pub, 'allowed-ips', '10.0.0.2/32']);
    const interfaces = (await wgOk(['show', 'interfaces'])).trim().split(/\s+/);
    expect(interfaces).toEqual(expect.arrayContaining([a.name, b.name]));
    // interfaces come in readdir order; each interface's lines stay together, device line first
    const dump = (await wgOk(['show', 'all', 'dump'])).split('\n').filter((l) => l.startsWith(`${TAG}`));
    const aFirst = dump[0]?.startsWith(`${a.name}\t`);
    const bLine = `${b.name}\t(none)\t(none)\t0\toff`;
    expect(aFirst ? dump.slice(0, 2) : dump.slice(1)).toEqual([
      `${a.name}\t${ME.priv}\t${ME.pub}\t1111\toff`,
      `${a.name}\t${B.pub}\t(none)\t(none)\t10.0.0.2/32\t0\t0\t0\toff`,
    ]);
    expect(aFirst ? dump[2] : dump[0]).toBe(bLine);
    expect(dump).toHaveLength(3);
  });

  it('in a private mount namespace, wg show interfaces / all dump are exactly ours', async () => {
    const dir = join(work, 'private-wireguard');
    const a = await serve('p', new FakeUapiDevice(), dir);
    const b = await serve('q', new FakeUapiDevice(), dir);
    expect(statSync(dir).mode & 0o7777).toBe(0o755);
    const script = `mount --bind ${dir} ${UAPI_DIR} && wg set ${a.name} listen-port 7 && wg show interfaces && echo --- && wg show all dump`;
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], { env: { ...process.env, WG_COLOR_MODE: 'never' } });
      if (child.pid) pids.push(child.pid);
      let text = '';
      child.stdout.on('data', (d) => (text += d.toString()));
      child.stderr.on('data', (d) => (text += d.toString()));
      child.on('error', reject);
      child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`unshare exited ${code}: ${text}`))));
    });
    // wg lists the directory in readdir order, so compare the exact lines without their order
    const [interfaces, dump] = out.split('---\n') as [string, string];
    expect(interfaces).toMatch(/^\S+ \S+\n$/);
    expect(interfaces.trim().split(' ').sort()).toEqual([a.name, b.name].sort());
    expect(dump.endsWith('\n')).toBe(true);
    expect(dump.trimEnd().split('\n').sort()).toEqual([`${a.name}\t(none)\t(none)\t7\toff`, `${b.name}\t(none)\t(none)\t0\toff`].sort());
  });

  it('a stale socket left by a killed daemon is replaced, and wg then reaches the new server', async () => {
    const name = ifname('z');
    const path = `${UAPI_DIR}/${name}.sock`;
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('ready'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    if (child.pid) pids.push(child.pid);
    await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(lstatSync(path).isSocket()).toBe(true);
    const { device } = await serve('z');
    await wgOk(['set', name, 'listen-port', '2222']);
    expect(device.listenPort).toBe(2222);
    expect(await wgOk(['show', name, 'listen-port'])).toBe('2222\n');
  });

  it('a second server for a live name fails with "unix socket in use" and wg keeps talking to the first', async () => {
    const { name } = await serve('l');
    await expect(startUapiServer(name, new FakeUapiDevice())).rejects.toThrow(/unix socket in use/);
    expect(await wgOk(['show', name, 'dump'])).toBe('(none)\t(none)\t0\toff\n');
  });
});
