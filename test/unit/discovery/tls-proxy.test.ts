/**
 * TLS with certificates made here by openssl (CA + server cert with SAN 127.0.0.1/localhost), and
 * a real HTTP CONNECT proxy (tinyproxy, started here on 127.0.0.1) in front of it. The CA exists
 * only in the extra CA file handed to the client, like a corporate MITM proxy's CA.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DiscoveryServer } from '../../../src/discovery-server/index.js';
import { cleanup, eventually, localAffiliate, startServer, testClient } from './support.js';

let dir: string;
let caFile: string;
let server: DiscoveryServer;
let proxy: ChildProcess | undefined;
let proxyPort: number;
let proxyLog: string;
const stoppable: Array<{ stop(): Promise<void> } | undefined> = [];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

function connectLines(): string[] {
  if (!existsSync(proxyLog)) return [];
  return readFileSync(proxyLog, 'utf8')
    .split('\n')
    .filter((l) => l.includes('CONNECT 127.0.0.1:'));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ksd-tls-'));
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=ksd test CA');
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  writeFileSync(
    join(dir, 'ext.cnf'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n',
  );
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf');
  caFile = join(dir, 'ca.crt');
  server = await startServer({ tlsCert: join(dir, 'server.crt'), tlsKey: join(dir, 'server.key'), rateLimit: false });

  proxyPort = await freePort();
  proxyLog = join(dir, 'tinyproxy.log');
  const conf = join(dir, 'tinyproxy.conf');
  writeFileSync(
    conf,
    [
      `Port ${proxyPort}`,
      'Listen 127.0.0.1',
      'Timeout 60',
      'Allow 127.0.0.1',
      `ConnectPort ${server.port()}`,
      `LogFile "${proxyLog}"`,
      'LogLevel Connect',
      'MaxClients 50',
      '',
    ].join('\n'),
  );
  proxy = spawn('tinyproxy', ['-d', '-c', conf], { stdio: 'ignore' });
  await eventually(
    () =>
      new Promise<void>((resolve, reject) => {
        const s = createServer();
        s.once('error', () => resolve()); // port taken: tinyproxy is listening
        s.listen(proxyPort, '127.0.0.1', () => s.close(() => reject(new Error('tinyproxy not listening yet'))));
      }),
    5000,
  );
});

// the server is shared by the tests of this file: each test gets its own cluster
let cluster = 0;
beforeEach(() => {
  cluster++;
});

afterEach(async () => {
  await cleanup(...stoppable.splice(0));
});

afterAll(async () => {
  if (proxy?.pid !== undefined && proxy.exitCode === null) {
    proxy.kill('SIGTERM');
    await new Promise((r) => proxy!.once('exit', r));
  }
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function tlsClient(id: string, extra: Parameters<typeof testClient>[2] = {}) {
  const c = testClient(server.port(), id, { endpoint: `https://127.0.0.1:${server.port()}/`, clusterId: `tls-${cluster}`, ...extra });
  stoppable.push(c);
  c.setLocalAffiliate(localAffiliate(id));
  return c;
}

describe('TLS (certificates made by openssl in this test)', () => {
  it('two clients see each other over TLS with the extra CA file', async () => {
    const a = tlsClient('tls-a', { caFiles: [caFile] });
    const b = tlsClient('tls-b', { caFiles: [caFile] });
    a.start();
    b.start();
    await eventually(() => {
      expect(a.affiliates().map((x) => x.nodeId)).toEqual(['tls-b']);
      expect(b.affiliates().map((x) => x.nodeId)).toEqual(['tls-a']);
    });
    expect(connectLines()).toEqual([]);
  });

  it('without the CA: a clear error naming the fix, and never connected', async () => {
    const a = tlsClient('tls-untrusted');
    a.start();
    await eventually(() =>
      expect(a.lastError()).toMatch(new RegExp(`TLS certificate of 127\\.0\\.0\\.1:${server.port()} is not trusted .*caFiles / --ca-file`)),
    );
    expect(a.state()).not.toBe('connected');
    expect(a.counters().hellos).toBe(0);
  });
});

describe('through an HTTP CONNECT proxy (tinyproxy)', () => {
  it('https_proxy from the environment, TLS server trusted only through the extra CA file', async () => {
    const before = connectLines().length;
    const a = tlsClient('px-a', { caFiles: [caFile], env: { https_proxy: `http://127.0.0.1:${proxyPort}` } });
    const b = tlsClient('px-b', { caFiles: [caFile], env: { HTTPS_PROXY: `http://127.0.0.1:${proxyPort}` } });
    a.start();
    b.start();
    await eventually(() => {
      expect(a.affiliates().map((x) => x.nodeId)).toEqual(['px-b']);
      expect(b.affiliates().map((x) => x.nodeId)).toEqual(['px-a']);
    });
    const lines = connectLines().slice(before);
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines.every((l) => l.includes(`CONNECT 127.0.0.1:${server.port()}`))).toBe(true);
    // the server saw the proxy's connection, which is also on 127.0.0.1
    expect(a.publicIp()).toBe('127.0.0.1');
  });

  it('the same keys in the config win over the environment (grpc_proxy here; env points nowhere)', async () => {
    const dead = await freePort();
    const before = connectLines().length;
    const a = tlsClient('px-cfg', {
      caFiles: [caFile],
      env: { https_proxy: `http://127.0.0.1:${dead}` },
      proxy: { grpc_proxy: `http://127.0.0.1:${proxyPort}` },
    });
    a.start();
    await eventually(() => expect(a.state()).toBe('connected'));
    expect(connectLines().length).toBeGreaterThan(before);
  });

  it('no_proxy bypass: the target matches no_proxy, so the (dead) proxy is never used', async () => {
    const dead = await freePort();
    const before = connectLines().length;
    const a = tlsClient('px-bypass', {
      caFiles: [caFile],
      env: { https_proxy: `http://127.0.0.1:${dead}`, no_proxy: 'localhost,127.0.0.0/8' },
    });
    a.start();
    await eventually(() => expect(a.state()).toBe('connected'));
    expect(connectLines().length).toBe(before);
  });

  it('through the proxy without the CA: a clear TLS error', async () => {
    const a = tlsClient('px-untrusted', { env: { https_proxy: `http://127.0.0.1:${proxyPort}` } });
    a.start();
    await eventually(() => expect(a.lastError()).toMatch(/TLS certificate of 127\.0\.0\.1:\d+ via proxy http:\/\/127\.0\.0\.1:\d+ is not trusted .*--ca-file/));
    expect(a.state()).not.toBe('connected');
  });

  it('a proxy that refuses the CONNECT: a clear error naming the proxy', async () => {
    const a = testClient(await freePort(), 'px-refused', {
      endpoint: `https://127.0.0.1:${server.port() + 1}/`,
      caFiles: [caFile],
      env: { https_proxy: `http://127.0.0.1:${proxyPort}` },
    });
    stoppable.push(a);
    a.start();
    await eventually(() =>
      expect(a.lastError()).toMatch(/cannot reach 127\.0\.0\.1:\d+ via proxy http:\/\/127\.0\.0\.1:\d+: the proxy refused or failed the CONNECT/),
    );
    expect(a.state()).not.toBe('connected');
  });
});
