/**
 * The UAPI socket shell in a temporary directory (spec/wireguard.md §11.1, §10): modes, stale and
 * live sockets, several connections at once, close() and the "socket file gone" signal.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkInterfaceName, startUapiServer, type UapiServer } from '../../../src/uapi/server.js';
import { FakeUapiDevice } from '../../support/fake-uapi-device.js';

let base: string;
const servers: UapiServer[] = [];
const children: ChildProcess[] = [];
const others: Server[] = [];
const pids: number[] = [];

beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'ksu-uapi-'));
});

afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const o of others.splice(0)) o.close();
  for (const pid of pids.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  rmSync(base, { recursive: true, force: true });
});

async function start(ifname: string, device = new FakeUapiDevice(), extra: { onGone?: () => void; dir?: string } = {}): Promise<UapiServer> {
  const server = await startUapiServer(ifname, device, { dir: extra.dir ?? join(base, 'wireguard'), ...(extra.onGone ? { onGone: extra.onGone } : {}) });
  servers.push(server);
  return server;
}

/** Sends `request`, half-closes, and collects everything until the server closes. */
function exchange(path: string, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ path });
    let out = '';
    sock.on('data', (d) => (out += d.toString()));
    sock.on('error', reject);
    sock.on('close', () => resolve(out));
    sock.end(request);
  });
}

/** Sends `request` and resolves with the reply once `done(reply)` holds; the connection stays open. */
function openConnection(path: string): Promise<{ send(text: string, until: RegExp): Promise<string>; close(): void; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ path });
    let out = '';
    let waiter: { until: RegExp; resolve: (s: string) => void } | null = null;
    const closed = new Promise<void>((r) => sock.on('close', () => r()));
    sock.on('data', (d) => {
      out += d.toString();
      if (waiter && waiter.until.test(out)) {
        const w = waiter;
        waiter = null;
        const got = out;
        out = '';
        w.resolve(got);
      }
    });
    sock.on('error', reject);
    sock.on('connect', () =>
      resolve({
        send: (text, until) =>
          new Promise((res) => {
            waiter = { until, resolve: res };
            sock.write(text);
          }),
        close: () => sock.destroy(),
        closed,
      }),
    );
  });
}

function waitFor(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (cond()) return resolve();
      if (Date.now() - started > timeoutMs) return reject(new Error('condition not met in time'));
      setTimeout(tick, 20);
    };
    tick();
  });
}

describe('startUapiServer', () => {
  it('creates the directory 0755 and the socket 0700, and answers get and set', async () => {
    const dev = new FakeUapiDevice();
    const server = await start('ksu0', dev);
    expect(server.path).toBe(join(base, 'wireguard', 'ksu0.sock'));
    expect(statSync(join(base, 'wireguard')).mode & 0o7777).toBe(0o755);
    const st = lstatSync(server.path);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o7777).toBe(0o700);
    expect(await exchange(server.path, 'set=1\nlisten_port=12345\n\nget=1\n\n')).toBe('errno=0\n\nlisten_port=12345\nerrno=0\n\n');
    expect(dev.listenPort).toBe(12345);
  });

  it('gets the same modes whatever the process umask is', async () => {
    const saved = process.umask(0o000);
    try {
      const server = await start('ksu0');
      expect(statSync(join(base, 'wireguard')).mode & 0o7777).toBe(0o755);
      expect(lstatSync(server.path).mode & 0o7777).toBe(0o700);
    } finally {
      process.umask(saved);
    }
    const saved2 = process.umask(0o077);
    try {
      const server = await start('ksu0b', new FakeUapiDevice(), { dir: join(base, 'strict') });
      expect(statSync(join(base, 'strict')).mode & 0o7777).toBe(0o755);
      expect(lstatSync(server.path).mode & 0o7777).toBe(0o700);
    } finally {
      process.umask(saved2);
    }
  });

  it('leaves no temporary entries in the directory', async () => {
    await start('ksu0');
    expect(readdirSync(join(base, 'wireguard'))).toEqual(['ksu0.sock']);
  });

  it('refuses a name another live server owns ("unix socket in use")', async () => {
    const first = await start('ksu1');
    await expect(start('ksu1')).rejects.toThrow(/unix socket in use/);
    // the first one is untouched
    expect(await exchange(first.path, 'get=1\n\n')).toBe('errno=0\n\n');
  });

  it('replaces a stale socket whose daemon died', async () => {
    const dir = join(base, 'wireguard');
    mkdirSync(dir);
    const path = join(dir, 'ksu2.sock');
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('ready'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(lstatSync(path).isSocket()).toBe(true);
    const staleIno = lstatSync(path).ino;
    const server = await start('ksu2');
    expect(lstatSync(path).ino).not.toBe(staleIno);
    expect(await exchange(server.path, 'get=1\n\n')).toBe('errno=0\n\n');
  });

  it('replaces a leftover regular file', async () => {
    const dir = join(base, 'wireguard');
    mkdirSync(dir);
    writeFileSync(join(dir, 'ksu3.sock'), 'junk');
    const server = await start('ksu3');
    expect(lstatSync(server.path).isSocket()).toBe(true);
  });

  it('close() unlinks the socket, is idempotent, and drops open connections', async () => {
    const server = await start('ksu4');
    const conn = await openConnection(server.path);
    expect(await conn.send('get=1\n\n', /\n\n$/)).toBe('errno=0\n\n');
    await Promise.all([server.close(), server.close()]);
    expect(existsSync(server.path)).toBe(false);
    await conn.closed;
  });

  it('serves connections concurrently: a half-sent request does not block another client', async () => {
    const dev = new FakeUapiDevice();
    const server = await start('ksu5', dev);
    const slow = await openConnection(server.path);
    const fast = await openConnection(server.path);
    void slow.send('set=1\nfwmark=77\n', /never/);
    expect(await fast.send('get=1\n\n', /\n\n$/)).toBe('errno=0\n\n');
    const finished = slow.send('\n', /\n\n$/);
    expect(await finished).toBe('errno=0\n\n');
    expect(await fast.send('get=1\n\n', /\n\n$/)).toBe('fwmark=77\nerrno=0\n\n');
    // several requests on one connection, and a bad one in between
    expect(await fast.send('set=1\nnope\n\n', /\n\n$/)).toBe('errno=-71\n\n');
    expect(await fast.send('get=1\n\n', /\n\n$/)).toBe('fwmark=77\nerrno=0\n\n');
    slow.close();
    fast.close();
  });

  it('closes a connection without a reply on an unknown operation', async () => {
    const server = await start('ksu6');
    expect(await exchange(server.path, 'hello=1\n\nget=1\n\n')).toBe('');
  });

  it('signals onGone when the socket file is deleted', async () => {
    let gone = 0;
    const server = await start('ksu7', new FakeUapiDevice(), { onGone: () => gone++ });
    rmSync(server.path);
    await waitFor(() => gone === 1);
    await server.close();
    expect(gone).toBe(1);
  });

  it('signals onGone when the socket file is replaced, and close() then leaves the replacement alone', async () => {
    let gone = 0;
    const server = await start('ksu8', new FakeUapiDevice(), { onGone: () => gone++ });
    const otherPath = join(base, 'other.sock');
    const other = createServer();
    others.push(other);
    await new Promise<void>((r) => other.listen(otherPath, () => r()));
    renameSync(otherPath, server.path);
    await waitFor(() => gone === 1);
    const replacementIno = lstatSync(server.path).ino;
    await server.close();
    expect(lstatSync(server.path).ino).toBe(replacementIno);
  });

  it('does not signal onGone for its own close or for other files in the directory', async () => {
    let gone = 0;
    const server = await start('ksu9', new FakeUapiDevice(), { onGone: () => gone++ });
    writeFileSync(join(base, 'wireguard', 'unrelated.sock'), 'x');
    rmSync(join(base, 'wireguard', 'unrelated.sock'));
    await new Promise((r) => setTimeout(r, 200));
    await server.close();
    await new Promise((r) => setTimeout(r, 200));
    expect(gone).toBe(0);
  });

  it('rejects bad interface names before touching the filesystem', async () => {
    for (const bad of ['', 'a/b', 'x'.repeat(16), '.', '..', 'a b', 'a:b']) {
      expect(() => checkInterfaceName(bad)).toThrow(/interface name/);
      await expect(startUapiServer(bad, new FakeUapiDevice(), { dir: join(base, 'never') })).rejects.toThrow(/interface name/);
    }
    expect(existsSync(join(base, 'never'))).toBe(false);
    expect(() => checkInterfaceName('x'.repeat(15))).not.toThrow();
  });

  it('serves an inherited listening socket (WG_UAPI_FD) and unlinks it on close', async () => {
    // Process A (plain JS) binds and listens on the path, starts process B with that socket as
    // fd 3 and WG_UAPI_FD=3, and exits without closing it. B runs startUapiServer({ fd }) from the
    // TypeScript sources through a tiny loader (rolldown's transform, already installed by vitest).
    const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
    const rolldown = pathToFileURL(createRequire(import.meta.url).resolve('rolldown/experimental')).href;
    const hooks = join(base, 'hooks.mjs');
    writeFileSync(
      hooks,
      `import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { transformSync } from ${JSON.stringify(rolldown)};
export async function resolve(specifier, context, next) {
  try { return await next(specifier, context); } catch (err) {
    if (/^(\\.|file:)/.test(specifier) && specifier.endsWith('.js')) return next(specifier.slice(0, -3) + '.ts', context);
    throw err;
  }
}
export async function load(url, context, next) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) return next(url, context);
  const path = fileURLToPath(url);
  const out = transformSync(path, readFileSync(path, 'utf8'), {});
  if (out.errors.length) throw new Error(path + ': ' + out.errors.map((e) => e.message).join('; '));
  return { format: 'module', source: out.code, shortCircuit: true };
}
`,
    );
    const register = join(base, 'register.mjs');
    writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
    const dir = join(base, 'wireguard');
    mkdirSync(dir, { mode: 0o755 });
    const path = join(dir, 'ksuf.sock');
    const childB = join(base, 'b.mjs');
    writeFileSync(
      childB,
      `const { startUapiServer } = await import(${JSON.stringify(pathToFileURL(join(repo, 'src/uapi/server.ts')).href)});
const { FakeUapiDevice } = await import(${JSON.stringify(pathToFileURL(join(repo, 'test/support/fake-uapi-device.ts')).href)});
const server = await startUapiServer('ksuf', new FakeUapiDevice(), { dir: ${JSON.stringify(dir)}, fd: Number(process.env.WG_UAPI_FD) });
process.on('SIGTERM', async () => { await server.close(); process.exit(0); });
console.log('ready ' + process.pid);
`,
    );
    const childA = `
const net = require('net'); const { spawn } = require('child_process');
const server = net.createServer().listen(${JSON.stringify(path)}, () => {
  const b = spawn(process.execPath, ['--import', ${JSON.stringify(pathToFileURL(register).href)}, ${JSON.stringify(childB)}],
    { stdio: ['ignore', 'inherit', 'inherit', server._handle.fd], env: { ...process.env, WG_UAPI_FD: '3' } });
  b.unref();
  process.exit(0);
});`;
    const a = spawn(process.execPath, ['-e', childA], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    a.stdout!.on('data', (d) => (output += d.toString()));
    a.stderr!.on('data', (d) => (output += d.toString()));
    await waitFor(() => /ready \d+/.test(output) || /Error/.test(output), 15_000).catch(() => undefined);
    const pid = Number(/ready (\d+)/.exec(output)?.[1]);
    if (pid > 0) pids.push(pid);
    expect(output).toMatch(/^ready \d+\n$/);
    try {
      expect(await exchange(path, 'set=1\nfwmark=5\n\nget=1\n\n')).toBe('errno=0\n\nfwmark=5\nerrno=0\n\n');
    } finally {
      process.kill(pid, 'SIGTERM');
    }
    await waitFor(() => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    });
    expect(existsSync(path)).toBe(false);
  }, 20_000);
});
