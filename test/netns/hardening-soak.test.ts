/**
 * Soak, CI length (issue 8, item 7): two KubeSpan nodes carrying iperf3 traffic and pings for about a
 * minute while an affiliate joins and another leaves every 10 s (bench/soak/engine.ts). The long mode
 * is `node dist/bench/soak.js` (30 minutes by default). Asserts no file-descriptor growth, bounded RSS
 * growth, no lost pings, the churn really happening, and the mesh whole at the end; prints the
 * slopes.
 */
import { describe, expect, it } from 'vitest';
import { runSoak } from '../../bench/soak/engine.js';
import { assertRoot } from '../support/netns.js';

const SECONDS = Number(process.env.KSH_SOAK_SECONDS ?? 60);

describe('soak with peer churn', () => {
  it(`keeps fds flat and RSS bounded over ${SECONDS} s of traffic with churn every 10 s`, async () => {
    assertRoot();
    const r = await runSoak({ prefix: 'ksh', durationMs: SECONDS * 1000, churnEveryMs: 10_000, sampleEveryMs: 1_000, warmupMs: 10_000, trafficMbit: 20, log: (l) => console.log(l) });
    const summary = {
      durationS: r.durationS,
      nodes: r.nodes.map((n) => ({ name: n.name, rssSlopeKiBPerMin: n.rssSlopeKiBPerMin, heapSlopeKiBPerMin: n.heapSlopeKiBPerMin, rssGrowthKiB: n.rssGrowthKiB, fdSlopePerMin: n.fdSlopePerMin, fds: n.fdsRange, fdFloor: [n.fdsFirst, n.fdsLast], fdKinds: [n.fdKindsAfterWarmup, n.fdKindsAtEnd], cpuCores: n.cpuCores, peakRssMiB: +(n.peakRssKiB / 1024).toFixed(1) })),
      ping: r.ping,
      iperf: r.iperf,
      churn: r.churn,
      peerCounts: r.peerCounts,
      distinctPeers: r.distinctPeers,
    };
    console.log(`soak: ${JSON.stringify(summary)}`);
    // the churn happened: peers came and went on n1's device
    expect(r.churn.joined).toBeGreaterThanOrEqual(Math.floor(SECONDS / 10));
    expect(r.churn.left).toBeGreaterThanOrEqual(Math.floor(SECONDS / 10) - 1);
    expect(r.distinctPeers).toBeGreaterThanOrEqual(Math.floor(SECONDS / 10));
    expect(r.peerCounts.length).toBeGreaterThanOrEqual(2);
    // traffic never stopped
    expect(r.iperf.error).toBeUndefined();
    expect(r.iperf.bytes).toBeGreaterThan(SECONDS * 20e6 / 8 * 0.5);
    expect(r.ping.sent).toBeGreaterThan(SECONDS * 4);
    expect(r.ping.received / r.ping.sent).toBeGreaterThan(0.98);
    expect(r.meshUpAtEnd).toBe(true);
    // nothing accumulates: fds flat, RSS growth bounded
    for (const n of r.nodes) {
      // the floor: reconcile passes run ip/nft children whose pipes come and go
      expect(n.fdsLast, `${n.name} fd floor`).toBeLessThanOrEqual(n.fdsFirst + 1);
      expect(n.fdsRange[1] - n.fdsRange[0], `${n.name} fd range`).toBeLessThanOrEqual(16);
      expect(n.rssGrowthKiB, `${n.name} RSS growth`).toBeLessThan(40 * 1024);
    }
  }, (SECONDS + 120) * 1000);
});
