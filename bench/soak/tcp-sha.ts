/**
 * A TCP transfer whose integrity is checked end to end: the sender streams N bytes of deterministic
 * pseudo-random data (AES-128-CTR keystream of a seed) and prints their SHA-256; the receiver hashes
 * everything it gets until EOF and prints its SHA-256. Equal hashes = every byte arrived, in order.
 *
 *   node dist/bench/soak/tcp-sha.js serve --listen 10.234.0.2:5201        # one connection, then exit
 *   node dist/bench/soak/tcp-sha.js send --connect 10.234.0.2:5201 --bytes 100000000 [--seed 1]
 *
 * Each prints one JSON line: {bytes, sha256, ms, mbitPerS}.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { createConnection, createServer, type Socket } from 'node:net';
import { parseArgs } from 'node:util';

const CHUNK = 256 * 1024;

function hostPort(text: string | undefined, what: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(text ?? '');
  if (!m) throw new Error(`--${what}: want ADDRESS:PORT (got ${JSON.stringify(text)})`);
  return { host: m[1]!, port: Number(m[2]) };
}

function result(bytes: number, hash: string, started: number): string {
  const ms = performance.now() - started;
  return `${JSON.stringify({ bytes, sha256: hash, ms: Math.round(ms), mbitPerS: +((bytes * 8) / 1e6 / (ms / 1000)).toFixed(1) })}\n`;
}

async function serve(listen: { host: string; port: number }): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = createServer((sock: Socket) => {
      server.close();
      const hash = createHash('sha256');
      let bytes = 0;
      const started = performance.now();
      sock.on('data', (d: Buffer) => {
        bytes += d.length;
        hash.update(d);
      });
      sock.on('end', () => {
        process.stdout.write(result(bytes, hash.digest('hex'), started));
        sock.end();
        resolve();
      });
      sock.on('error', reject);
    });
    server.on('error', reject);
    server.listen(listen.port, listen.host, () => process.stdout.write(`listening on ${listen.host}:${listen.port}\n`));
  });
}

async function send(to: { host: string; port: number }, total: number, seed: number): Promise<void> {
  const key = Buffer.alloc(16);
  key.writeUInt32BE(seed >>> 0, 0);
  const keystream = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(CHUNK);
  const hash = createHash('sha256');
  const sock = createConnection({ host: to.host, port: to.port, noDelay: false });
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve());
    sock.once('error', reject);
  });
  const started = performance.now();
  let sent = 0;
  while (sent < total) {
    const n = Math.min(CHUNK, total - sent);
    const chunk = keystream.update(n === CHUNK ? zeros : zeros.subarray(0, n));
    hash.update(chunk);
    sent += n;
    if (!sock.write(chunk)) await new Promise<void>((resolve) => sock.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.end(() => resolve());
  });
  // wait for the receiver to close its side: all data was read
  await new Promise<void>((resolve) => {
    if (sock.readableEnded) return resolve();
    sock.once('close', () => resolve());
    sock.resume();
  });
  process.stdout.write(result(sent, hash.digest('hex'), started));
}

async function main(): Promise<void> {
  const [mode, ...rest] = process.argv.slice(2);
  const { values } = parseArgs({ args: rest, options: { listen: { type: 'string' }, connect: { type: 'string' }, bytes: { type: 'string', default: '1000000' }, seed: { type: 'string', default: '1' } }, strict: true });
  if (mode === 'serve') return serve(hostPort(values.listen, 'listen'));
  if (mode === 'send') {
    const bytes = Number(values.bytes);
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new Error(`--bytes: ${JSON.stringify(values.bytes)} is not a byte count`);
    return send(hostPort(values.connect, 'connect'), bytes, Number(values.seed) || 1);
  }
  throw new Error('usage: tcp-sha serve --listen ADDR:PORT | send --connect ADDR:PORT --bytes N [--seed S]');
}

main().catch((err: unknown) => {
  process.stderr.write(`tcp-sha: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
});
