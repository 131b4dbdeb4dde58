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
  const assigned: { publicKey: string; set: IpSet }[] = [];
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
    // overlap resolution: earlier peers keep their ranges
    const keptBy: string[] = [];
    let removed = new IpSet();
    for (const prior of assigned) {
      if (set.overlaps(prior.set)) {
        const overlap = set.intersection(prior.set);
        removed = removed.addSet(overlap);
        keptBy.push(prior.publicKey);
      }
    }
    if (!removed.isEmpty) {
      set.removeSet(removed);
      result.overlaps.push({ publicKey: ks.publicKey, label: affiliate.nodename || affiliate.hostname, removed: removed.cidrs(), keptBy });
    }
    seenKeys.add(ks.publicKey);
    assigned.push({ publicKey: ks.publicKey, set });
    result.specs.push({
      publicKey: ks.publicKey,
      address: ks.address,
      allowedIps: set.cidrs(),
      endpoints: affiliate.endpoints.map((e) => ({ address: e.address, port: e.port })),
      label: affiliate.nodename || affiliate.hostname,
      affiliateId: affiliate.nodeId,
    });
  }
  return result;
}
