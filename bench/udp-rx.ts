/**
 * Receive capacity of the UDP bind: a child process floods a UdpBind on loopback with 1400-byte
 * datagrams (sendmmsg, 64 at a time) for a few seconds; the bind counts what it delivered and the
 * receiving process's CPU. Run once with the native recvmmsg reader and once with dgram alone,
 * alternating, so both see the same host. No root needed; loopback only.
 *
 *   npm run build && node dist/bench/udp-rx.js [--seconds 3] [--rounds 3] [--size 1400]
 *
 * Prints one line per run and the medians; never fails on a number.
 */
import { fork } from 'node:child_process';
import * as dgram from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { UdpBind, socketFd } from '../src/bind/udp-bind.js';
import { tryLoadDatapath } from '../src/native-datapath.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
    size: { type: 'string', default: '1400' },
    sender: { type: 'string' },
  },
  strict: true,
});
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const size = Number(values.size);
for (const [name, v, lo, hi] of [['seconds', seconds, 1, 600], ['rounds', rounds, 1, 50], ['size', size, 1, 65507]] as const) {
  if (!Number.isInteger(v) || v < lo || v > hi) {
    process.stderr.write(`udp-rx: --${name} must be a whole number from ${lo} to ${hi}, got ${JSON.stringify(values[name])}\n`);
    process.exit(2);
  }
}

async function sender(port: number): Promise<void> {
  const addon = tryLoadDatapath();
  if (!addon) throw new Error('udp-rx: the data-path addon is needed for the sender (npm run build:native)');
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const fd = socketFd(sock);
  const batch = new Array<Uint8Array>(64).fill(new Uint8Array(size).fill(1));
  const address = new Uint8Array([127, 0, 0, 1]);
  const end = performance.now() + seconds * 1000;
  let sent = 0;
  await new Promise<void>((resolve) => {
    const loop = (): void => {
      for (let i = 0; i < 50; i++) {
        const n = addon.udpSendBatch(fd, address, port, batch);
        if (n > 0) sent += n;
      }
      if (performance.now() < end) setImmediate(loop);
      else resolve();
    };
    loop();
  });
  process.send!(sent);
  sock.close();
}

interface Run {
  path: 'native' | 'dgram';
  sent: number;
  received: number;
  perSecond: number;
  cores: number;
  usPerDatagram: number;
}

async function receiver(nativeReceive: boolean): Promise<Run> {
  const bind = new UdpBind({ address4: '127.0.0.1', address6: null, nativeReceive });
  const port = await bind.open(0);
  let received = 0;
  bind.onDatagrams((batch) => void (received += batch.length));
  const child = fork(fileURLToPath(import.meta.url), ['--sender', String(port), '--seconds', String(seconds), '--size', String(size)]);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const sent = await new Promise<number>((resolve, reject) => {
    child.once('message', (m) => resolve(Number(m)));
    child.once('exit', (code) => (code ? reject(new Error(`sender exited with ${code}`)) : undefined));
  });
  await new Promise((r) => setTimeout(r, 200)); // drain what is queued
  const cpu = process.cpuUsage(cpu0);
  const secs = (performance.now() - t0) / 1000;
  const path = bind.receivePath;
  await bind.close();
  const busy = (cpu.user + cpu.system) / 1e6;
  return { path, sent, received, perSecond: received / secs, cores: busy / secs, usPerDatagram: received ? (busy * 1e6) / received : 0 };
}

if (values.sender !== undefined) {
  await sender(Number(values.sender));
} else {
  const runs: Run[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const native of [true, false]) {
      const run = await receiver(native);
      runs.push(run);
      process.stdout.write(
        `${run.path.padEnd(6)} sent ${run.sent}, delivered ${run.received} (${(run.perSecond / 1000).toFixed(0)}k/s, ${((100 * run.received) / Math.max(1, run.sent)).toFixed(0)}%), receiver ${run.cores.toFixed(2)} cores, ${run.usPerDatagram.toFixed(2)} µs CPU per datagram\n`,
      );
    }
  }
  const median = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const path of ['native', 'dgram'] as const) {
    const mine = runs.filter((r) => r.path === path);
    if (mine.length === 0) continue;
    process.stdout.write(`median ${path}: ${(median(mine.map((r) => r.perSecond)) / 1000).toFixed(0)}k datagrams/s delivered, ${median(mine.map((r) => r.usPerDatagram)).toFixed(2)} µs CPU per datagram\n`);
  }
}
