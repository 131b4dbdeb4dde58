/**
 * The TUN side of the device: whole IP packets in from the kernel (what local applications send into the
 * tunnel), whole IP packets out to the kernel (what peers sent us). Implementations: `LinuxTun`
 * (tun-linux.ts, the real /dev/net/tun through the native addon) and `ChannelTun` (channel-tun.ts, the
 * in-memory twin for tests), in the manner of wireguard-go's tun.Device and tuntest.ChannelTUN.
 */

export interface TunDevice {
  /** The kernel's interface name (may differ from the requested one, e.g. a "kst%d" pattern). */
  readonly name: string;
  /** The MTU the device was configured with. */
  readonly mtu: number;
  /**
   * Registers a receiver of packet batches. Reading starts at the first registration; every
   * registered receiver sees every batch. The arrays and packets belong to the receiver.
   */
  onPackets(cb: (packets: Uint8Array[]) => void): void;
  /**
   * True when every packet handed to onPackets is a view with PACKET_HEADROOM zeroed bytes before it
   * and PACKET_TAILROOM after it in its own ArrayBuffer (exactly), which the receiver may overwrite:
   * the device then seals the packet in place. Only valid with a single receiver.
   */
  readonly packetsHaveRoom?: boolean;
  /**
   * Called once when the device stops: `err` is set when the kernel side failed (e.g. the interface
   * was deleted), undefined after `close()`. Registering after the device closed calls back soon.
   */
  onClose(cb: (err?: Error) => void): void;
  /** Hands packets to the kernel. Never throws for I/O errors: they are counted. */
  write(packets: Uint8Array[]): void;
  /** Stops reading and releases the device. Idempotent. */
  close(): void;
}

/** Counters kept by the TUN implementations. */
export interface TunStats {
  /** Packets read from the kernel (or injected). */
  packetsRead: number;
  /** Reader callbacks (batches) delivered. */
  batchesRead: number;
  /** Packets accepted by the kernel. */
  packetsWritten: number;
  /** Packets the kernel rejected, or written after close. */
  writeErrors: number;
}

/** Default TUN MTU: 1500 minus the WireGuard IPv6 overhead (40 + 8 + 32), as wireguard-go and wg-quick use. */
export const DEFAULT_TUN_MTU = 1420;

/** The room the TUN reader leaves around packets (defined by the core, which fills it). */
export { PACKET_HEADROOM, PACKET_TAILROOM } from '../noise/constants.js';
