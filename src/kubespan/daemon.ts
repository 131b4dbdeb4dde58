/**
 * The KubeSpan node: identity, the `kubespan` WireGuard device, the dataplane, the discovery client
 * and the reconcile loop that joins them (Talos: LocalAffiliate, DiscoveryService, PeerSpec, Manager
 * and Endpoint controllers, in one process). Level-triggered: every pass reads all inputs fresh
 * (affiliates, WireGuard's peer stats, host links), computes the desired state with the pure
 * functions of src/peer, applies it, and deletes what it did not touch. Passes run on any input
 * change (coalesced) and at least every 30 s; a failing pass is logged and retried with back-off.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { DiscoveryClient } from '../discovery-client/client.js';
import type { AffiliateEndpoint, DiscoveredAffiliate, LocalAffiliate } from '../discovery/types.js';
import { startDevice, type RunningDevice } from '../device/runtime.js';
import { keyFromBase64, keyToBase64 } from '../noise/keys.js';
import { formatPrefix, parsePrefix } from '../noise/allowed-ips.js';
import { buildPeerSpecs } from '../peer/peer-spec.js';
import { reconcilePeers } from '../peer/peer-controller.js';
import { ENDPOINT_CONNECTION_TIMEOUT_MS, PEER_RECONCILE_INTERVAL_MS } from '../peer/peer-status.js';
import { sameEndpoint, type DesiredDevicePeer, type DevicePeerSnapshot, type Endpoint, type HarvestedEndpoint, type PeerSpec, type PeerStatus } from '../peer/types.js';
import { Dataplane, FWMARK_WIREGUARD } from './dataplane.js';
import { loadOrCreateIdentity, loadOrCreateNodeId, nodeAddressFor, type NodeAddress, type WireGuardIdentity } from './identity.js';
import { listLinks, pickIdentityLink, type IdentityLinkChoice } from './links.js';
import { localEndpoints, routedAddresses, usableNodeAddresses } from './endpoints.js';
import type { Logger } from '../log.js';
import type { ProxySettings } from '../discovery-client/proxy.js';

export const VERSION = '0.1.0';

/** Everything the daemon needs, already validated (src/kubespan/config.ts maps the YAML file to it). */
export interface DaemonSettings {
  clusterId: string;
  /** Standard base64 of 32 bytes: the discovery AES key and every peer's WireGuard preshared key. */
  clusterSecret: string;
  discovery: { enabled: boolean; endpoint: string; caFiles: string[]; proxy?: ProxySettings };
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
  };
}

/** The resources `kubespand get` shows, with talosctl's names. */
export interface DaemonResources {
  kubespanidentities: { id: 'local'; address: string; subnet: string; publicKey: string; nodeId: string; link: string }[];
  kubespanpeerspecs: ({ id: string } & Omit<PeerSpec, 'publicKey'>)[];
  kubespanpeerstatuses: ({ id: string } & Omit<PeerStatus, 'publicKey'>)[];
  kubespanendpoints: { id: string; affiliateID: string; endpoint: string }[];
  affiliates: DiscoveredAffiliate[];
}

export interface DaemonStatus {
  nodeId: string;
  publicKey: string;
  address: string;
  discovery: { enabled: boolean; state: string; endpoint: string; publicIp?: string; lastError?: string; affiliates: number };
  localEndpoints: Endpoint[];
  lastReconcileAt: number;
  reconcileErrors: number;
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
  private readonly stoppedListeners: ((reason: string) => void)[] = [];

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
    this.identity = loadOrCreateIdentity(node.stateDir);
    this.nodeId = loadOrCreateNodeId(node.stateDir).nodeId;
    const links = await listLinks();
    this.linkChoice = pickIdentityLink(links.filter((l) => l.name !== node.interface), node.identityLink);
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
      if (e.kind === 'handshake-complete' || e.kind === 'endpoint-roamed') this.markDirtySoon();
    });
    this.dataplane = new Dataplane({ ifname: node.interface, mtu: kubespan.mtu, address: `${this.address.ip}/64` });
    await this.dataplane.setup();

    if (this.settings.discovery.enabled) this.startDiscovery();
    else this.log.warn('discovery is disabled: peers come only from the on-disk cache');
    await this.reconcileNow();
    this.timer = setInterval(() => this.markDirty(), PEER_RECONCILE_INTERVAL_MS);
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
      ...(d.proxy ? { proxy: d.proxy } : {}),
      logger: this.log,
    });
    this.client.onChange(() => this.markDirty());
    this.client.start();
  }

  onStopped(cb: (reason: string) => void): void {
    this.stoppedListeners.push(cb);
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
    if (this.passRunning || this.stopping) return;
    this.passRunning = (async () => {
      while (this.dirty && !this.stopping) {
        this.dirty = false;
        try {
          await this.reconcileNow();
          this.failures = 0;
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
    const usable = usableNodeAddresses(links, { kubespanAddress: `${this.address.ip}/64`, kubespanInterface: node.interface, excludePrefixes: node.podCIDRs });
    const publicIp = this.client?.publicIp();
    this.localEps = localEndpoints({ addresses: usable, publicIps: publicIp ? [publicIp] : [], filters: kubespan.endpointFilters, extraAnnouncedEndpoints: kubespan.extraAnnouncedEndpoints, port: node.listenPort });
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
    for (const c of out.endpointChanges) this.log.info({ peer: c.label, from: c.from, to: c.to }, 'peer endpoint changed');
    for (const s of out.statuses) {
      const before = this.statuses.get(s.publicKey);
      if (before && before.state !== s.state) this.log.info({ peer: s.label, from: before.state, to: s.state }, 'peer state changed');
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
    this.lastReconcileAt = now;
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
      if (isNew || state?.persistentKeepaliveSec !== d.persistentKeepaliveSec) device.setPersistentKeepalive(pub, d.persistentKeepaliveSec);
      const have = (state?.allowedIps ?? []).map(formatPrefix);
      const want = d.allowedIps.map((c) => formatPrefix(parsePrefix(c)));
      if (isNew || have.join(',') !== want.join(',')) {
        device.replaceAllowedIps(pub);
        for (const c of d.allowedIps) device.addAllowedIp(pub, parsePrefix(c));
      }
      if (d.endpoint && !sameEndpoint(observed.get(d.publicKey)?.endpoint ?? null, d.endpoint)) device.setEndpoint(pub, d.endpoint);
      device.peerDone(pub);
    }
    for (const key of observed.keys()) {
      if (!wanted.has(key)) {
        device.removePeer(keyFromBase64(key, 'peer public key'));
        this.log.info({ publicKey: key }, 'peer removed');
      }
    }
  }

  // ---- on-disk cache of the last known affiliates, so a node restarted during a discovery outage rejoins

  private cachePath(): string {
    return join(this.settings.node.stateDir, CACHE_FILE);
  }

  private loadCache(): DiscoveredAffiliate[] {
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
    } catch (err) {
      this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'could not write the affiliate cache');
    }
  }

  // ---- views

  resources(): DaemonResources {
    return {
      kubespanidentities: [
        { id: 'local', address: this.address.address, subnet: this.address.subnet, publicKey: this.identity.publicKeyBase64, nodeId: this.nodeId, link: this.linkChoice.description },
      ],
      kubespanpeerspecs: this.specs.map(({ publicKey, ...rest }) => ({ id: publicKey, ...rest })),
      kubespanpeerstatuses: [...this.statuses.values()].map(({ publicKey, ...rest }) => ({ id: publicKey, ...rest })),
      kubespanendpoints: this.harvested.map((h) => ({ id: h.publicKey, affiliateID: h.affiliateId, endpoint: h.endpoint.address.includes(':') ? `[${h.endpoint.address}]:${h.endpoint.port}` : `${h.endpoint.address}:${h.endpoint.port}` })),
      affiliates: this.affiliates(),
    };
  }

  status(): DaemonStatus {
    const c = this.client;
    const publicIp = c?.publicIp();
    const lastError = c?.lastError();
    return {
      nodeId: this.nodeId,
      publicKey: this.identity.publicKeyBase64,
      address: this.address.ip,
      discovery: {
        enabled: this.settings.discovery.enabled,
        state: c ? c.state() : 'disabled',
        endpoint: this.settings.discovery.endpoint,
        ...(publicIp ? { publicIp } : {}),
        ...(lastError ? { lastError } : {}),
        affiliates: c?.affiliates().length ?? 0,
      },
      localEndpoints: this.localEps,
      lastReconcileAt: this.lastReconcileAt,
      reconcileErrors: this.reconcileErrors,
    };
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
    const errors = (await this.dataplane?.teardown()) ?? [];
    for (const e of errors) this.log.warn({ err: e }, 'teardown step failed');
    await this.running?.stop(reason);
    for (const cb of this.stoppedListeners) cb(reason);
  }
}
