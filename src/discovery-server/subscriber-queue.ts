/**
 * The bounded per-subscriber buffer between the state and one Watch stream (kubespan.md §1.8):
 * notifications are handed to the stream while it accepts them; while it is backed up they wait
 * here, at most `capacity` (32) of them; one more and the subscription is cancelled as "lost
 * update" (the client reconnects and gets a fresh snapshot).
 */
export class SubscriberQueue<T> {
  readonly capacity: number;
  readonly #write: (item: T) => boolean;
  readonly #overflow: () => void;
  #queue: T[] = [];
  #blocked = false;
  #closed = false;

  /**
   * @param write hands one item to the stream; returns false when the stream is backed up
   *   (the item was still accepted), after which `drained()` must be called to resume.
   * @param overflow called once when the buffer overflows; the queue is closed afterwards.
   */
  constructor(capacity: number, write: (item: T) => boolean, overflow: () => void) {
    this.capacity = capacity;
    this.#write = write;
    this.#overflow = overflow;
  }

  push(item: T): void {
    if (this.#closed) return;
    if (!this.#blocked && this.#queue.length === 0) {
      this.#blocked = !this.#write(item);
      return;
    }
    if (this.#queue.length >= this.capacity) {
      this.#closed = true;
      this.#queue = [];
      this.#overflow();
      return;
    }
    this.#queue.push(item);
  }

  /** The stream can take more: flush what waits. */
  drained(): void {
    this.#blocked = false;
    while (!this.#closed && !this.#blocked && this.#queue.length > 0) {
      this.#blocked = !this.#write(this.#queue.shift() as T);
    }
  }

  close(): void {
    this.#closed = true;
    this.#queue = [];
  }

  get length(): number {
    return this.#queue.length;
  }

  get closed(): boolean {
    return this.#closed;
  }
}
