/**
 * A userspace stand-in for `tc qdisc … netem`: a UDP relay between two WireGuard endpoints that
 * loses, duplicates, delays and reorders datagrams, per direction, with a seeded PRNG. The kernel
 * this project is tested on is built without CONFIG_NET_SCH_NETEM (`tc qdisc add … netem` answers
 * "Specified qdisc kind is unknown"), so the impairment happens here instead; for WireGuard, whose
 * every packet is one UDP datagram, a relay on the path sees exactly what netem on the veth would.
 *
 *   node dist/bench/soak/impair-relay.js --listen 10.233.0.254:51900 --peer 10.233.1.2:51832 \
 *     --via 10.233.1.254:51901 --ab loss=10,dup=2,reorder=5,delay=2,jitter=1 --ba loss=0 [--seed 7]
 *
 * Side A sends to --listen; the relay forwards to --peer from --via; what --peer answers goes back to
 * the last address A sent from. Profiles: loss/dup/reorder are percentages; delay/jitter/gap are ms
 * (a reordered datagram is held `gap` ms longer than the rest, so later ones overtake it). Prints a
 * JSON line of counters on SIGTERM/SIGINT (and every --report-ms if given), then exits.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { parseArgs } from 'node:util';
import { seededRandom } from '../../src/bind/channel-bind.js';

export interface Impairment {
  loss: number;
  dup: number;
  reorder: number;
  delay: number;
  jitter: number;
  gap: number;
}

export function parseProfile(text: string, what: string): Impairment {
  const p: Impairment = { loss: 0, dup: 0, reorder: 0, delay: 0, jitter: 0, gap: 8 };
  for (const item of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [k, v] = item.split('=');
    const n = Number(v);
    if (!(k! in p) || v === undefined || !Number.isFinite(n) || n < 0) throw new Error(`${what}: "${item}" is not key=number with key one of ${Object.keys(p).join(', ')}`);
    if ((k === 'loss' || k === 'dup' || k === 'reorder') && n > 100) throw new Error(`${what}: ${k}=${n} is over 100 (percent)`);
    p[k as keyof Impairment] = n;
  }
  return p;
}

interface Counters {
  in: number;
  out: number;
  lost: number;
  duplicated: number;
  reordered: number;
  delayed: number;
}

interface Queued {
  due: number;
  send: () => void;
}

/** A min-heap of pending sends by due time, drained by one re-armed timer. */
class Scheduler {
  private heap: Queued[] = [];
  private timer: NodeJS.Timeout | null = null;
  private armedFor = Infinity;

  push(q: Queued): void {
    const h = this.heap;
    h.push(q);
    for (let i = h.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (h[parent]!.due <= h[i]!.due) break;
      [h[parent], h[i]] = [h[i]!, h[parent]!];
      i = parent;
    }
    this.arm();
  }

  private pop(): Queued | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]!.due < h[m]!.due) m = l;
        if (r < h.length && h[r]!.due < h[m]!.due) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }

  private arm(): void {
    const next = this.heap[0]?.due ?? Infinity;
    if (next >= this.armedFor) return;
    if (this.timer) clearTimeout(this.timer);
    this.armedFor = next;
    this.timer = setTimeout(() => this.fire(), Math.max(0, next - performance.now()));
  }

  private fire(): void {
    this.timer = null;
    this.armedFor = Infinity;
    const now = performance.now();
    while (this.heap.length > 0 && this.heap[0]!.due <= now + 0.5) this.pop()!.send();
    this.arm();
  }
}

function hostPort(text: string | undefined, what: string): { address: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(text ?? '');
  if (!m) throw new Error(`--${what}: want ADDRESS:PORT (got ${JSON.stringify(text)})`);
  return { address: m[1]!, port: Number(m[2]) };
}

function bound(address: string, port: number): Promise<Socket> {
  const s = createSocket({ type: address.includes(':') ? 'udp6' : 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.bind({ address, port }, () => resolve(s));
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      listen: { type: 'string' },
      peer: { type: 'string' },
      via: { type: 'string' },
      ab: { type: 'string', default: '' },
      ba: { type: 'string', default: '' },
      seed: { type: 'string', default: '1' },
      'report-ms': { type: 'string' },
    },
    strict: true,
  });
  const listen = hostPort(values.listen, 'listen');
  const peer = hostPort(values.peer, 'peer');
  const via = hostPort(values.via, 'via');
  const profiles = { ab: parseProfile(values.ab, '--ab'), ba: parseProfile(values.ba, '--ba') };
  const random = seededRandom(Number(values.seed) || 1);
  const sideA = await bound(listen.address, listen.port);
  const sideB = await bound(via.address, via.port);
  const scheduler = new Scheduler();
  const counters: Record<'ab' | 'ba', Counters> = {
    ab: { in: 0, out: 0, lost: 0, duplicated: 0, reordered: 0, delayed: 0 },
    ba: { in: 0, out: 0, lost: 0, duplicated: 0, reordered: 0, delayed: 0 },
  };
  let lastA: RemoteInfo | null = null;

  const forward = (dir: 'ab' | 'ba', msg: Buffer): void => {
    const p = profiles[dir];
    const c = counters[dir];
    c.in++;
    if (p.loss > 0 && random() * 100 < p.loss) {
      c.lost++;
      return;
    }
    const copies = p.dup > 0 && random() * 100 < p.dup ? 2 : 1;
    if (copies === 2) c.duplicated++;
    for (let i = 0; i < copies; i++) {
      const send = (): void => {
        c.out++;
        if (dir === 'ab') sideB.send(msg, peer.port, peer.address);
        else if (lastA) sideA.send(msg, lastA.port, lastA.address);
      };
      let wait = p.delay + (p.jitter > 0 ? (random() * 2 - 1) * p.jitter : 0);
      if (p.reorder > 0 && random() * 100 < p.reorder) {
        wait += p.gap;
        c.reordered++;
      }
      if (wait <= 0) send();
      else {
        c.delayed++;
        scheduler.push({ due: performance.now() + wait, send });
      }
    }
  };

  sideA.on('message', (msg, rinfo) => {
    lastA = rinfo;
    forward('ab', msg);
  });
  sideB.on('message', (msg, rinfo) => {
    if (rinfo.address === peer.address && rinfo.port === peer.port) forward('ba', msg);
  });
  const report = (): void => void process.stdout.write(`${JSON.stringify({ profiles, counters })}\n`);
  const reportMs = Number(values['report-ms'] ?? 0);
  if (reportMs > 0) setInterval(report, reportMs).unref();
  process.stdout.write(`relaying ${listen.address}:${listen.port} <-> ${peer.address}:${peer.port} via ${via.address}:${via.port}\n`);
  const stop = (): void => {
    report();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`impair-relay: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
});
