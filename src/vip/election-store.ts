/**
 * What the VIP election needs from etcd — a lease, a campaign key created only if absent, and a
 * watch on that key — as an interface, with an in-memory twin for tests (one MemoryElectionStore
 * plays the etcd cluster that several managers share; it can be taken "down").
 *
 * Election: a node holds a lease (TTL T) and puts the campaign key with its name, attached to the
 * lease, only if the key does not exist (etcd txn on create_revision = 0). Whoever created the key
 * owns the VIP until its lease ends (revoked on a clean stop, or expired T after its last
 * keep-alive), when etcd deletes the key and a watcher campaigns again.
 */

export interface CampaignResult {
  /** True when this call created the key. */
  won: boolean;
  /** The value (owner name) and lease of the key as it now stands; undefined if it vanished meanwhile. */
  owner: string | undefined;
  ownerLease: string | undefined;
  /** Store revision of the answer; a watch from here sees every later change. */
  revision: string;
}

export interface ElectionStore {
  /** Grants a lease of `ttlSec` seconds; resolves with its id. */
  grant(ttlSec: number, signal?: AbortSignal): Promise<string>;
  /** Refreshes the lease; resolves with the TTL left in seconds, 0 when the lease no longer exists. */
  keepAlive(lease: string, signal?: AbortSignal): Promise<number>;
  /** Ends the lease (deleting the keys attached to it); a lease that does not exist is fine. */
  revoke(lease: string, signal?: AbortSignal): Promise<void>;
  /** Creates `key` = `value` on `lease` unless it exists; tells who holds it. */
  campaign(key: string, value: string, lease: string, signal?: AbortSignal): Promise<CampaignResult>;
  /** Resolves at the first change of `key` after `revision`, after `timeoutMs`, or when `signal` aborts. */
  watch(key: string, revision: string, timeoutMs: number, signal: AbortSignal): Promise<void>;
  /** Releases connections. */
  close(): void;
}

/** The in-memory twin: leases expire on the given clock; `setAvailable(false)` makes every call fail. */
export class MemoryElectionStore implements ElectionStore {
  private available = true;
  private nextLease = 1;
  private revision = 1;
  private readonly leases = new Map<string, number>();
  private readonly kv = new Map<string, { value: string; lease: string; revision: number }>();
  private readonly watchers = new Set<{ key: string; fire: () => void }>();
  private readonly timer: NodeJS.Timeout;
  /** Every call made, for assertions. */
  readonly calls: string[] = [];

  constructor(private readonly now: () => number = Date.now) {
    this.timer = setInterval(() => this.sweep(), 20);
    this.timer.unref();
  }

  setAvailable(up: boolean): void {
    this.available = up;
  }

  /** Who holds `key` (test helper; works while "down"). */
  holder(key: string): string | undefined {
    this.sweep();
    return this.kv.get(key)?.value;
  }

  private check(op: string, signal?: AbortSignal): void {
    this.calls.push(op);
    if (signal?.aborted) throw new Error('aborted');
    if (!this.available) throw new Error('etcd unreachable (memory store is down)');
    this.sweep();
  }

  private sweep(): void {
    const t = this.now();
    for (const [id, expires] of this.leases) {
      if (expires <= t) {
        this.leases.delete(id);
        for (const [k, v] of this.kv) if (v.lease === id) this.delete(k);
      }
    }
  }

  private delete(key: string): void {
    this.kv.delete(key);
    this.revision++;
    for (const w of [...this.watchers]) if (w.key === key) w.fire();
  }

  async grant(ttlSec: number, signal?: AbortSignal): Promise<string> {
    this.check('grant', signal);
    const id = String(this.nextLease++);
    this.leases.set(id, this.now() + ttlSec * 1000);
    this.ttls.set(id, ttlSec);
    return id;
  }

  private readonly ttls = new Map<string, number>();

  async keepAlive(lease: string, signal?: AbortSignal): Promise<number> {
    this.check('keepAlive', signal);
    if (!this.leases.has(lease)) return 0;
    const ttl = this.ttls.get(lease)!;
    this.leases.set(lease, this.now() + ttl * 1000);
    return ttl;
  }

  async revoke(lease: string, signal?: AbortSignal): Promise<void> {
    this.check('revoke', signal);
    this.leases.delete(lease);
    for (const [k, v] of this.kv) if (v.lease === lease) this.delete(k);
  }

  async campaign(key: string, value: string, lease: string, signal?: AbortSignal): Promise<CampaignResult> {
    this.check('campaign', signal);
    if (!this.leases.has(lease)) throw new Error(`lease ${lease} not found`);
    let won = false;
    if (!this.kv.has(key)) {
      this.revision++;
      this.kv.set(key, { value, lease, revision: this.revision });
      won = true;
    }
    const cur = this.kv.get(key);
    return { won, owner: cur?.value, ownerLease: cur?.lease, revision: String(this.revision) };
  }

  async watch(key: string, revision: string, timeoutMs: number, signal: AbortSignal): Promise<void> {
    this.check('watch', signal);
    if (this.revision > Number(revision) && !this.kv.has(key)) return;
    await new Promise<void>((resolve) => {
      const w = {
        key,
        fire: () => {
          this.watchers.delete(w);
          clearTimeout(t);
          signal.removeEventListener('abort', w.fire);
          resolve();
        },
      };
      const t = setTimeout(w.fire, timeoutMs);
      signal.addEventListener('abort', w.fire);
      this.watchers.add(w);
    });
  }

  close(): void {
    // shared by several managers in tests: dispose() ends it
  }

  dispose(): void {
    clearInterval(this.timer);
    for (const w of [...this.watchers]) w.fire();
  }
}
