/**
 * What one small operation costs when it runs after the thread slept (cold caches) against right after
 * itself (warm): the evidence behind keep-warm (src/device/keep-warm.ts). Each case is called 20,000
 * times first (so V8 has compiled it), then per round: sleep --gap-ms, time one call (cold), time a
 * second call (warm). Medians over --rounds. With --spin, the gap is a busy loop instead of a sleep
 * (cold there too means eviction by other work, not the CPU's sleep state).
 *
 *   npm run build:ts && node dist/bench/cold-ops.js [--gap-ms 20] [--rounds 40] [--spin]
 *
 * The timer (process.hrtime.bigint) costs ~0.4 µs itself; it is in both columns.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { bestCrypto } from '../src/noise/crypto-native.js';
import { AllowedIps, parsePrefix, parseIp } from '../src/noise/allowed-ips.js';

const { values } = parseArgs({
  options: {
    'gap-ms': { type: 'string', default: '20' },
    rounds: { type: 'string', default: '40' },
    spin: { type: 'boolean', default: false },
  },
  strict: true,
});
const gapMs = Number(values['gap-ms']);
const rounds = Number(values.rounds);
if (!(gapMs >= 0 && gapMs <= 10_000) || !Number.isInteger(rounds) || rounds < 3 || rounds > 10_000) {
  process.stderr.write(`cold-ops: --gap-ms must be 0..10000 and --rounds 3..10000, got ${JSON.stringify(values['gap-ms'])} and ${JSON.stringify(values.rounds)}\n`);
  process.exit(2);
}

const aead = bestCrypto().aead(new Uint8Array(32).fill(7));
const sealBuf = new Uint8Array(16 + 84 + 16);
let counter = 0;
const trie = new AllowedIps<number>();
for (let i = 0; i < 100; i++) trie.insert(parsePrefix(`10.${i}.0.0/16`), i);
const dst = parseIp('10.42.1.2');
const buf = Buffer.alloc(100);
const u8 = new Uint8Array(100);
const ab = new ArrayBuffer(128);
const map = new Map<object, number[]>();
const key = {};

const cases: Record<string, () => unknown> = {
  'performance.now()': () => performance.now(),
  'Date.now()': () => Date.now(),
  'Buffer subarray': () => buf.subarray(16, 20),
  'Uint8Array subarray': () => u8.subarray(16, 20),
  'new Uint8Array(ab, 0, 64)': () => new Uint8Array(ab, 0, 64),
  'fill(0, 1, 4)': () => u8.fill(0, 1, 4),
  'Map get/set/clear': () => {
    const p = map.get(key);
    if (p) p.push(1);
    else map.set(key, [1]);
    map.clear();
  },
  'allowed-IPs lookup (100 prefixes)': () => trie.lookup(dst),
  [`AEAD seal 84 B (${bestCrypto().name})`]: () => aead.sealInPlace!(counter++, sealBuf, 16, 84),
};

for (const f of Object.values(cases)) for (let i = 0; i < 20_000; i++) f();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const spin = (ms: number): void => {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    /* busy */
  }
};
const cold: Record<string, number[]> = {};
const warm: Record<string, number[]> = {};
for (let r = 0; r < rounds; r++) {
  for (const [name, f] of Object.entries(cases)) {
    if (values.spin) spin(gapMs);
    else await sleep(gapMs);
    const t0 = process.hrtime.bigint();
    f();
    const t1 = process.hrtime.bigint();
    f();
    const t2 = process.hrtime.bigint();
    (cold[name] ??= []).push(Number(t1 - t0) / 1000);
    (warm[name] ??= []).push(Number(t2 - t1) / 1000);
  }
}
const median = (xs: number[]): number => xs.sort((a, b) => a - b)[xs.length >> 1]!;
process.stdout.write(`node ${process.version}, ${values.spin ? 'busy loop' : 'sleep'} of ${gapMs} ms before each cold call, medians of ${rounds}\n\n`);
process.stdout.write('| operation | cold µs | warm µs |\n| --- | ---: | ---: |\n');
for (const name of Object.keys(cases)) process.stdout.write(`| ${name} | ${median(cold[name]!).toFixed(1)} | ${median(warm[name]!).toFixed(2)} |\n`);
