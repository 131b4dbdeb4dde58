/**
 * The shared virtual IP: every node configured with the same `machine.network.vip.ip` runs a
 * VipManager; through etcd they elect one owner, which puts the address on its link and announces
 * it (src/vip/address.ts). Talos: Layer2 VIP operator (spec/kubespan.md §7).
 *
 * Timing, with T the lease TTL (seconds):
 * - nothing happens until etcd answers: the VIP is never brought up before etcd is reachable;
 * - a candidate keeps its lease alive and campaigns (create the key only if absent); a follower
 *   watches the key and campaigns again when it changes, or every T/3 at the latest;
 * - the owner sends a keep-alive every T/3. If none has succeeded for 2T/3 — measured from when
 *   the last good one was SENT, which is no later than when etcd refreshed the lease — it takes the
 *   address down: the lease cannot have expired yet, so no other node can have won, and there is
 *   never more than one owner. A lost lease (keep-alive answers TTL 0) or a key that now names
 *   someone else releases at once;
 * - on stop the owner takes the address down first, then revokes its lease, which deletes the key
 *   and wakes the watchers: a clean handover takes one watch round-trip. A crashed owner is
 *   replaced when its lease expires, at most T after its last keep-alive.
 * - while etcd is unreachable nobody owns the VIP (after at most 2T/3).
 */
import type { Logger } from '../log.js';
import type { ElectionStore } from './election-store.js';
import type { VipAddress } from './address.js';

export type VipState = 'waiting-for-etcd' | 'follower' | 'owner' | 'etcd-unreachable' | 'stopped';

/** What `kubespand get vip` shows. */
export interface VipView {
  id: string;
  ip: string;
  link: string;
  state: VipState;
  /** The owner's name as etcd says; undefined when unknown (etcd unreachable) or vacant. */
  owner: string | undefined;
  /** This node's name in the election. */
  self: string;
  /** Unix ms when the state was entered. */
  since: number;
  /** How many times this node became the owner. */
  acquisitions: number;
  lastError: string | undefined;
}

export interface VipManagerOptions {
  ip: string;
  link: string;
  /** This node's name in the election (the campaign key's value). */
  self: string;
  leaseTtlSec: number;
  store: ElectionStore;
  address: VipAddress;
  log: Logger;
  /** The campaign key; default `/kubespand/vip/<ip>`. */
  key?: string;
  now?: () => number;
}

export function campaignKey(ip: string): string {
  return `/kubespand/vip/${ip}`;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class VipManager {
  private readonly key: string;
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly abort = new AbortController();
  private loop: Promise<void> | null = null;
  private lease: string | undefined;
  /** When the last successful grant/keep-alive was sent: the lease lives at least until this + T. */
  private leaseFreshAt = 0;
  /** The address may be on the link (set before add, cleared after remove). */
  private holding = false;
  private everConnected = false;
  private view: VipView;

  constructor(private readonly opts: VipManagerOptions) {
    this.key = opts.key ?? campaignKey(opts.ip);
    this.ttlMs = opts.leaseTtlSec * 1000;
    this.now = opts.now ?? Date.now;
    this.view = {
      id: opts.ip,
      ip: opts.ip,
      link: opts.link,
      state: 'waiting-for-etcd',
      owner: undefined,
      self: opts.self,
      since: this.now(),
      acquisitions: 0,
      lastError: undefined,
    };
  }

  get state(): VipView {
    return { ...this.view };
  }

  private setState(state: VipState, owner: string | undefined, lastError?: string): void {
    const changed = state !== this.view.state || owner !== this.view.owner;
    this.view = { ...this.view, state, owner, since: state !== this.view.state ? this.now() : this.view.since, lastError: lastError ?? (state === 'owner' || state === 'follower' ? undefined : this.view.lastError) };
    if (changed) this.opts.log.info({ vip: this.opts.ip, state, owner, ...(lastError ? { err: lastError } : {}) }, `vip: ${state}${owner && state !== 'owner' ? ` (owner ${owner})` : ''}`);
  }

  /** Starts the election in the background. A VIP left on the link by a crashed run is removed first. */
  async start(): Promise<void> {
    try {
      if (await this.opts.address.present()) {
        this.opts.log.warn({ vip: this.opts.ip, link: this.opts.link }, 'vip: removing an address left on the link by an earlier run');
        await this.opts.address.remove();
      }
    } catch (err) {
      this.opts.log.warn({ err: message(err) }, 'vip: cannot check the link for a leftover address');
    }
    this.loop = this.run();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.abort.signal.aborted) return resolve();
      const t = setTimeout(done, Math.max(0, ms));
      const signal = this.abort.signal;
      function done(): void {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done);
    });
  }

  private get stopping(): boolean {
    return this.abort.signal.aborted;
  }

  /** Makes sure we hold a live lease; records when it was last refreshed. */
  private async freshLease(): Promise<string> {
    const sent = this.now();
    if (this.lease !== undefined) {
      const ttl = await this.opts.store.keepAlive(this.lease, this.abort.signal);
      if (ttl > 0) {
        this.leaseFreshAt = sent;
        return this.lease;
      }
      this.lease = undefined;
    }
    const lease = await this.opts.store.grant(this.opts.leaseTtlSec, this.abort.signal);
    this.lease = lease;
    this.leaseFreshAt = sent;
    return lease;
  }

  private async run(): Promise<void> {
    const retryMs = Math.min(1_000, this.ttlMs / 3);
    while (!this.stopping) {
      try {
        const lease = await this.freshLease();
        const r = await this.opts.store.campaign(this.key, this.opts.self, lease, this.abort.signal);
        this.everConnected = true;
        if (this.stopping) break;
        if (r.won || r.ownerLease === lease) {
          await this.own(lease);
          continue;
        }
        this.setState('follower', r.owner);
        await this.opts.store.watch(this.key, r.revision, this.ttlMs / 3, this.abort.signal);
      } catch (err) {
        if (this.stopping) break;
        this.setState(this.everConnected ? 'etcd-unreachable' : 'waiting-for-etcd', undefined, message(err));
        await this.sleep(retryMs);
      }
    }
  }

  /** Holds the VIP until the lease is lost, cannot be confirmed in time, or we stop. */
  private async own(lease: string): Promise<void> {
    this.holding = true;
    try {
      await this.opts.address.add();
    } catch (err) {
      // cannot carry the address: give the key up so another node can
      this.opts.log.error({ vip: this.opts.ip, link: this.opts.link, err: message(err) }, 'vip: cannot add the address; giving up ownership');
      await this.releaseAddress();
      await this.opts.store.revoke(lease).catch(() => undefined);
      this.lease = undefined;
      this.setState('follower', undefined, message(err));
      await this.sleep(this.ttlMs);
      return;
    }
    this.view.acquisitions++;
    this.setState('owner', this.opts.self);
    const interval = this.ttlMs / 3;
    let next = this.now() + interval;
    while (!this.stopping) {
      const deadline = this.leaseFreshAt + (2 * this.ttlMs) / 3;
      await this.sleep(Math.min(next, deadline) - this.now());
      if (this.stopping) return;
      if (this.now() >= deadline) {
        await this.release('etcd-unreachable', 'no keep-alive confirmed within 2/3 of the lease TTL');
        return;
      }
      const sent = this.now();
      try {
        const ttl = await this.opts.store.keepAlive(lease, this.abort.signal);
        if (this.stopping) return;
        if (ttl <= 0) {
          this.lease = undefined;
          await this.release('follower', 'the lease expired');
          return;
        }
        this.leaseFreshAt = sent;
        const r = await this.opts.store.campaign(this.key, this.opts.self, lease, this.abort.signal);
        if (!r.won && r.ownerLease !== lease) {
          await this.release('follower', `the campaign key now names ${r.owner ?? 'nobody'}`);
          return;
        }
        next = sent + interval;
      } catch (err) {
        if (this.stopping) return;
        this.view.lastError = message(err);
        // try again soon; the deadline check above releases in time
        next = this.now() + Math.min(500, interval / 2);
      }
    }
  }

  private async releaseAddress(): Promise<void> {
    try {
      await this.opts.address.remove();
      this.holding = false;
    } catch (err) {
      this.opts.log.error({ vip: this.opts.ip, err: message(err) }, 'vip: cannot remove the address');
    }
  }

  private async release(state: VipState, why: string): Promise<void> {
    this.opts.log.warn({ vip: this.opts.ip, reason: why }, 'vip: releasing the address');
    await this.releaseAddress();
    this.setState(state, undefined, why);
  }

  /** Takes the address down (if held), then revokes the lease so another node takes over at once. */
  async stop(): Promise<void> {
    if (this.view.state === 'stopped') return;
    this.abort.abort();
    await this.loop?.catch(() => undefined);
    if (this.holding) await this.releaseAddress();
    if (this.lease !== undefined) {
      const ctl = new AbortController();
      const t = setTimeout(() => ctl.abort(), 2_000);
      try {
        await this.opts.store.revoke(this.lease, ctl.signal);
      } catch (err) {
        this.opts.log.warn({ err: message(err) }, 'vip: cannot revoke the lease; another node takes over when it expires');
      } finally {
        clearTimeout(t);
      }
      this.lease = undefined;
    }
    this.opts.store.close();
    this.setState('stopped', undefined);
  }
}
