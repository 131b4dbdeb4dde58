/**
 * Affiliates → peer specs (spec/kubespan.md §3.2), as Talos's PeerSpecController:
 * allowed IPs = additional addresses ∪ node addresses − the peer's own exclusions + its KubeSpan
 * address; peers are taken in affiliate-id order and a range already given to an earlier peer is
 * removed from a later one ("first come keeps the range"). Pure.
 */
import type { DiscoveredAffiliate } from '../discovery/types.js';
import { IpSet } from './ip-set.js';
import type { PeerSpec } from './types.js';

export interface PeerSpecResult {
  specs: PeerSpec[];
  /** Overlaps removed from later peers, for a warning log. */
  overlaps: { publicKey: string; label: string; removed: string[]; keptBy: string[] }[];
  /** Affiliates skipped, with why. */
  skipped: { nodeId: string; reason: string }[];
}

function hostPrefix(address: string): string {
  const bare = address.split('%')[0]!;
  return bare.includes(':') ? `${bare}/128` : `${bare}/32`;
}

export function buildPeerSpecs(affiliates: DiscoveredAffiliate[], localPublicKey: string, localNodeId?: string): PeerSpecResult {
  const result: PeerSpecResult = { specs: [], overlaps: [], skipped: [] };
  const sorted = [...affiliates].sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  const candidates: { affiliate: DiscoveredAffiliate; publicKey: string; set: IpSet }[] = [];
  const seenKeys = new Set<string>();
  for (const affiliate of sorted) {
    const ks = affiliate.kubespan;
    if (!ks || !ks.publicKey) continue; // not a KubeSpan node
    if (affiliate.nodeId === localNodeId || ks.publicKey === localPublicKey) continue; // ourselves
    if (seenKeys.has(ks.publicKey)) {
      result.skipped.push({ nodeId: affiliate.nodeId, reason: 'public key already used by another affiliate' });
      continue;
    }
    let set: IpSet;
    try {
      set = new IpSet();
      for (const p of ks.additionalAddresses) set.add(p);
      for (const a of affiliate.addresses) set.add(hostPrefix(a));
      if (ks.excludeAdvertisedAddresses.length > 0) set.removeSet(IpSet.of(ks.excludeAdvertisedAddresses));
      set.add(hostPrefix(ks.address));
    } catch (err) {
      result.skipped.push({ nodeId: affiliate.nodeId, reason: `bad address: ${err instanceof Error ? err.message : String(err)}` });
      continue;
    }
    seenKeys.add(ks.publicKey);
    candidates.push({ affiliate, publicKey: ks.publicKey, set });
  }

  // overlap resolution: earlier peers keep their ranges. A sweep over all ranges finds the few peers
  // that overlap anybody (O(n log n)); the exact pairwise rule then runs over those only.
  const involved = overlappingCandidates(candidates.map((c) => c.set));
  const assigned: { publicKey: string; set: IpSet }[] = [];
  candidates.forEach((c, index) => {
    const { affiliate, publicKey, set } = c;
    if (involved.has(index)) {
      const keptBy: string[] = [];
      let removed = new IpSet();
      for (const prior of assigned) {
        if (set.overlaps(prior.set)) {
          removed = removed.addSet(set.intersection(prior.set));
          keptBy.push(prior.publicKey);
        }
      }
      if (!removed.isEmpty) {
        set.removeSet(removed);
        result.overlaps.push({ publicKey, label: affiliate.nodename || affiliate.hostname, removed: removed.cidrs(), keptBy });
      }
      assigned.push({ publicKey, set });
    }
    result.specs.push({
      publicKey,
      address: affiliate.kubespan!.address,
      allowedIps: set.cidrs(),
      endpoints: affiliate.endpoints.map((e) => ({ address: e.address, port: e.port })),
      label: affiliate.nodename || affiliate.hostname,
      affiliateId: affiliate.nodeId,
    });
  });
  return result;
}

/** Indexes of the sets that overlap at least one other set (a sweep over every range, by start). */
function overlappingCandidates(sets: IpSet[]): Set<number> {
  const all: { family: 4 | 6; start: bigint; end: bigint; owner: number }[] = [];
  sets.forEach((set, owner) => {
    for (const r of set.ranges()) all.push({ ...r, owner });
  });
  all.sort((a, b) => (a.family !== b.family ? a.family - b.family : a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const involved = new Set<number>();
  let family = 0;
  let maxEnd = -1n;
  let maxOwner = -1;
  for (const r of all) {
    if (r.family !== family) {
      family = r.family;
      maxEnd = -1n;
      maxOwner = -1;
    }
    // a set's own ranges are merged and disjoint, so starting inside the furthest-reaching earlier
    // range means overlapping another set; every owner in an overlap gets marked this way
    if (r.start <= maxEnd) {
      involved.add(r.owner);
      involved.add(maxOwner);
    }
    if (r.end > maxEnd) {
      maxEnd = r.end;
      maxOwner = r.owner;
    }
  }
  return involved;
}
