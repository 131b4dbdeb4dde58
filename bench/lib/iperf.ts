/** Reading iperf3's `-J` report (3.x): the receiver's rate is the figure; the sender's is kept for UDP's offered rate. */

export interface IperfResult {
  protocol: 'tcp' | 'udp';
  seconds: number;
  /** What the receiver got, bits per second. */
  receivedBitsPerSecond: number;
  receivedBytes: number;
  /** What the sender pushed (UDP: the offered rate it reached), bits per second. */
  sentBitsPerSecond: number;
  sentBytes: number;
  /** TCP: segments the sender retransmitted. */
  retransmits: number | null;
  /** UDP: datagrams lost on the way (all of them: kernel, tunnel and receiver). */
  lostPackets: number | null;
  packets: number | null;
  lostPercent: number | null;
  jitterMs: number | null;
}

interface Sum {
  seconds?: number;
  bytes?: number;
  bits_per_second?: number;
  retransmits?: number;
  lost_packets?: number;
  packets?: number;
  lost_percent?: number;
  jitter_ms?: number;
}

interface Report {
  error?: string;
  start?: { test_start?: { protocol?: string } };
  end?: { sum?: Sum; sum_sent?: Sum; sum_received?: Sum };
}

function num(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`iperf3 report: ${what} is missing or not a number (${JSON.stringify(v)})`);
  return v;
}

/** Parses the JSON text; throws with iperf3's own error message when the run failed. */
export function parseIperfReport(text: string): IperfResult {
  let r: Report;
  try {
    r = JSON.parse(text) as Report;
  } catch {
    throw new Error(`iperf3: output is not JSON: ${text.slice(0, 300).trim()}`);
  }
  if (r.error) throw new Error(`iperf3: ${r.error}`);
  const protocol = r.start?.test_start?.protocol === 'UDP' ? 'udp' : 'tcp';
  const sent = r.end?.sum_sent;
  const received = r.end?.sum_received;
  if (!sent || !received) throw new Error('iperf3 report: no end.sum_sent/end.sum_received (test did not finish)');
  const result: IperfResult = {
    protocol,
    seconds: num(received.seconds, 'sum_received.seconds'),
    receivedBitsPerSecond: num(received.bits_per_second, 'sum_received.bits_per_second'),
    receivedBytes: num(received.bytes, 'sum_received.bytes'),
    sentBitsPerSecond: num(sent.bits_per_second, 'sum_sent.bits_per_second'),
    sentBytes: num(sent.bytes, 'sum_sent.bytes'),
    retransmits: protocol === 'tcp' && typeof sent.retransmits === 'number' ? sent.retransmits : null,
    lostPackets: null,
    packets: null,
    lostPercent: null,
    jitterMs: null,
  };
  if (protocol === 'udp') {
    // end.sum carries the receiver's loss accounting for UDP (sum_received repeats it in 3.12)
    const s = r.end?.sum ?? received;
    result.lostPackets = typeof s.lost_packets === 'number' ? s.lost_packets : null;
    result.packets = typeof sent.packets === 'number' ? sent.packets : typeof s.packets === 'number' ? s.packets : null;
    result.lostPercent = typeof s.lost_percent === 'number' ? s.lost_percent : null;
    result.jitterMs = typeof s.jitter_ms === 'number' ? s.jitter_ms : null;
  }
  return result;
}

export interface PingSummary {
  transmitted: number;
  received: number;
  minMs: number | null;
  avgMs: number | null;
  maxMs: number | null;
  /** `time=` of each reply in order. */
  replies: number[];
}

/** Parses iputils ping output (summary line and per-reply times). */
export function parsePing(output: string): PingSummary {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(output);
  if (!m) throw new Error(`ping: no summary in output: ${output.slice(-300).trim()}`);
  const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\//.exec(output);
  const replies = [...output.matchAll(/time=([\d.]+) ms/g)].map((x) => Number(x[1]));
  return {
    transmitted: Number(m[1]),
    received: Number(m[2]),
    minMs: rtt ? Number(rtt[1]) : null,
    avgMs: rtt ? Number(rtt[2]) : null,
    maxMs: rtt ? Number(rtt[3]) : null,
    replies,
  };
}
