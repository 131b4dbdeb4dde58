/**
 * Transport keypairs and their previous/current/next rotation (spec/wireguard.md §4), as
 * wireguard-go's keypair.go and BeginSymmetricSession/ReceivedWithKeypair.
 */
import type { Aead } from './crypto.js';
import { ReplayFilter } from './replay.js';

export class Keypair {
  /** Next counter to send with. */
  sendCounter = 0;
  readonly replay = new ReplayFilter();

  constructor(
    readonly send: Aead,
    readonly receive: Aead,
    readonly createdAt: number,
    readonly isInitiator: boolean,
    /** The index we put in our `sender` field; the peer sends data to it. */
    readonly localIndex: number,
    /** The peer's index; we put it in the `receiver` field of our data packets. */
    readonly remoteIndex: number,
  ) {}
}

/** A peer's three keypair slots. `destroy` is called for every keypair that leaves them. */
export class Keypairs {
  previous: Keypair | null = null;
  current: Keypair | null = null;
  next: Keypair | null = null;

  constructor(private readonly destroy: (k: Keypair) => void) {}

  /** Installs a freshly derived keypair (BeginSymmetricSession's rotation). */
  install(k: Keypair): void {
    const { previous, current, next } = this;
    if (k.isInitiator) {
      // rotate key pairs: the initiator may use the new keypair at once
      if (next) {
        this.next = null;
        this.previous = next;
        if (current) this.destroy(current);
      } else {
        this.previous = current;
      }
      if (previous) this.destroy(previous);
      this.current = k;
    } else {
      // the responder waits for confirmation (a packet under the new keypair) before sending with it
      this.next = k;
      if (next) this.destroy(next);
      this.previous = null;
      if (previous) this.destroy(previous);
    }
  }

  /** Promotes `next` to `current` when a packet authenticated under it. Returns true if it did. */
  receivedWith(k: Keypair): boolean {
    if (this.next !== k) return false;
    const old = this.previous;
    this.previous = this.current;
    if (old) this.destroy(old);
    this.current = k;
    this.next = null;
    return true;
  }

  clear(): void {
    for (const k of [this.previous, this.current, this.next]) if (k) this.destroy(k);
    this.previous = this.current = this.next = null;
  }

  all(): Keypair[] {
    return [this.previous, this.current, this.next].filter((k): k is Keypair => k !== null);
  }
}
