/**
 * The KubeSpan resources as plain typed data (Talos: KubeSpanPeerSpec, KubeSpanPeerStatus,
 * KubeSpanEndpoint; spec/kubespan.md §3.2, §3.3, §3.6). Times are Unix epoch milliseconds; 0 = never.
 */
export type PeerState = 'unknown' | 'up' | 'down';

export interface Endpoint {
  address: string;
  port: number;
}

/** Desired peer, built from a discovered affiliate (id = the peer's WireGuard public key). */
export interface PeerSpec {
  publicKey: string;
  /** The peer's KubeSpan ULA address. */
  address: string;
  /** Minimal CIDR cover of what we route to this peer. */
  allowedIps: string[];
  /** Candidate endpoints in received order. */
  endpoints: Endpoint[];
  /** The peer's Kubernetes node name (or hostname when it has none). */
  label: string;
  /** Discovery affiliate id (node id) the spec came from. */
  affiliateId: string;
}

/** Observed peer, refreshed on every reconcile pass (at least every 30 s). */
export interface PeerStatus {
  publicKey: string;
  label: string;
  /** Endpoint WireGuard currently uses (null = none). */
  endpoint: Endpoint | null;
  state: PeerState;
  receiveBytes: number;
  transmitBytes: number;
  lastHandshakeTime: number;
  /** Endpoint the controller last chose. */
  lastUsedEndpoint: Endpoint | null;
  /** When it chose it. */
  lastEndpointChange: number;
}

/** What WireGuard reports about one peer. */
export interface DevicePeerSnapshot {
  publicKey: string;
  endpoint: Endpoint | null;
  lastHandshakeTime: number;
  receiveBytes: number;
  transmitBytes: number;
}

/** A WireGuard peer as the controller wants it. `endpoint: null` means keep whatever WireGuard has (roaming). */
export interface DesiredDevicePeer {
  publicKey: string;
  presharedKey: string;
  persistentKeepaliveSec: number;
  allowedIps: string[];
  endpoint: Endpoint | null;
}

/** A harvested endpoint of an up peer, to be sent back to discovery for that peer's affiliate. */
export interface HarvestedEndpoint {
  publicKey: string;
  affiliateId: string;
  endpoint: Endpoint;
}

export function sameEndpoint(a: Endpoint | null | undefined, b: Endpoint | null | undefined): boolean {
  if (!a || !b) return !a && !b;
  return a.address === b.address && a.port === b.port;
}

export function formatEndpoint(ep: Endpoint | null): string {
  if (!ep) return '';
  return ep.address.includes(':') ? `[${ep.address}]:${ep.port}` : `${ep.address}:${ep.port}`;
}
