/**
 * The long soak (issue 8, item 7): 30 minutes of traffic between two KubeSpan nodes with peer churn
 * every 10 s, both daemons sampled for RSS and open fds; prints the slopes. As root, after
 * `npm run build`:
 *
 *   node dist/bench/soak.js                                  # 30 min, churn every 10 s
 *   node dist/bench/soak.js --minutes 5 --outage-seconds 120 # with the two-minute discovery outage
 *   node dist/bench/soak.js --json soak.json                 # also write the samples
 *
 * The CI version (about a minute, with assertions) is test/netns/hardening-soak.test.ts.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { runSoak } from './soak/engine.js';

const USAGE = 'usage: node dist/bench/soak.js [--minutes 30] [--churn-seconds 10] [--sample-seconds 10] [--traffic-mbit 20] [--outage-seconds 0] [--json FILE]';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '30' },
      'churn-seconds': { type: 'string', default: '10' },
      'sample-seconds': { type: 'string', default: '10' },
      'traffic-mbit': { type: 'string', default: '20' },
      'outage-seconds': { type: 'string', default: '0' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const num = (name: keyof typeof values): number => {
    const n = Number(values[name]);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name}: ${JSON.stringify(values[name])} is not a non-negative number`);
    return n;
  };
  const durationMs = num('minutes') * 60_000;
  const outageMs = num('outage-seconds') * 1000;
  if (outageMs >= durationMs) throw new Error('--outage-seconds must be shorter than the run');
  // Ctrl-C or SIGTERM ends the run early; the namespaces and daemons are still removed
  const abort = new AbortController();
  const stop = (): void => {
    process.stderr.write('soak: stopping early\n');
    abort.abort();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  const report = await runSoak({
    signal: abort.signal,
    prefix: 'ksh',
    durationMs,
    churnEveryMs: num('churn-seconds') * 1000,
    sampleEveryMs: num('sample-seconds') * 1000,
    warmupMs: Math.min(120_000, durationMs / 5),
    trafficMbit: num('traffic-mbit'),
    ...(outageMs > 0 ? { outage: { atMs: durationMs / 3, forMs: outageMs } } : {}),
    log: (l) => process.stderr.write(`${l}\n`),
  });
  const rows = report.nodes.map((n) => {
    const first = n.samples[0]!;
    const last = n.samples.at(-1)!;
    return `| ${n.name} | ${(first.rssKiB / 1024).toFixed(1)} | ${(last.rssKiB / 1024).toFixed(1)} | ${(n.peakRssKiB / 1024).toFixed(1)} | ${n.rssSlopeKiBPerMin} | ${n.heapSlopeKiBPerMin} | ${n.fdsFirst} → ${n.fdsLast} | ${n.fdSlopePerMin} | ${n.cpuCores} |`;
  });
  process.stdout.write(
    [
      `soak: ${report.durationS} s, churn ${report.churn.joined} joined / ${report.churn.left} left (n1 peer counts ${report.peerCounts.join(',')}, ${report.distinctPeers} distinct peers)`,
      `traffic: iperf3 ${report.iperf.receivedMbit} Mbit/s received (${report.iperf.bytes} bytes, ${report.iperf.retransmits ?? '?'} retransmits${report.iperf.error ? `, error: ${report.iperf.error}` : ''}); ping ${report.ping.received}/${report.ping.sent}`,
      ...(report.outage ? [`discovery outage ${report.outage.forMs / 1000} s: reconnected after ${JSON.stringify(report.outage.reconnectMs)} ms`] : []),
      `mesh up at the end: ${report.meshUpAtEnd}`,
      '',
      '| node | RSS start MiB | RSS end MiB | peak MiB | RSS slope KiB/min (after warm-up) | V8 heap slope KiB/min | fd floor | fd slope /min | CPU cores |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...rows,
      '',
    ].join('\n'),
  );
  if (values.json) writeFileSync(values.json, JSON.stringify(report, null, 2));
  const lossy = report.ping.sent === 0 || report.ping.received / report.ping.sent < 0.98;
  return report.meshUpAtEnd && !lossy && !report.iperf.error ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak: ${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    process.exit(2);
  },
);
