/**
 * A handshake flood from many source addresses, for test/netns/hardening-flood.test.ts and by hand:
 *
 *   node dist/bench/fuzz/handshake-flood.js --target 10.250.0.1:51820 --responder <base64 public key> \
 *     --sources 10.250.1.1-200 --rate 5000 --seconds 10 [--peer <base64 private key>@<source>]...
 *
 * Every source address gets its own UDP socket. Garbage initiations (random bodies, random sender
 * index) carry a VALID mac1 for the responder's public key, so they pass the first check and cost
 * the responder a cookie reply once it is under load; when a cookie reply arrives the flooder opens it
 * (it knows the responder's public key, as any attacker does) and adds a valid mac2 from then on, so
 * the flood also reaches the per-source rate limiter and the Noise decryption. Optionally, sources
 * given with `--peer KEY@SOURCE` send REAL initiations (fresh ephemeral, increasing timestamp) as a
 * configured peer at --peer-rate each: the handshake responses they get back measure the per-source
 * rate limit from the outside.
 *
 * Prints one JSON line when done: what was sent, cookie replies received (and how many opened),
 * responses per peer source, and the achieved rate.
 */
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes, randomFillSync } from 'node:crypto';
import { parseArgs } from 'node:util';
import { nodeCrypto } from '../../src/noise/crypto-node.js';
import { cookieKey, mac1Key } from '../../src/noise/cookie.js';
import { createInitiation, precomputeStaticStatic } from '../../src/noise/handshake.js';
import { clampPrivateKey, keyFromBase64 } from '../../src/noise/keys.js';
import { tai64n } from '../../src/noise/tai64n.js';
import { readU32LE } from '../../src/noise/bytes.js';
import { COOKIE_REFRESH_TIME_MS, MESSAGE_COOKIE_REPLY_TYPE, MESSAGE_INITIATION_SIZE, MESSAGE_RESPONSE_TYPE } from '../../src/noise/constants.js';

const USAGE =
  'usage: handshake-flood --target IP:PORT --responder PUBKEY --sources A[,B|-N]... --rate PPS --seconds S [--peer PRIVKEY@SOURCE]... [--peer-rate PPS] [--peer-delay-ms MS]';

/** `10.250.1.1-200` → 10.250.1.1 … 10.250.1.200; commas separate items; IPv6 items are taken as they are. */
export function expandSources(spec: string): string[] {
  const out: string[] = [];
  for (const item of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^(\d+\.\d+\.\d+\.)(\d+)-(\d+)$/.exec(item);
    if (m) {
      for (let i = Number(m[2]); i <= Number(m[3]); i++) out.push(`${m[1]}${i}`);
    } else {
      out.push(item);
    }
  }
  return out;
}

interface Source {
  address: string;
  socket: Socket;
  /** Pre-built garbage initiations with mac1 (and mac2 once a cookie is known). */
  pool: Uint8Array[];
  next: number;
  cookie: Uint8Array | null;
  cookieAt: number;
  /** mac1 of recent messages by sender index, to open the cookie reply that names it. */
  mac1BySender: Map<number, Uint8Array>;
  sent: number;
  cookieReplies: number;
  cookiesOpened: number;
  responses: number;
  peer?: { privateKey: Uint8Array; publicKey: Uint8Array; staticStatic: Uint8Array; sent: number };
}

const POOL = 8;
const MAC1_MEMORY = 4096;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      target: { type: 'string' },
      responder: { type: 'string' },
      sources: { type: 'string', multiple: true },
      rate: { type: 'string', default: '5000' },
      seconds: { type: 'string', default: '10' },
      peer: { type: 'string', multiple: true },
      'peer-rate': { type: 'string', default: '100' },
      'peer-delay-ms': { type: 'string', default: '1000' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const target = /^(.+):(\d+)$/.exec(values.target ?? '');
  if (!target) throw new Error(`--target: want IP:PORT (got ${JSON.stringify(values.target)})`);
  const [host, port] = [target[1]!.replace(/^\[|\]$/g, ''), Number(target[2])];
  const responder = keyFromBase64(values.responder ?? '', '--responder');
  const rate = Number(values.rate);
  const seconds = Number(values.seconds);
  const peerRate = Number(values['peer-rate']);
  const peerDelayMs = Number(values['peer-delay-ms']);
  for (const [name, v] of [['rate', rate], ['seconds', seconds], ['peer-rate', peerRate], ['peer-delay-ms', peerDelayMs]] as const) {
    if (!Number.isFinite(v) || v < 0) throw new Error(`--${name}: not a non-negative number`);
  }
  const c = nodeCrypto;
  const k1 = mac1Key(c, responder);
  const kCookie = cookieKey(c, responder);

  const withMacs = (msg: Uint8Array, s: Source, now: number): void => {
    const mac1 = c.mac(k1, msg.subarray(0, MESSAGE_INITIATION_SIZE - 32));
    msg.set(mac1, MESSAGE_INITIATION_SIZE - 32);
    const sender = readU32LE(msg, 4);
    s.mac1BySender.set(sender, mac1);
    if (s.mac1BySender.size > MAC1_MEMORY) s.mac1BySender.delete(s.mac1BySender.keys().next().value as number);
    if (s.cookie && now - s.cookieAt < COOKIE_REFRESH_TIME_MS) msg.set(c.mac(s.cookie, msg.subarray(0, MESSAGE_INITIATION_SIZE - 16)), MESSAGE_INITIATION_SIZE - 16);
    else msg.fill(0, MESSAGE_INITIATION_SIZE - 16);
  };
  const rebuildPool = (s: Source): void => {
    const now = performance.now();
    s.pool = Array.from({ length: POOL }, () => {
      const msg = randomBytes(MESSAGE_INITIATION_SIZE);
      msg[0] = 1;
      msg[1] = msg[2] = msg[3] = 0;
      withMacs(msg, s, now);
      return msg;
    });
  };

  // sockets, one per source address
  const peerSpecs = new Map<string, Uint8Array>();
  for (const p of values.peer ?? []) {
    const at = p.lastIndexOf('@');
    if (at < 0) throw new Error('--peer: want PRIVKEY@SOURCE');
    peerSpecs.set(p.slice(at + 1), clampPrivateKey(keyFromBase64(p.slice(0, at), '--peer key')));
  }
  const addresses = [...new Set([...expandSources((values.sources ?? []).join(',')), ...peerSpecs.keys()])];
  if (addresses.length === 0) throw new Error('--sources: at least one source address');
  const sources: Source[] = [];
  for (const address of addresses) {
    const socket = createSocket({ type: address.includes(':') ? 'udp6' : 'udp4', sendBufferSize: 1 << 20 });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ address, port: 0 }, () => resolve());
    });
    const s: Source = { address, socket, pool: [], next: 0, cookie: null, cookieAt: 0, mac1BySender: new Map(), sent: 0, cookieReplies: 0, cookiesOpened: 0, responses: 0 };
    const priv = peerSpecs.get(address);
    if (priv) {
      const staticStatic = precomputeStaticStatic(c, priv, responder);
      if (!staticStatic) throw new Error(`--peer ${address}: the key gives a zero shared secret`);
      s.peer = { privateKey: priv, publicKey: c.publicKey(priv), staticStatic, sent: 0 };
    }
    rebuildPool(s);
    socket.on('message', (msg: Buffer) => {
      if (msg[0] === MESSAGE_COOKIE_REPLY_TYPE && msg.length === 64) {
        s.cookieReplies++;
        // open it: key HASH("cookie--" ‖ responder), AD = the mac1 of the message it answers
        const mac1 = s.mac1BySender.get(readU32LE(msg, 4));
        if (!mac1) return;
        const cookie = c.xopen(kCookie, msg.subarray(8, 32), msg.subarray(32, 64), mac1);
        if (!cookie) return;
        s.cookiesOpened++;
        const fresh = s.cookie === null || Buffer.compare(Buffer.from(cookie), Buffer.from(s.cookie)) !== 0;
        s.cookie = cookie;
        s.cookieAt = performance.now();
        if (fresh) rebuildPool(s);
      } else if (msg[0] === MESSAGE_RESPONSE_TYPE) {
        s.responses++;
      }
    });
    socket.on('error', () => undefined);
    sources.push(s);
  }
  const garbageSources = sources.filter((s) => !s.peer);
  const peerSources = sources.filter((s) => s.peer);

  // a real initiation as a configured peer: fresh ephemeral, timestamps strictly increasing
  let tsStep = 0;
  const baseWall = Date.now();
  const realInitiation = (s: Source, now: number): Uint8Array | null => {
    const p = s.peer!;
    const sender = randomFillSync(new Uint8Array(4));
    const made = createInitiation(c, { privateKey: p.privateKey, publicKey: p.publicKey }, responder, p.staticStatic, clampPrivateKey(randomBytes(32)), readU32LE(sender, 0), tai64n(baseWall + 20 * ++tsStep));
    if (!made) return null;
    withMacs(made.message, s, now);
    return made.message;
  };

  const started = performance.now();
  const endAt = started + seconds * 1000;
  let sentGarbage = 0;
  let sentPeer = 0;
  let g = 0;
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      const now = performance.now();
      if (now >= endAt) return resolve();
      const elapsed = (now - started) / 1000;
      // garbage: catch up to rate × elapsed, at most 2000 per turn so replies are read in between
      const due = Math.min(2000, Math.floor(rate * elapsed) - sentGarbage);
      for (let i = 0; i < due && garbageSources.length > 0; i++) {
        const s = garbageSources[g++ % garbageSources.length]!;
        const msg = s.pool[s.next++ % POOL]!;
        s.socket.send(msg, port, host);
        s.sent++;
        sentGarbage++;
      }
      // real initiations start after --peer-delay-ms (the responder is under load by then)
      if (now - started >= peerDelayMs) {
        for (const s of peerSources) {
          const dueReal = Math.floor(peerRate * ((now - started - peerDelayMs) / 1000)) - s.peer!.sent;
          for (let i = 0; i < Math.min(dueReal, 50); i++) {
            const msg = realInitiation(s, now);
            if (!msg) continue;
            s.socket.send(msg, port, host);
            s.peer!.sent++;
            s.sent++;
            sentPeer++;
          }
        }
      }
      setImmediate(pump);
    };
    pump();
  });
  // late replies
  await new Promise((r) => setTimeout(r, 300));
  const durationMs = performance.now() - started;
  for (const s of sources) s.socket.close();
  const sum = (f: (s: Source) => number, list = garbageSources): number => list.reduce((a, s) => a + f(s), 0);
  const report = {
    target: `${host}:${port}`,
    sources: garbageSources.length,
    seconds,
    durationMs: Math.round(durationMs),
    sentGarbage,
    garbageRate: Math.round(sentGarbage / seconds),
    cookieReplies: sum((s) => s.cookieReplies),
    cookiesOpened: sum((s) => s.cookiesOpened),
    sourcesWithCookie: garbageSources.filter((s) => s.cookie !== null).length,
    garbageResponses: sum((s) => s.responses),
    sentPeer,
    peerSendSeconds: Math.max(0, seconds - peerDelayMs / 1000),
    peers: peerSources.map((s) => ({ source: s.address, sent: s.peer!.sent, cookieReplies: s.cookieReplies, cookiesOpened: s.cookiesOpened, responses: s.responses })),
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`handshake-flood: ${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    process.exit(2);
  },
);
