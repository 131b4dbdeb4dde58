/**
 * The KubeSpan node: identity, the `kubespan` WireGuard device, the dataplane, the discovery client
 * and the reconcile loop that joins them (Talos: LocalAffiliate, DiscoveryService, PeerSpec, Manager
 * and Endpoint controllers, in one process). Level-triggered: every pass reads all inputs fresh
 * (affiliates, WireGuard's peer stats, host links), computes the desired state with the pure
 * functions of src/peer, applies it, and deletes what it did not touch. Passes run on any input
 * change (coalesced) and at least every 30 s; a failing pass is logged and retried with back-off.
 *
 * `applySettings` takes a reloaded config in place (src/kubespan/reload.ts decides what may change):
 * it never touches the WireGuard keys, peers or UDP socket, so established sessions stay up.
 * `metricsSnapshot` feeds src/metrics; per-peer handshake and endpoint counters are kept here from the
 * device's events.
 */
import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { existsSync, mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { DiscoveryClient } from '../discovery-client/client.js';
import type { AffiliateEndpoint, DiscoveredAffiliate, LocalAffiliate } from '../discovery/types.js';
import { startDevice, type RunningDevice } from '../device/runtime.js';
import type { DeviceEvent } from '../noise/device.js';
import { keyFromBase64, keyToBase64, peerTag } from '../noise/keys.js';
import { formatPrefix, parsePrefix } from '../noise/allowed-ips.js';
import { buildPeerSpecs } from '../peer/peer-spec.js';
import { reconcilePeers } from '../peer/peer-controller.js';
import { ENDPOINT_CONNECTION_TIMEOUT_MS, PEER_RECONCILE_INTERVAL_MS } from '../peer/peer-status.js';
import { sameEndpoint, type DesiredDevicePeer, type DevicePeerSnapshot, type Endpoint, type HarvestedEndpoint, type PeerSpec, type PeerStatus } from '../peer/types.js';
import { Dataplane, FWMARK_WIREGUARD } from './dataplane.js';
import { loadOrCreateIdentity, loadOrCreateNodeId, nodeAddressFor, refuseOpenMode, type NodeAddress, type WireGuardIdentity } from './identity.js';
import { listLinks, pickIdentityLink, type IdentityLinkChoice } from './links.js';
import { endpointLinkNames, endpointLinks, identityLinkName } from '../netdev/daemon-links.js';
import type { DeviceSelector } from '../netdev/selector.js';
import { startVip, vipPrefixes, type VipManager, type VipSettings, type VipView } from '../vip/index.js';
import { localEndpoints, routedAddresses, usableNodeAddresses } from './endpoints.js';
import type { Logger } from '../log.js';
import type { ProxySettings } from '../discovery-client/proxy.js';
import type { MetricsSnapshot, PeerMetrics } from '../metrics/metrics.js';

export const VERSION = '0.1.0';

function tagOf(publicKey: string): string {
  try {
    return peerTag(keyFromBase64(publicKey, 'peer public key'));
  } catch {
    return 'peer(invalid)';
  }
}

/** Everything the daemon needs, already validated (src/kubespan/config.ts maps the YAML file to it). */
export interface DaemonSettings {
  clusterId: string;
  /** Standard base64 of 32 bytes: the discovery AES key and every peer's WireGuard preshared key. */
  clusterSecret: string;
  /** `nameservers`: resolvers for the discovery host (machine.network.nameservers); empty = the system's. */
  discovery: { enabled: boolean; endpoint: string; caFiles: string[]; proxy?: ProxySettings; nameservers?: string[] };
  kubespan: {
    mtu: number;
    allowDownPeerBypass: boolean;
    harvestExtraEndpoints: boolean;
    advertiseKubernetesNetworks: boolean;
    endpointFilters: string[];
    excludeAdvertisedNetworks: string[];
    extraAnnouncedEndpoints: Endpoint[];
  };
  node: {
    nodeName: string;
    hostname: string;
    podCIDRs: string[];
    stateDir: string;
    interface: string;
    listenPort: number;
    identityLink?: string;
    /** The link whose MAC seeds the KubeSpan address, by hardware (exclusive with identityLink). */
    identityLinkSelector?: DeviceSelector;
    /** Only these links' addresses become endpoints; undefined = every usable link. */
    endpointLinks?: DeviceSelector[];
  };
  /** A shared virtual IP elected through etcd (src/vip). */
  vip?: VipSettings;
}

/** The resources `kubespand get` shows, with talosctl's names. */
export interface DaemonResources {
  kubespanidentities: { id: 'local'; address: string; subnet: string; publicKey: string; nodeId: string; link: string }[];
  kubespanpeerspecs: ({ id: string } & Omit<PeerSpec, 'publicKey'>)[];
  kubespanpeerstatuses: ({ id: string } & Omit<PeerStatus, 'publicKey'>)[];
  kubespanendpoints: { id: string; affiliateID: string; endpoint: string }[];
  affiliates: DiscoveredAffiliate[];
  vip: VipView[];
}

export interface DaemonStatus {
  version: string;
  nodeId: string;
  nodeName: string;
  hostname: string;
  publicKey: string;
  address: string;
  interface: string;
  listenPort: number;
  /** Unix ms when the daemon started. */
  startedAt: number;
  discovery: { enabled: boolean; state: string; endpoint: string; publicIp?: string; lastError?: string; affiliates: number };
  localEndpoints: Endpoint[];
  /** The live-reloadable settings in effect (no secrets). */
  settings: { mtu: number; allowDownPeerBypass: boolean; harvestExtraEndpoints: boolean; endpointFilters: string[]; extraAnnouncedEndpoints: Endpoint[] };
  lastReconcileAt: number;
  reconcileErrors: number;
}

/** Per-peer event counters (monotonic while the peer exists). */
interface PeerCounters {
  endpointChanges: number;
  handshakeAttempts: number;
  handshakeFailures: number;
  handshakes: number;
}

const CACHE_FILE = 'affiliates-cache.json';

export class KubespanDaemon {
  private running: RunningDevice | null = null;
  private dataplane: Dataplane | null = null;
  private client: DiscoveryClient | null = null;
  private identity!: WireGuardIdentity;
  private nodeId!: string;
  private address!: NodeAddress;
  private linkChoice!: IdentityLinkChoice;
  private statuses = new Map<string, PeerStatus>();
  private specs: PeerSpec[] = [];
  private harvested: HarvestedEndpoint[] = [];
  private localEps: Endpoint[] = [];
  private cachedAffiliates: DiscoveredAffiliate[] = [];
  private timer: NodeJS.Timeout | null = null;
  private dirty = false;
  private passRunning: Promise<void> | null = null;
  private failures = 0;
  private stopping = false;
  private lastReconcileAt = 0;
  private reconcileErrors = 0;
  private reconcilePasses = 0;
  private startedAt = 0;
  private reloading = false;
  private readonly peerCounters = new Map<string, PeerCounters>();
  private readonly stoppedListeners: ((reason: string) => void)[] = [];
  private vip: VipManager | null = null;
  private readonly reconciledListeners: (() => void)[] = [];

  constructor(
    private settings: DaemonSettings,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  get deviceName(): string {
    return this.settings.node.interface;
  }

  /** Sets up identity, device, dataplane and discovery, then runs the first pass. */
  async start(): Promise<void> {
    const { node, kubespan } = this.settings;
    this.startedAt = this.now();
    this.identity = loadOrCreateIdentity(node.stateDir);
    this.nodeId = loadOrCreateNodeId(node.stateDir).nodeId;
    const links = await listLinks();
    this.linkChoice = pickIdentityLink(links.filter((l) => l.name !== node.interface), node.identityLinkSelector ? await identityLinkName(node.identityLinkSelector) : node.identityLink);
    if (node.endpointLinks) await endpointLinkNames(node.endpointLinks, { strict: true }); // a selector that matches nothing is a config error
    this.address = nodeAddressFor(this.settings.clusterId, this.linkChoice.link.mac!);
    this.log.info(
      { nodeId: this.nodeId, publicKey: this.identity.publicKeyBase64, address: this.address.ip, link: this.linkChoice.description, identityFile: this.identity.path },
      this.identity.created ? 'generated a new KubeSpan identity' : 'loaded KubeSpan identity',
    );
    this.cachedAffiliates = this.loadCache();

    this.running = await startDevice({ ifname: node.interface, mtu: kubespan.mtu, log: this.log, listenPort: node.listenPort });
    this.running.device.setPrivateKey(this.identity.privateKey);
    this.running.device.setFwmark(FWMARK_WIREGUARD);
    void this.running.stopped.then((reason) => void this.stop(reason));
    // a completed handshake or a roam changes a peer's state: re-evaluate soon instead of at the next tick
    this.running.device.onDeviceEvent((e) => {
      this.countEvent(e);
      if (e.kind === 'handshake-complete' || e.kind === 'endpoint-roamed') this.markDirtySoon();
    });
    this.dataplane = new Dataplane({ ifname: node.interface, mtu: kubespan.mtu, address: `${this.address.ip}/64` });
    await this.dataplane.setup();
    if (this.settings.vip) this.vip = await startVip(this.settings.vip, this.log);

    if (this.settings.discovery.enabled) this.startDiscovery();
    else this.log.warn('discovery is disabled: peers come only from the on-disk cache');
    await this.reconcileNow();
    this.timer = setInterval(() => this.markDirty(), PEER_RECONCILE_INTERVAL_MS);
  }

  private counters(publicKey: string): PeerCounters {
    let c = this.peerCounters.get(publicKey);
    if (!c) {
      c = { endpointChanges: 0, handshakeAttempts: 0, handshakeFailures: 0, handshakes: 0 };
      this.peerCounters.set(publicKey, c);
    }
    return c;
  }

  /** Handshake attempts, failures (an initiation retried after REKEY_TIMEOUT, or given up) and roams. */
  private countEvent(e: DeviceEvent): void {
    if (e.kind === 'under-load') return;
    const c = this.counters(keyToBase64(e.peer.publicKey));
    switch (e.kind) {
      case 'handshake-initiated':
        c.handshakeAttempts++;
        if (e.retry) c.handshakeFailures++;
        break;
      case 'handshake-gave-up':
        c.handshakeFailures++;
        break;
      case 'handshake-complete':
        c.handshakes++;
        break;
      case 'endpoint-roamed':
        c.endpointChanges++;
        break;
    }
  }

  private startDiscovery(): void {
    const d = this.settings.discovery;
    this.client = new DiscoveryClient({
      endpoint: d.endpoint,
      clusterId: this.settings.clusterId,
      clusterSecret: this.settings.clusterSecret,
      affiliateId: this.nodeId,
      clientVersion: `v${VERSION}`,
      caFiles: d.caFiles,
      ...(d.nameservers && d.nameservers.length > 0 ? { nameservers: d.nameservers } : {}),
      ...(d.proxy ? { proxy: d.proxy } : {}),
      logger: this.log,
    });
    this.client.onChange(() => this.markDirty());
    this.client.start();
  }

  onStopped(cb: (reason: string) => void): void {
    this.stoppedListeners.push(cb);
  }

  /** Called after every successful reconcile pass (run.ts reports a STATUS= line to systemd). */
  onReconciled(cb: () => void): void {
    this.reconciledListeners.push(cb);
  }

  private soonTimer: NodeJS.Timeout | null = null;
  private recheckTimer: NodeJS.Timeout | null = null;

  /** Debounced markDirty for bursts of device events. */
  private markDirtySoon(delayMs = 200): void {
    if (this.soonTimer || this.stopping) return;
    this.soonTimer = setTimeout(() => {
      this.soonTimer = null;
      this.markDirty();
    }, delayMs);
  }

  /**
   * A freshly chosen endpoint is judged ENDPOINT_CONNECTION_TIMEOUT after the choice; re-evaluate then
   * rather than at the next 30 s tick, so a dead candidate is abandoned after ~15 s.
   */
  private scheduleRecheck(now: number): void {
    let next = Infinity;
    for (const s of this.statuses.values()) {
      if (s.state !== 'unknown' || !s.lastEndpointChange) continue;
      const due = s.lastEndpointChange + ENDPOINT_CONNECTION_TIMEOUT_MS + 500;
      if (due > now && due < next) next = due;
    }
    if (this.recheckTimer) clearTimeout(this.recheckTimer);
    this.recheckTimer = null;
    if (next !== Infinity && !this.stopping) this.recheckTimer = setTimeout(() => this.markDirty(), next - now);
  }

  /** Coalesces triggers: at most one pass runs, and one more follows if anything changed meanwhile. */
  markDirty(): void {
    this.dirty = true;
    if (this.passRunning || this.stopping || this.reloading) return;
    this.passRunning = (async () => {
      while (this.dirty && !this.stopping && !this.reloading) {
        this.dirty = false;
        try {
          await this.reconcileNow();
          this.failures = 0;
          for (const cb of this.reconciledListeners) cb();
        } catch (err) {
          this.failures++;
          this.reconcileErrors++;
          const delay = Math.min(30_000, 500 * 2 ** Math.min(this.failures, 6));
          this.log.error({ err: err instanceof Error ? err.message : String(err), retryInMs: delay }, 'reconcile failed');
          await new Promise((r) => setTimeout(r, delay));
          this.dirty = true;
        }
      }
      this.passRunning = null;
    })();
  }

  private affiliates(): DiscoveredAffiliate[] {
    const live = this.client?.affiliates() ?? [];
    // until discovery has answered once, the last known peers keep the node meshed (Talos cannot do this)
    if (live.length === 0 && this.client?.state() !== 'connected') return this.cachedAffiliates;
    return live;
  }

  /** One level-triggered pass over every input. */
  async reconcileNow(): Promise<void> {
    const running = this.running;
    if (!running || !this.dataplane) return;
    const device = running.device;
    const { kubespan, node } = this.settings;
    const now = this.now();

    // local affiliate and endpoints
    const links = await listLinks();
    // the floating VIP is never one of this node's own addresses; endpointLinks narrows the endpoints only
    const addressOpts = { kubespanAddress: `${this.address.ip}/64`, kubespanInterface: node.interface, excludePrefixes: [...node.podCIDRs, ...vipPrefixes(this.settings.vip)] };
    const usable = usableNodeAddresses(links, addressOpts);
    const endpointAddresses = node.endpointLinks ? usableNodeAddresses(await endpointLinks(links, node.endpointLinks), addressOpts) : usable;
    const publicIp = this.client?.publicIp();
    this.localEps = localEndpoints({ addresses: endpointAddresses, publicIps: publicIp ? [publicIp] : [], filters: kubespan.endpointFilters, extraAnnouncedEndpoints: kubespan.extraAnnouncedEndpoints, port: node.listenPort });
    if (this.client) {
      const local: LocalAffiliate = {
        nodeId: this.nodeId,
        addresses: routedAddresses({ addresses: usable, kubespanAddress: this.address.ip, podCIDRs: node.podCIDRs }),
        hostname: node.hostname,
        nodename: node.nodeName,
        machineType: 'worker',
        operatingSystem: `kubespand (v${VERSION})`,
        kubespan: {
          publicKey: this.identity.publicKeyBase64,
          address: this.address.ip,
          additionalAddresses: kubespan.advertiseKubernetesNetworks ? node.podCIDRs : [],
          excludeAdvertisedAddresses: kubespan.excludeAdvertisedNetworks,
        },
      };
      this.client.setLocalAffiliate(local);
      this.client.setLocalEndpoints(this.localEps);
    }

    // peer specs
    const affiliates = this.affiliates();
    const built = buildPeerSpecs(affiliates, this.identity.publicKeyBase64, this.nodeId);
    for (const o of built.overlaps) this.log.warn({ peer: o.label, removed: o.removed }, 'peer address overlap: ranges kept by an earlier peer were removed');
    for (const s of built.skipped) this.log.warn({ nodeId: s.nodeId, reason: s.reason }, 'affiliate skipped');
    this.specs = built.specs;

    // statuses and desired WireGuard peers
    const observed = new Map<string, DevicePeerSnapshot>();
    for (const p of device.getState().peers) {
      const key = keyToBase64(p.publicKey);
      observed.set(key, { publicKey: key, endpoint: p.endpoint, lastHandshakeTime: p.lastHandshakeWallMs, receiveBytes: p.rxBytes, transmitBytes: p.txBytes });
    }
    const out = reconcilePeers({
      now,
      specs: this.specs,
      previous: this.statuses,
      device: observed,
      presharedKey: this.settings.clusterSecret,
      allowDownPeerBypass: kubespan.allowDownPeerBypass,
      harvestExtraEndpoints: kubespan.harvestExtraEndpoints,
    });
    for (const c of out.endpointChanges) {
      this.counters(c.publicKey).endpointChanges++;
      this.log.info({ peer: tagOf(c.publicKey), label: c.label, from: c.from, to: c.to }, 'peer endpoint changed');
    }
    for (const s of out.statuses) {
      const before = this.statuses.get(s.publicKey);
      if (before && before.state !== s.state) this.log.info({ peer: tagOf(s.publicKey), label: s.label, from: before.state, to: s.state }, 'peer state changed');
    }
    this.applyDevicePeers(out.devicePeers, observed);
    this.statuses = new Map(out.statuses.map((s) => [s.publicKey, s]));
    await this.dataplane.applyTargets(out.targetPrefixes);

    // harvested endpoints go back to discovery under the peer's affiliate id
    this.harvested = out.harvested;
    if (this.client) {
      const byAffiliate = new Map<string, AffiliateEndpoint[]>();
      for (const h of out.harvested) byAffiliate.set(h.affiliateId, [...(byAffiliate.get(h.affiliateId) ?? []), h.endpoint]);
      this.client.setHarvestedEndpoints(byAffiliate);
    }
    if (this.client?.state() === 'connected' && affiliates.length > 0) this.saveCache(affiliates);
    for (const key of this.peerCounters.keys()) if (!this.statuses.has(key) && !observed.has(key)) this.peerCounters.delete(key);
    this.lastReconcileAt = now;
    this.reconcilePasses++;
    this.scheduleRecheck(now);
  }

  /** Diff the desired peers against the device: add, update, and remove what was not touched. */
  private applyDevicePeers(desired: DesiredDevicePeer[], observed: Map<string, DevicePeerSnapshot>): void {
    const device = this.running!.device;
    const wanted = new Set<string>();
    for (const d of desired) {
      wanted.add(d.publicKey);
      const pub = keyFromBase64(d.publicKey, 'peer public key');
      const isNew = !device.hasPeer(pub);
      if (isNew) device.createPeer(pub);
      const state = device.getState().peers.find((p) => keyToBase64(p.publicKey) === d.publicKey);
      const psk = keyFromBase64(d.presharedKey, 'cluster secret');
      if (isNew || !state?.presharedKey || Buffer.compare(Buffer.from(state.presharedKey), Buffer.from(psk)) !== 0) device.setPresharedKey(pub, psk);
      // the endpoint before the keepalive (as wg and wgctrl order them): turning the keepalive on sends at
      // once, and an initiation with no endpoint yet is lost and holds the next one back REKEY_TIMEOUT (5 s)
      if (d.endpoint && !sameEndpoint(observed.get(d.publicKey)?.endpoint ?? null, d.endpoint)) device.setEndpoint(pub, d.endpoint);
      if (isNew || state?.persistentKeepaliveSec !== d.persistentKeepaliveSec) device.setPersistentKeepalive(pub, d.persistentKeepaliveSec);
      const have = (state?.allowedIps ?? []).map(formatPrefix);
      const want = d.allowedIps.map((c) => formatPrefix(parsePrefix(c)));
      if (isNew || have.join(',') !== want.join(',')) {
        device.replaceAllowedIps(pub);
        for (const c of d.allowedIps) device.addAllowedIp(pub, parsePrefix(c));
      }
      device.peerDone(pub);
    }
    for (const key of observed.keys()) {
      if (!wanted.has(key)) {
        device.removePeer(keyFromBase64(key, 'peer public key'));
        this.log.info({ peer: tagOf(key) }, 'peer removed');
      }
    }
  }

  // ---- on-disk cache of the last known affiliates, so a node restarted during a discovery outage rejoins

  private cachePath(): string {
    return join(this.settings.node.stateDir, CACHE_FILE);
  }

  private loadCache(): DiscoveredAffiliate[] {
    // it lists the cluster's members and their endpoints: refused (not silently used) when others can read it
    if (existsSync(this.cachePath())) refuseOpenMode(this.cachePath(), "the cluster's last known peers");
    try {
      const raw = JSON.parse(readFileSync(this.cachePath(), 'utf8')) as { clusterIdHash: string; affiliates: DiscoveredAffiliate[] };
      if (raw.clusterIdHash !== createHash('sha256').update(this.settings.clusterId).digest('hex')) return [];
      return Array.isArray(raw.affiliates) ? raw.affiliates : [];
    } catch {
      return [];
    }
  }

  private lastCacheJson = '';

  private saveCache(affiliates: DiscoveredAffiliate[]): void {
    const json = JSON.stringify({ clusterIdHash: createHash('sha256').update(this.settings.clusterId).digest('hex'), affiliates });
    if (json === this.lastCacheJson) return;
    try {
      mkdirSync(this.settings.node.stateDir, { recursive: true, mode: 0o700 });
      const tmp = `${this.cachePath()}.tmp`;
      writeFileSync(tmp, json, { mode: 0o600 });
      renameSync(tmp, this.cachePath());
      this.lastCacheJson = json;
      this.cachedAffiliates = affiliates;
    } catch (err) {
      this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'could not write the affiliate cache');
    }
  }

  // ---- views

  /** The last pass's statuses with WireGuard's live counters, endpoint and handshake time laid over. */
  private liveStatuses(): PeerStatus[] {
    const live = new Map((this.running?.device.getState().peers ?? []).map((p) => [keyToBase64(p.publicKey), p]));
    return [...this.statuses.values()].map((s) => {
      const o = live.get(s.publicKey);
      return o ? { ...s, endpoint: o.endpoint, receiveBytes: o.rxBytes, transmitBytes: o.txBytes, lastHandshakeTime: o.lastHandshakeWallMs } : s;
    });
  }

  resources(): DaemonResources {
    return {
      kubespanidentities: [
        { id: 'local', address: this.address.address, subnet: this.address.subnet, publicKey: this.identity.publicKeyBase64, nodeId: this.nodeId, link: this.linkChoice.description },
      ],
      kubespanpeerspecs: this.specs.map(({ publicKey, ...rest }) => ({ id: publicKey, ...rest })),
      kubespanpeerstatuses: this.liveStatuses().map(({ publicKey, ...rest }) => ({ id: publicKey, ...rest })),
      kubespanendpoints: this.harvested.map((h) => ({ id: h.publicKey, affiliateID: h.affiliateId, endpoint: h.endpoint.address.includes(':') ? `[${h.endpoint.address}]:${h.endpoint.port}` : `${h.endpoint.address}:${h.endpoint.port}` })),
      affiliates: this.affiliates(),
      vip: this.vip ? [this.vip.state] : [],
    };
  }

  status(): DaemonStatus {
    const c = this.client;
    const publicIp = c?.publicIp();
    const lastError = c?.lastError();
    const { kubespan, node } = this.settings;
    return {
      version: VERSION,
      nodeId: this.nodeId,
      nodeName: node.nodeName,
      hostname: node.hostname,
      publicKey: this.identity.publicKeyBase64,
      address: this.address.ip,
      interface: node.interface,
      listenPort: this.running?.device.getState().listenPort ?? node.listenPort,
      startedAt: this.startedAt,
      discovery: {
        enabled: this.settings.discovery.enabled,
        state: c ? c.state() : 'disabled',
        endpoint: this.settings.discovery.endpoint,
        ...(publicIp ? { publicIp } : {}),
        ...(lastError ? { lastError } : {}),
        affiliates: c?.affiliates().length ?? 0,
      },
      localEndpoints: this.localEps,
      settings: {
        mtu: kubespan.mtu,
        allowDownPeerBypass: kubespan.allowDownPeerBypass,
        harvestExtraEndpoints: kubespan.harvestExtraEndpoints,
        endpointFilters: [...kubespan.endpointFilters],
        extraAnnouncedEndpoints: [...kubespan.extraAnnouncedEndpoints],
      },
      lastReconcileAt: this.lastReconcileAt,
      reconcileErrors: this.reconcileErrors,
    };
  }

  /** One consistent view for a metrics scrape (src/metrics/metrics.ts). Public data only. */
  metricsSnapshot(reloads: MetricsSnapshot['reloads']): MetricsSnapshot {
    const device = this.running?.device;
    const observed = new Map((device?.getState().peers ?? []).map((p) => [keyToBase64(p.publicKey), p]));
    const peers: PeerMetrics[] = [...this.statuses.values()].map((s) => {
      const o = observed.get(s.publicKey);
      const c = this.peerCounters.get(s.publicKey);
      return {
        publicKey: s.publicKey,
        label: s.label,
        state: s.state,
        // the device's live counters when it has the peer, else the last pass's view
        receiveBytes: o?.rxBytes ?? s.receiveBytes,
        transmitBytes: o?.txBytes ?? s.transmitBytes,
        lastHandshakeTime: o?.lastHandshakeWallMs ?? s.lastHandshakeTime,
        endpointChanges: c?.endpointChanges ?? 0,
        handshakeAttempts: c?.handshakeAttempts ?? 0,
        handshakeFailures: c?.handshakeFailures ?? 0,
        handshakes: c?.handshakes ?? 0,
      };
    });
    const stats = device?.stats;
    return {
      peers,
      drops: device?.core.drops ?? new Map(),
      device: {
        datagramsIn: stats?.datagramsIn ?? 0,
        datagramsOut: stats?.datagramsOut ?? 0,
        packetsFromTun: stats?.packetsFromTun ?? 0,
        packetsToTun: stats?.packetsToTun ?? 0,
        internalErrors: device?.internalErrors ?? 0,
      },
      discovery: {
        state: this.client ? this.client.state() : 'disabled',
        affiliates: this.client?.affiliates().length ?? 0,
        events: { ...(this.client?.counters() ?? {}) },
      },
      reconcile: { passes: this.reconcilePasses, errors: this.reconcileErrors, lastSuccessAt: this.lastReconcileAt },
      reloads,
    };
  }

  /**
   * Takes a reloaded config in place. The caller (ConfigReloader) has refused changes to the identity,
   * device and socket keys; `changed` names the config keys that differ. Passes are held off while the
   * settings change, then one pass runs with the new ones before this resolves.
   *
   * MTU: the link, the table-180 routes and the MSS clamp follow, and the core pads to the new MTU.
   * Discovery (endpoint, CAs, proxies): a new client replaces the old one; until it has answered, the
   * last affiliates it saw keep the peers configured, so sessions do not drop across the switch.
   */
  async applySettings(next: DaemonSettings, changed: readonly string[]): Promise<void> {
    if (next.clusterId !== this.settings.clusterId || next.clusterSecret !== this.settings.clusterSecret || next.node.stateDir !== this.settings.node.stateDir
      || next.node.interface !== this.settings.node.interface || next.node.listenPort !== this.settings.node.listenPort || next.node.identityLink !== this.settings.node.identityLink) {
      throw new Error('applySettings: identity, interface or listen port changed; these need a restart');
    }
    if (this.stopping) throw new Error('the daemon is stopping');
    this.reloading = true;
    try {
      await this.passRunning?.catch(() => undefined);
      if (next.kubespan.mtu !== this.settings.kubespan.mtu && this.running) {
        const dataplane = new Dataplane({ ifname: next.node.interface, mtu: next.kubespan.mtu, address: `${this.address.ip}/64` });
        await dataplane.setup();
        this.running.device.core.mtu = next.kubespan.mtu;
        this.dataplane = dataplane; // a fresh instance re-renders the nftables table (MSS clamp) on the next pass
      }
      const discoveryChanged = !isDeepStrictEqual(next.discovery, this.settings.discovery);
      this.settings = next;
      if (discoveryChanged) {
        const old = this.client;
        if (old) {
          if (old.state() === 'connected') this.cachedAffiliates = old.affiliates();
          this.client = null;
          await old.stop().catch(() => undefined);
        }
        if (next.discovery.enabled) this.startDiscovery();
      }
      this.log.debug({ changed }, 'new settings in place');
    } finally {
      this.reloading = false;
    }
    this.markDirty();
    await this.passRunning;
  }

  /** Deletes our affiliate from discovery (`kubespand leave`). */
  async leave(): Promise<void> {
    if (!this.client) throw new Error('discovery is disabled');
    await this.client.leave();
  }

  /** Stops everything and removes what we installed on the host (the affiliate stays until its TTL). */
  async stop(reason: string): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info({ reason }, 'stopping');
    if (this.timer) clearInterval(this.timer);
    if (this.soonTimer) clearTimeout(this.soonTimer);
    if (this.recheckTimer) clearTimeout(this.recheckTimer);
    await this.passRunning?.catch(() => undefined);
    await this.client?.stop().catch(() => undefined);
    await this.vip?.stop().catch((err: unknown) => this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'vip: stop failed'));
    const errors = (await this.dataplane?.teardown()) ?? [];
    for (const e of errors) this.log.warn({ err: e }, 'teardown step failed');
    await this.running?.stop(reason);
    for (const cb of this.stoppedListeners) cb(reason);
  }
}
