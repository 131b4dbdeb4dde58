/**
 * Plain typed data exchanged between the discovery client and its consumer (the KubeSpan peer
 * controller). These mirror the client-side `sidero.discovery.client.Affiliate` message
 * (kubespan.md §1.3) with IPs as strings instead of binary-marshalled bytes.
 */

/** One WireGuard endpoint an affiliate can be reached at. */
export interface AffiliateEndpoint {
  /** IPv4 or IPv6 address (no zone: a zoned endpoint does not fit the 32-byte blob limit). */
  address: string;
  /** UDP port, 1..65535 (0 is representable on the wire but never useful). */
  port: number;
}

/** KubeSpan section of an affiliate: present only when the node runs KubeSpan. */
export interface AffiliateKubeSpan {
  /** WireGuard public key, standard base64, 44 characters. */
  publicKey: string;
  /** The node's KubeSpan ULA address (IPv6). */
  address: string;
  /** Extra prefixes routed to this node (pod CIDRs), CIDR strings. */
  additionalAddresses: string[];
  /** Prefixes peers must not route to this node, CIDR strings (Talos ≥ 1.12.4). */
  excludeAdvertisedAddresses: string[];
}

/**
 * What this node publishes about itself (encrypted into the affiliate data blob). Endpoints are
 * published separately through `setLocalEndpoints`.
 */
export interface LocalAffiliate {
  /** Node identity; must equal the client's affiliate id. */
  nodeId: string;
  /** Routed node IPs (including the KubeSpan ULA), as strings; zoned IPv6 allowed (`fe80::1%eth0`). */
  addresses: string[];
  hostname: string;
  /** Kubernetes node name; empty means "not a cluster member". */
  nodename: string;
  /** `worker` for kubespand; never `controlplane` unless this node really serves the API. */
  machineType: string;
  /** e.g. `kubespand (v0.1.0)`. */
  operatingSystem: string;
  kubespan?: AffiliateKubeSpan;
}

/** Control-plane section published by Talos control-plane nodes (never by kubespand). */
export interface AffiliateControlPlane {
  apiServerPort: number;
}

/** A decrypted, validated affiliate of another node, as seen through the discovery service. */
export interface DiscoveredAffiliate extends LocalAffiliate {
  /** Endpoints decrypted from the affiliate's endpoint blobs, in server order, duplicates removed. */
  endpoints: AffiliateEndpoint[];
  controlPlane?: AffiliateControlPlane;
}
