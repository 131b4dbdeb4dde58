/**
 * In-process micro-benchmarks of the protocol core, per crypto provider (node, noble, and any other
 * provider this checkout has, e.g. a native one):
 *
 *   - handshakes per second, Noise only: createInitiation + consumeInitiation + createResponse +
 *     consumeResponse + both session splits (handshake.ts, no macs);
 *   - handshakes per second through two DeviceCores: the same plus mac1, index table, keypair
 *     install, and the confirming keepalive the initiator sends and the responder decrypts;
 *   - encapsulate (TUN packet → transport datagram) and decapsulate (datagram → TUN packet) through
 *     two DeviceCores wired in memory, for 64, 512 and 1420-byte IPv4 packets, 32 packets per
 *     handleTunPackets call as a TUN read batch would hand them over;
 *   - allowed-IPs longest-prefix lookups with 10 000 IPv4 and 10 000 IPv6 prefixes;
 *   - the primitives (bench/crypto-micro.js --json), unless --no-primitives.
 *
 *   npm run build:ts && node dist/bench/micro.js [--ms 600] [--rounds 3] [--quick] [--json] [--out DIR] [--no-primitives]
 *
 * Rates are the best of five windows after a warm-up (bench/lib/measure.ts), and the best of
 * `--rounds` rounds spread over the run (on a shared host, load comes and goes). Writes
 * `<out>/<stamp>-micro.json` (default bench/results).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { CryptoProvider } from '../src/noise/crypto.js';
import { AllowedIps, formatPrefix, maskPrefix, type Prefix } from '../src/noise/allowed-ips.js';
import { beginSession, consumeInitiation, consumeResponse, createInitiation, createResponse, precomputeStaticStatic } from '../src/noise/handshake.js';
import { clampPrivateKey } from '../src/noise/keys.js';
import { parseMessage, type InitiationMessage, type ResponseMessage } from '../src/noise/messages.js';
import { tai64n } from '../src/noise/tai64n.js';
import type { Endpoint, Peer } from '../src/noise/device.js';
import { ipv4Packet, link, SimNetwork, type SimNode } from './lib/core-sim.js';
import { bestRate, discoverProviders, randomBytes } from './lib/measure.js';
import { fileStamp, gitHead, REPO_ROOT, RESULTS_DIR } from './lib/paths.js';
import { describeMachine, machineInfo } from './lib/proc.js';

export const PACKET_SIZES = [64, 512, 1420] as const;
const TUN_BATCH = 32;
const CHUNK = 2048;

// ---------------------------------------------------------------------------------------------- handshakes

/** One full Noise IKpsk2 exchange between fixed identities; returns 1 (one handshake). */
function noiseHandshakeStep(c: CryptoProvider): () => number {
  const privA = clampPrivateKey(randomBytes(32));
  const privB = clampPrivateKey(randomBytes(32));
  const a = { privateKey: privA, publicKey: c.publicKey(privA) };
  const b = { privateKey: privB, publicKey: c.publicKey(privB) };
  const ssA = precomputeStaticStatic(c, a.privateKey, b.publicKey)!;
  const ssB = precomputeStaticStatic(c, b.privateKey, a.publicKey)!;
  let index = 1;
  return () => {
    const init = createInitiation(c, a, b.publicKey, ssA, clampPrivateKey(randomBytes(32)), index++, tai64n(Date.now()));
    if (!init) throw new Error('createInitiation failed');
    const im = parseMessage(init.message) as InitiationMessage;
    const consumed = consumeInitiation(c, b, im, (remote) => (Buffer.compare(Buffer.from(remote), Buffer.from(a.publicKey)) === 0 ? { peer: 'a', staticStatic: ssB } : undefined));
    if (typeof consumed === 'string') throw new Error(`consumeInitiation: ${consumed}`);
    const resp = createResponse(c, consumed.consumed, null, clampPrivateKey(randomBytes(32)), index++);
    if (!resp) throw new Error('createResponse failed');
    const rm = parseMessage(resp.message) as ResponseMessage;
    const done = consumeResponse(c, a, init.state, null, rm);
    if (typeof done === 'string') throw new Error(`consumeResponse: ${done}`);
    const ka = beginSession(c, done.chainKey, true);
    const kb = beginSession(c, resp.chainKey, false);
    if (ka.sendKey[0] !== kb.receiveKey[0]) throw new Error('session keys differ');
    return 1;
  };
}

interface Pair {
  net: SimNetwork;
  a: SimNode;
  b: SimNode;
  peerB: Peer;
  confirmed: () => number;
}

function corePair(c: CryptoProvider): Pair {
  const net = new SimNetwork();
  const a = net.add(c, { address: '192.0.2.1', port: 51820 });
  const b = net.add(c, { address: '192.0.2.2', port: 51820 });
  link(a, '10.0.0.1/32', b, '10.0.0.2/32');
  let confirmed = 0;
  b.onEvent = (e) => {
    if (e.kind === 'handshake-complete') confirmed++;
  };
  return { net, a, b, peerB: a.core.getPeer(b.core.getPublicKey()!)!, confirmed: () => confirmed };
}

/** One initiation → response → keepalive through two cores; the clock moves 6 s so no rate rule applies. */
function deviceHandshakeStep(c: CryptoProvider): { step: () => number; check: () => string | null } {
  const p = corePair(c);
  let started = 0;
  return {
    step: () => {
      p.net.clock.advance(6_000);
      p.a.core.sendHandshakeInitiation(p.peerB, false);
      p.net.pump();
      started++;
      return 1;
    },
    check: () => (p.confirmed() === started ? null : `only ${p.confirmed()} of ${started} handshakes were confirmed by the responder`),
  };
}

// ---------------------------------------------------------------------------------------------- data path

export interface DataPathFigure {
  provider: string;
  size: number;
  encapPerSecond: number;
  decapPerSecond: number;
  /** Inner-packet bits per second at those rates. */
  encapGbps: number;
  decapGbps: number;
}

function dataPath(c: CryptoProvider, size: number, budgetMs: number): DataPathFigure {
  const p = corePair(c);
  p.a.core.sendHandshakeInitiation(p.peerB, false);
  p.net.pump();
  if (p.confirmed() !== 1) throw new Error(`${c.name}: handshake did not complete in memory`);
  const packet = ipv4Packet(size, [10, 0, 0, 1], [10, 0, 0, 2]);
  const batch: Uint8Array[] = new Array<Uint8Array>(TUN_BATCH).fill(packet);
  let collected: Uint8Array[] = [];
  p.net.tap = (_from, _to, data) => void collected.push(data);
  const from: Endpoint = p.a.endpoint;
  let encMs = 0;
  let decMs = 0;
  const chunk = (): number => {
    collected = [];
    const t0 = performance.now();
    for (let k = 0; k < CHUNK / TUN_BATCH; k++) p.a.core.handleTunPackets(batch);
    const t1 = performance.now();
    const before = p.b.delivered;
    for (const d of collected) p.b.core.handleDatagram(d, from);
    const t2 = performance.now();
    if (collected.length !== CHUNK || p.b.delivered - before !== CHUNK) {
      throw new Error(`${c.name} ${size} B: ${collected.length} datagrams sent, ${p.b.delivered - before} packets delivered, expected ${CHUNK}`);
    }
    encMs += t1 - t0;
    decMs += t2 - t1;
    return CHUNK;
  };
  // warm-up, then the best of five windows for each direction separately
  const warmUntil = performance.now() + Math.min(200, budgetMs / 4);
  while (performance.now() < warmUntil) chunk();
  let bestEnc = 0;
  let bestDec = 0;
  for (let w = 0; w < 5; w++) {
    encMs = 0;
    decMs = 0;
    let n = 0;
    while (encMs + decMs < budgetMs / 5) n += chunk();
    bestEnc = Math.max(bestEnc, (n * 1000) / encMs);
    bestDec = Math.max(bestDec, (n * 1000) / decMs);
  }
  return { provider: c.name, size, encapPerSecond: bestEnc, decapPerSecond: bestDec, encapGbps: (bestEnc * size * 8) / 1e9, decapGbps: (bestDec * size * 8) / 1e9 };
}

// ---------------------------------------------------------------------------------------------- allowed IPs

export interface AllowedIpsFigure {
  family: 'IPv4' | 'IPv6';
  prefixes: number;
  insertMs: number;
  lookupsPerSecond: number;
  /** Share of lookups that found a peer (half the addresses are drawn inside inserted prefixes). */
  hitShare: number;
}

function allowedIps(family: 'IPv4' | 'IPv6', count: number, budgetMs: number): AllowedIpsFigure {
  const len = family === 'IPv4' ? 4 : 16;
  const [minBits, maxBits] = family === 'IPv4' ? [16, 32] : [48, 128];
  // distinct prefixes (random ones can collide once masked)
  const prefixes: Prefix[] = [];
  const seen = new Set<string>();
  while (prefixes.length < count) {
    const address = randomBytes(len);
    if (family === 'IPv4') address[0] = 10 + (address[0]! % 100);
    else address[0] = 0xfd;
    const p = maskPrefix({ address, bits: minBits + (randomBytes(1)[0]! % (maxBits - minBits + 1)) });
    const k = formatPrefix(p);
    if (seen.has(k)) continue;
    seen.add(k);
    prefixes.push(p);
  }
  const table = new AllowedIps<number>();
  const t0 = performance.now();
  prefixes.forEach((p, i) => table.insert(p, i));
  const insertMs = performance.now() - t0;
  if (table.size !== count) throw new Error(`allowed IPs: ${table.size} prefixes in the table, expected ${count}`);
  // half the probes inside a random inserted prefix (host bits randomised), half anywhere
  const probes: Uint8Array[] = [];
  for (let i = 0; i < 65536; i++) {
    const r = randomBytes(len);
    if (i % 2 === 0) {
      const p = prefixes[i % prefixes.length]!;
      for (let bit = 0; bit < p.bits; bit++) {
        const byte = bit >> 3;
        const mask = 0x80 >> (bit & 7);
        r[byte] = (r[byte]! & ~mask) | (p.address[byte]! & mask);
      }
    }
    probes.push(r);
  }
  let hits = 0;
  let looked = 0;
  let cursor = 0;
  const lookupsPerSecond = bestRate(() => {
    for (let i = 0; i < 1024; i++) {
      if (table.lookup(probes[cursor]!) !== undefined) hits++;
      cursor = (cursor + 1) & 65535;
    }
    looked += 1024;
    return 1024;
  }, budgetMs);
  return { family, prefixes: table.size, insertMs, lookupsPerSecond, hitShare: hits / looked };
}

// ---------------------------------------------------------------------------------------------- main

export interface MicroReport {
  kind: 'kubespand-micro-bench';
  started: string;
  commit: string | null;
  machine: ReturnType<typeof machineInfo>;
  budgetMs: number;
  /** Each figure is the best of this many rounds. */
  rounds: number;
  providers: string[];
  handshakes: { provider: string; noisePerSecond: number; devicePerSecond: number }[];
  dataPath: DataPathFigure[];
  allowedIps: AllowedIpsFigure[];
  primitives: unknown;
  notes: string[];
}

const int = (v: number): string => Math.round(v).toLocaleString('en-US');

export function formatMicro(r: MicroReport): string {
  const lines: string[] = [];
  lines.push(`micro-benchmarks, ${r.budgetMs} ms per case, best of ${r.rounds} round(s); providers: ${r.providers.join(', ')}`);
  lines.push('', 'handshakes per second (one core, single thread)');
  lines.push(`  ${'provider'.padEnd(8)} ${'Noise only'.padStart(12)} ${'DeviceCore pair'.padStart(16)}`);
  for (const h of r.handshakes) lines.push(`  ${h.provider.padEnd(8)} ${int(h.noisePerSecond).padStart(12)} ${int(h.devicePerSecond).padStart(16)}`);
  lines.push('', `DeviceCore data path, per packet (${TUN_BATCH} packets per handleTunPackets call)`);
  lines.push(`  ${'provider'.padEnd(8)} ${'size'.padStart(5)} ${'encap pkt/s'.padStart(12)} ${'Gbit/s'.padStart(7)} ${'decap pkt/s'.padStart(12)} ${'Gbit/s'.padStart(7)}`);
  for (const d of r.dataPath) {
    lines.push(`  ${d.provider.padEnd(8)} ${String(d.size).padStart(5)} ${int(d.encapPerSecond).padStart(12)} ${d.encapGbps.toFixed(2).padStart(7)} ${int(d.decapPerSecond).padStart(12)} ${d.decapGbps.toFixed(2).padStart(7)}`);
  }
  lines.push('', 'allowed IPs (longest-prefix match)');
  for (const a of r.allowedIps) {
    lines.push(`  ${a.family} ${int(a.prefixes)} prefixes: insert ${a.insertMs.toFixed(1)} ms, ${int(a.lookupsPerSecond)} lookups/s (${(100 * a.hitShare).toFixed(0)}% hits)`);
  }
  for (const n of r.notes) lines.push(`note: ${n}`);
  return lines.join('\n');
}

export function formatMicroMarkdown(r: MicroReport): string {
  const lines: string[] = [];
  lines.push('| provider | handshakes/s, Noise only | handshakes/s, DeviceCore pair |', '| --- | ---: | ---: |');
  for (const h of r.handshakes) lines.push(`| ${h.provider} | ${int(h.noisePerSecond)} | ${int(h.devicePerSecond)} |`);
  lines.push('', '| provider | packet bytes | encap pkt/s | encap Gbit/s | decap pkt/s | decap Gbit/s |', '| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const d of r.dataPath) lines.push(`| ${d.provider} | ${d.size} | ${int(d.encapPerSecond)} | ${d.encapGbps.toFixed(2)} | ${int(d.decapPerSecond)} | ${d.decapGbps.toFixed(2)} |`);
  lines.push('', '| allowed IPs | prefixes | insert all, ms | lookups/s | hits |', '| --- | ---: | ---: | ---: | ---: |');
  for (const a of r.allowedIps) lines.push(`| ${a.family} | ${int(a.prefixes)} | ${a.insertMs.toFixed(1)} | ${int(a.lookupsPerSecond)} | ${(100 * a.hitShare).toFixed(0)}% |`);
  return lines.join('\n');
}

export async function runMicro(opts: { budgetMs: number; rounds: number; primitives: boolean; log: (line: string) => void }): Promise<MicroReport> {
  const notes: string[] = [];
  const providers = await discoverProviders((l) => notes.push(l));
  const report: MicroReport = {
    kind: 'kubespand-micro-bench',
    started: new Date().toISOString(),
    commit: gitHead(),
    machine: machineInfo(),
    budgetMs: opts.budgetMs,
    rounds: opts.rounds,
    providers: providers.map((p) => p.name),
    handshakes: [],
    dataPath: [],
    allowedIps: [],
    primitives: null,
    notes,
  };
  // every case once per round, rounds spread over the whole run; each figure is its best round
  for (let round = 1; round <= opts.rounds; round++) {
    opts.log(`  round ${round}/${opts.rounds} …`);
    providers.forEach((c, i) => {
      const noisePerSecond = bestRate(noiseHandshakeStep(c), opts.budgetMs);
      const dev = deviceHandshakeStep(c);
      const devicePerSecond = bestRate(dev.step, opts.budgetMs);
      const problem = dev.check();
      if (problem) notes.push(`${c.name} DeviceCore handshakes: ${problem}`);
      const prev = report.handshakes[i];
      report.handshakes[i] = { provider: c.name, noisePerSecond: Math.max(noisePerSecond, prev?.noisePerSecond ?? 0), devicePerSecond: Math.max(devicePerSecond, prev?.devicePerSecond ?? 0) };
    });
    let k = 0;
    for (const c of providers) {
      for (const size of PACKET_SIZES) {
        const d = dataPath(c, size, opts.budgetMs);
        const prev = report.dataPath[k];
        if (prev) {
          if (prev.encapPerSecond > d.encapPerSecond) [d.encapPerSecond, d.encapGbps] = [prev.encapPerSecond, prev.encapGbps];
          if (prev.decapPerSecond > d.decapPerSecond) [d.decapPerSecond, d.decapGbps] = [prev.decapPerSecond, prev.decapGbps];
        }
        report.dataPath[k++] = d;
      }
    }
    (['IPv4', 'IPv6'] as const).forEach((family, i) => {
      const a = allowedIps(family, 10_000, opts.budgetMs);
      const prev = report.allowedIps[i];
      if (prev) {
        a.insertMs = Math.min(a.insertMs, prev.insertMs);
        if (prev.lookupsPerSecond > a.lookupsPerSecond) [a.lookupsPerSecond, a.hitShare] = [prev.lookupsPerSecond, prev.hitShare];
      }
      report.allowedIps[i] = a;
    });
  }
  if (opts.primitives) {
    opts.log('  primitives (crypto-micro) …');
    try {
      const out = execFileSync(process.execPath, [join(REPO_ROOT, 'dist', 'bench', 'crypto-micro.js'), '--json', '--ms', String(Math.max(50, Math.round(opts.budgetMs / 2)))], { encoding: 'utf8', timeout: 600_000 });
      report.primitives = JSON.parse(out);
    } catch (err) {
      notes.push(`crypto-micro: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  return report;
}


async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      ms: { type: 'string' },
      rounds: { type: 'string' },
      quick: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      out: { type: 'string' },
      'no-primitives': { type: 'boolean', default: false },
    },
    strict: true,
  });
  let budgetMs = values.quick ? 100 : 600;
  if (values.ms !== undefined) {
    budgetMs = Number(values.ms);
    if (!Number.isFinite(budgetMs) || budgetMs < 10) {
      process.stderr.write(`micro: --ms: expected a number of milliseconds ≥ 10, got ${JSON.stringify(values.ms)}\n`);
      process.exit(2);
    }
  }
  const rounds = values.rounds !== undefined ? Number(values.rounds) : values.quick ? 1 : 3;
  if (!Number.isInteger(rounds) || rounds < 1) {
    process.stderr.write(`micro: --rounds: expected a positive whole number, got ${JSON.stringify(values.rounds)}\n`);
    process.exit(2);
  }
  const log = (line: string): void => void process.stderr.write(line + '\n');
  log(`micro: ${describeMachine(machineInfo())}`);
  const report = await runMicro({ budgetMs, rounds, primitives: !values['no-primitives'], log });
  const out = values.out ?? RESULTS_DIR;
  mkdirSync(out, { recursive: true });
  const path = join(out, `${fileStamp()}-micro.json`);
  writeFileSync(path, JSON.stringify(report, null, 2) + '\n');
  if (values.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  else process.stdout.write(`${formatMicro(report)}\n\nMarkdown:\n\n${formatMicroMarkdown(report)}\n\nwrote ${path}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    process.stderr.write(`micro: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
