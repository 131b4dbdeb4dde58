/**
 * Log hygiene and the service-manager channel, without root:
 *   - pino's redact paths censor key, secret and proxy fields; the SecretScrubber catches a secret
 *     that reached a log line anyway (in base64, base64url or hex) and counts it;
 *   - sdNotify (the native addon) delivers one datagram to a path or abstract socket a python3
 *     listener binds, with our credentials; SystemdNotifier is silent without NOTIFY_SOCKET and warns
 *     once when nobody listens.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, SecretScrubber, type Logger } from '../../../src/log.js';
import { sdNotify } from '../../../src/native.js';
import { SystemdNotifier } from '../../../src/cli/run.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'kso-logs-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Logs through createLogger into a file and returns the lines. */
function logged(fn: (log: ReturnType<typeof createLogger>) => void, scrubber?: SecretScrubber): string[] {
  const path = join(dir, `log-${randomBytes(4).toString('hex')}.json`);
  const fd = openSync(path, 'w');
  try {
    fn(createLogger({ level: 'trace', destination: fd, ...(scrubber ? { scrubber } : {}) }));
  } finally {
    closeSync(fd);
  }
  return readFileSync(path, 'utf8').trim().split('\n');
}

describe('log redaction', () => {
  it('censors key, secret and proxy fields at the top level and one level down', () => {
    const key = randomBytes(32).toString('base64');
    const [line] = logged((log) =>
      log.info(
        {
          privateKey: key,
          presharedKey: key,
          clusterSecret: key,
          http_proxy: 'http://u:pw-123456@proxy:3128',
          proxy: { credentials: 'u:pw-123456' },
          settings: { clusterSecret: key, discovery: { proxy: { https_proxy: 'http://u:pw-123456@p:1' } } },
          wireguard: { privateKey: key, peers: [{ presharedKey: key }] },
        },
        'hello',
      ),
    );
    expect(line).not.toContain(key);
    expect(line).not.toContain('pw-123456');
    const rec = JSON.parse(line!) as Record<string, unknown>;
    expect(rec.privateKey).toBe('[redacted]');
    expect(rec.http_proxy).toBe('[redacted]');
    expect((rec.proxy as Record<string, unknown>).credentials).toBe('[redacted]');
    expect((rec.settings as Record<string, unknown>).discovery).toEqual({ proxy: '[redacted]' });
  });

  it('scrubs a registered secret from any line in every encoding, and counts each catch', () => {
    const secret = randomBytes(32);
    const scrubber = new SecretScrubber();
    scrubber.add(secret);
    scrubber.add('pw-proxy-987');
    scrubber.add('abc'); // too short to scrub safely: ignored
    const lines = logged((log) => {
      log.info(`message with ${secret.toString('base64')} inside`);
      log.warn({ note: `hex ${secret.toString('hex')}`, url: `b64url ${secret.toString('base64url')}` }, 'fields');
      log.error({ err: 'connect http://me:pw-proxy-987@proxy failed' }, 'proxy');
      log.info('abc is a fine word');
    }, scrubber);
    const all = lines.join('\n');
    for (const form of ['base64', 'hex', 'base64url'] as const) expect(all).not.toContain(secret.toString(form));
    expect(all).not.toContain('pw-proxy-987');
    expect(all).toContain('abc is a fine word');
    expect(lines.map((l) => JSON.parse(l) as unknown)).toHaveLength(4); // still JSON
    expect(scrubber.hits).toBe(4);
  });

  it('leaves clean lines alone and counts nothing', () => {
    const scrubber = new SecretScrubber();
    scrubber.add(randomBytes(32));
    const lines = logged((log) => log.info({ peer: 'peer(abcd…wxyz)' }, 'peer state changed'), scrubber);
    expect((JSON.parse(lines[0]!) as { peer: string }).peer).toBe('peer(abcd…wxyz)');
    expect(scrubber.hits).toBe(0);
  });
});

/** A python3 datagram listener printing each message with the sender's pid (SO_PASSCRED). */
function listen(address: string): Promise<{ child: ChildProcess; messages: () => { pid: number; text: string }[] }> {
  const code = `
import json, socket, struct, sys
a = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\\0" + a[1:] if a.startswith("@") else a)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print("ready", flush=True)
while True:
    msg, anc, flags, addr = s.recvmsg(4096, socket.CMSG_SPACE(12))
    pid = [struct.unpack("iII", d[:12])[0] for (l, t, d) in anc if t == socket.SCM_CREDENTIALS]
    print(json.dumps({"pid": pid[0] if pid else None, "text": msg.decode()}), flush=True)
`;
  const child = spawn('/usr/bin/python3', ['-u', '-c', code, address], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const messages = () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { pid: number; text: string });
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const check = (): void => {
      if (out.includes('ready')) return resolve({ child, messages });
      if (Date.now() - started > 10_000 || child.exitCode !== null) return reject(new Error(`python3 listener did not start: ${out}`));
      setTimeout(check, 20);
    };
    check();
  });
}

async function until<T>(fn: () => T | undefined, ms = 5000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() - started > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('sd_notify', () => {
  it('sends one datagram to a socket path, from this process', async () => {
    const path = join(dir, 'notify.sock');
    const l = await listen(path);
    try {
      expect(sdNotify(path, 'READY=1\nSTATUS=meshed')).toBe('READY=1\nSTATUS=meshed'.length);
      const m = await until(() => l.messages()[0]);
      expect(m).toEqual({ pid: process.pid, text: 'READY=1\nSTATUS=meshed' });
    } finally {
      l.child.kill();
    }
  });

  it('reaches an abstract socket named with @', async () => {
    const name = `@kso-notify-${process.pid}-${randomBytes(3).toString('hex')}`;
    const l = await listen(name);
    try {
      sdNotify(name, 'READY=1');
      expect((await until(() => l.messages()[0])).text).toBe('READY=1');
    } finally {
      l.child.kill();
    }
  });

  it('throws with the errno name when nobody listens, and refuses a relative path', () => {
    expect(() => sdNotify(join(dir, 'nobody.sock'), 'READY=1')).toThrow(/sendto failed: No such file or directory \(ENOENT\)/);
    expect(() => sdNotify('relative.sock', 'READY=1')).toThrow('sdNotify: path must be absolute or start with @ for an abstract socket, got "relative.sock"');
    expect(() => sdNotify('/x', 'A'.repeat(5000))).toThrow(/text is 5000 bytes, at most 4096 allowed/);
  });

  it('SystemdNotifier: silent without NOTIFY_SOCKET, one warning when the socket is gone, STATUS only on change', async () => {
    const warnings: unknown[] = [];
    const log = { warn: (o: unknown) => warnings.push(o) } as unknown as Logger;
    const sent: string[] = [];
    const none = new SystemdNotifier(log, {}, (_p, t) => (sent.push(t), t.length));
    expect(none.notify({ READY: 1 })).toBe(false);
    expect(sent).toEqual([]);

    const fake = new SystemdNotifier(log, { NOTIFY_SOCKET: '/run/x.sock' }, (p, t) => (sent.push(`${p} ${t}`), t.length));
    expect(fake.notify({ READY: 1, MAINPID: 42 })).toBe(true);
    fake.status('1/2 peers up');
    fake.status('1/2 peers up');
    fake.status('2/2 peers up');
    expect(sent).toEqual(['/run/x.sock READY=1\nMAINPID=42', '/run/x.sock STATUS=1/2 peers up', '/run/x.sock STATUS=2/2 peers up']);

    const gone = new SystemdNotifier(log, { NOTIFY_SOCKET: join(dir, 'gone.sock') });
    expect(gone.notify({ READY: 1 })).toBe(false);
    expect(gone.notify({ STATUS: 'x' })).toBe(false);
    expect(warnings).toHaveLength(1);
    expect(JSON.stringify(warnings[0])).toContain('ENOENT');
  });
});
