/**
 * Micro-benchmark of the crypto providers: ops/s of X25519, BLAKE2s hash, HMAC, MAC, and
 * ChaCha20-Poly1305 seal/open at 64/512/1420 bytes, each through the prepared-key path (`aead()`,
 * what the data path uses) and the one-shot path (`seal`/`open`, what the handshake uses).
 *
 *   npm run build:ts && node dist/bench/crypto-micro.js [--ms 400] [--json]
 *
 * Each case runs a short warm-up, then reports the best of five windows of the time budget.
 */
import { randomBytes } from 'node:crypto';
import { nodeCrypto } from '../src/noise/crypto-node.js';
import { nobleCrypto } from '../src/noise/crypto-noble.js';
import type { CryptoProvider } from '../src/noise/crypto.js';

interface Result {
  provider: string;
  operation: string;
  opsPerSecond: number;
  megabytesPerSecond?: number;
}

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name}: expected a positive number, got ${process.argv[i + 1]}`);
  return v;
}

const BUDGET_MS = option('--ms', 400);
const JSON_OUTPUT = process.argv.includes('--json');
const bytes = (n: number) => new Uint8Array(randomBytes(n));

let sink = 0; // keeps results alive so the work is not optimized away

/**
 * Ops/s of `fn`: the best of 5 equal windows within the budget, so a burst of load from other
 * processes on a shared machine lowers one window rather than the figure.
 */
function measure(fn: () => Uint8Array | null): number {
  const warmUntil = performance.now() + Math.min(100, BUDGET_MS / 4);
  let batch = 1;
  while (performance.now() < warmUntil) {
    for (let i = 0; i < batch; i++) sink ^= fn()?.length ?? 0;
    batch *= 2;
  }
  const windowMs = BUDGET_MS / 5;
  let best = 0;
  for (let w = 0; w < 5; w++) {
    let ops = 0;
    const start = performance.now();
    let elapsed = 0;
    while (elapsed < windowMs) {
      for (let i = 0; i < 8; i++) sink ^= fn()?.length ?? 0;
      ops += 8;
      elapsed = performance.now() - start;
    }
    best = Math.max(best, (ops * 1000) / elapsed);
  }
  return best;
}

function run(c: CryptoProvider): Result[] {
  const out: Result[] = [];
  const add = (operation: string, fn: () => Uint8Array | null, size?: number) => {
    const opsPerSecond = measure(fn);
    const r: Result = { provider: c.name, operation, opsPerSecond };
    if (size !== undefined) r.megabytesPerSecond = (opsPerSecond * size) / 1e6;
    out.push(r);
    if (!JSON_OUTPUT) {
      const mb = r.megabytesPerSecond === undefined ? '' : `  ${r.megabytesPerSecond.toFixed(1).padStart(8)} MB/s`;
      console.log(`${c.name.padEnd(6)} ${operation.padEnd(22)} ${Math.round(opsPerSecond).toLocaleString('en-US').padStart(12)} ops/s${mb}`);
    }
  };

  const priv = bytes(32);
  const pub = c.publicKey(bytes(32));
  const key = bytes(32);
  const ad = bytes(32);
  add('dh', () => c.dh(priv, pub));
  add('publicKey', () => c.publicKey(priv));
  add('hash 32+32', () => c.hash(key, ad));
  add('hash 1420', (() => { const d = bytes(1420); return () => c.hash(d); })(), 1420);
  add('hmac 32', () => c.hmac(key, ad));
  add('mac 116', (() => { const d = bytes(116); return () => c.mac(key, d); })());
  add('xseal 16 (cookie)', (() => { const n = bytes(24); const d = bytes(16); return () => c.xseal(key, n, d, ad); })());
  for (const size of [64, 512, 1420]) {
    const pt = bytes(size);
    const aead = c.aead(key);
    let counter = 0;
    add(`aead.seal ${size}`, () => aead.seal(counter++, pt), size);
    const sealed = aead.seal(7, pt);
    add(`aead.open ${size}`, () => aead.open(7, sealed), size);
    add(`seal ${size} (one-shot)`, () => c.seal(key, counter++, pt, ad), size);
    const sealedAd = c.seal(key, 9, pt, ad);
    add(`open ${size} (one-shot)`, () => c.open(key, 9, sealedAd, ad), size);
  }
  return out;
}

function main(): void {
  if (!JSON_OUTPUT) console.log(`node ${process.version}, ${BUDGET_MS} ms per case`);
  const results = [...run(nodeCrypto), ...run(nobleCrypto)];
  if (JSON_OUTPUT) console.log(JSON.stringify({ node: process.version, budgetMs: BUDGET_MS, results }, null, 2));
  if (sink === 0.5) console.log(''); // never true; reads the sink
}

main();
