/**
 * One reconcile pass of the KubeSpan manager (spec/kubespan.md §3.4, §3.6, §5.4), as a pure function:
 * peer specs + the previous statuses + what WireGuard reports + `now` → next statuses, the WireGuard
 * peers to apply, the set of prefixes to steer into the tunnel, and endpoints to harvest. The daemon
 * runs it on every input change and every 30 s, then applies the result.
 */
import { parsePrefix } from '../noise/allowed-ips.js';
import { calculateState, pickNewEndpoint, shouldChangeEndpoint, updateEndpoint } from './peer-status.js';
import { sameEndpoint, type DesiredDevicePeer, type DevicePeerSnapshot, type Endpoint, type HarvestedEndpoint, type PeerSpec, type PeerStatus } from './types.js';

/** Talos's fixed KubeSpan persistent keepalive. */
export const KUBESPAN_KEEPALIVE_SEC = 25;

export interface ReconcileInput {
  now: number;
  specs: PeerSpec[];
  previous: ReadonlyMap<string, PeerStatus>;
  device: ReadonlyMap<string, DevicePeerSnapshot>;
  /** The cluster secret (standard base64): every KubeSpan peer uses it as its WireGuard preshared key. */
  presharedKey: string;
  allowDownPeerBypass: boolean;
  harvestExtraEndpoints: boolean;
}

export interface ReconcileOutput {
  statuses: PeerStatus[];
  devicePeers: DesiredDevicePeer[];
  /** Prefixes whose traffic is marked into the tunnel (KubeSpan ULA prefixes excluded: they route natively). */
  targetPrefixes: string[];
  harvested: HarvestedEndpoint[];
  endpointChanges: { publicKey: string; label: string; from: Endpoint | null; to: Endpoint }[];
}

/** A KubeSpan ULA prefix: fd.. with byte 7 = 0x02 (spec §2, §5.3). */
export function isKubespanUla(cidr: string): boolean {
  const p = parsePrefix(cidr);
  return p.address.length === 16 && p.address[0] === 0xfd && p.address[7] === 0x02;
}

export function newPeerStatus(spec: Pick<PeerSpec, 'publicKey' | 'label'>): PeerStatus {
  return {
    publicKey: spec.publicKey,
    label: spec.label,
    endpoint: null,
    state: 'unknown',
    receiveBytes: 0,
    transmitBytes: 0,
    lastHandshakeTime: 0,
    lastUsedEndpoint: null,
    lastEndpointChange: 0,
  };
}

export function reconcilePeers(input: ReconcileInput): ReconcileOutput {
  const out: ReconcileOutput = { statuses: [], devicePeers: [], targetPrefixes: [], harvested: [], endpointChanges: [] };
  const forceRouting = !input.allowDownPeerBypass;
  for (const spec of input.specs) {
    let status: PeerStatus = { ...(input.previous.get(spec.publicKey) ?? newPeerStatus(spec)), label: spec.label };
    const observed = input.device.get(spec.publicKey);
    if (observed) {
      status.endpoint = observed.endpoint;
      status.lastHandshakeTime = observed.lastHandshakeTime;
      status.receiveBytes = observed.receiveBytes;
      status.transmitBytes = observed.transmitBytes;
    }
    status.state = calculateState(status, input.now);

    // endpoint to push to WireGuard: a newly chosen one; else re-apply the last used one unless the
    // peer roamed elsewhere (then null = keep what WireGuard has)
    let push: Endpoint | null = null;
    if (shouldChangeEndpoint(status)) {
      const next = pickNewEndpoint(spec.endpoints, status);
      if (next) {
        out.endpointChanges.push({ publicKey: spec.publicKey, label: spec.label, from: status.lastUsedEndpoint, to: next });
        status = updateEndpoint(status, next, input.now);
        push = next;
      }
    }
    if (!push && status.lastUsedEndpoint && (!observed?.endpoint || sameEndpoint(observed.endpoint, status.lastUsedEndpoint))) {
      push = status.lastUsedEndpoint;
    }
    out.statuses.push(status);
    out.devicePeers.push({
      publicKey: spec.publicKey,
      presharedKey: input.presharedKey,
      persistentKeepaliveSec: KUBESPAN_KEEPALIVE_SEC,
      allowedIps: spec.allowedIps,
      endpoint: push,
    });
    if (forceRouting || status.state === 'up') {
      for (const cidr of spec.allowedIps) if (!isKubespanUla(cidr)) out.targetPrefixes.push(cidr);
    }
    if (input.harvestExtraEndpoints && status.state === 'up' && status.endpoint) {
      out.harvested.push({ publicKey: spec.publicKey, affiliateId: spec.affiliateId, endpoint: status.endpoint });
    }
  }
  return out;
}
