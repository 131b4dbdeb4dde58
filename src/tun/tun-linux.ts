/**
 * The real Linux TUN device: /dev/net/tun opened by the native addon (IFF_TUN | IFF_NO_PI, non-blocking),
 * read by a libuv poll handle on the node loop in batches (one JS call per readable event), written with
 * one write(2) per packet. A read error (the interface was deleted: EBADFD/EIO) closes the device and
 * reports the error through `onClose`, so the daemon can exit as wireguard-go does.
 */
import { loadNative, type NativeAddon, type NativeError, type TunReaderHandle } from '../native.js';
import { setLinkMtuSync, validateIfname } from './link.js';
import { DEFAULT_TUN_MTU, type TunDevice, type TunStats } from './tun.js';

export interface LinuxTunOptions {
  /** MTU to set on the link (default 1420). */
  mtu?: number;
  /** Most packets read per readable event (default 128). */
  maxBatch?: number;
  /** Read buffer size; packets larger than this would be truncated (default 65535, the IP maximum). */
  bufSize?: number;
  /**
   * Open with IFF_VNET_HDR and TSO/checksum offload (default true; KUBESPAND_TUN_OFFLOAD=0 turns it off):
   * the kernel hands over large TCP frames that the addon splits, and consecutive TCP segments written
   * back are coalesced into one GSO frame. Falls back to a plain TUN when the kernel refuses.
   */
  offload?: boolean;
  /**
   * Hand packets over with room around them (tun.ts PACKET_HEADROOM/PACKET_TAILROOM) so the device
   * seals them in place (default true; KUBESPAND_SEAL_IN_PLACE=0 turns it off).
   */
  room?: boolean;
}

const DEFAULT_MAX_BATCH = 128;
const DEFAULT_BUF_SIZE = 65535;
/** A virtio-net header precedes every frame of an IFF_VNET_HDR TUN. */
const VNET_HDR_LEN = 10;

export class LinuxTun implements TunDevice {
  readonly stats: TunStats = { packetsRead: 0, batchesRead: 0, packetsWritten: 0, writeErrors: 0 };
  /** errno of the most recent rejected write (negative), for diagnostics. */
  lastWriteError = 0;
  private readonly native: NativeAddon;
  private readonly packetListeners: ((packets: Uint8Array[]) => void)[] = [];
  private readonly closeListeners: ((err?: Error) => void)[] = [];
  private reader: TunReaderHandle | undefined;
  private closed = false;
  private closeError: Error | undefined;
  readonly packetsHaveRoom: boolean;
  private readonly maxBatch: number;
  private readonly bufSize: number;

  constructor(
    private fd: number,
    readonly name: string,
    readonly mtu: number,
    opts: Pick<LinuxTunOptions, 'maxBatch' | 'bufSize' | 'room'> = {},
    /** The fd was opened with IFF_VNET_HDR and offloads. */
    readonly offload = false,
  ) {
    this.native = loadNative();
    this.packetsHaveRoom = (opts.room ?? true) && process.env.KUBESPAND_SEAL_IN_PLACE !== '0';
    this.maxBatch = opts.maxBatch ?? DEFAULT_MAX_BATCH;
    this.bufSize = (opts.bufSize ?? DEFAULT_BUF_SIZE) + (offload ? VNET_HDR_LEN : 0);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** The TUN file descriptor (e.g. to hand to a child process); -1 once closed. */
  get fileDescriptor(): number {
    return this.closed ? -1 : this.fd;
  }

  onPackets(cb: (packets: Uint8Array[]) => void): void {
    this.packetListeners.push(cb);
    if (!this.reader && !this.closed) {
      this.reader = this.native.tunReaderStart(this.fd, this.maxBatch, this.bufSize, (packets, err) => this.onRead(packets, err), this.offload, this.packetsHaveRoom);
    }
  }

  onClose(cb: (err?: Error) => void): void {
    if (this.closed) {
      const err = this.closeError;
      queueMicrotask(() => cb(err));
      return;
    }
    this.closeListeners.push(cb);
  }

  write(packets: Uint8Array[]): void {
    if (packets.length === 0) return;
    if (this.closed) {
      this.stats.writeErrors += packets.length;
      return;
    }
    if (packets.length === 1) {
      const n = this.native.tunWrite(this.fd, packets[0]!, this.offload);
      if (n >= 0) this.stats.packetsWritten++;
      else {
        this.stats.writeErrors++;
        this.lastWriteError = n;
      }
      return;
    }
    const written = this.native.tunWriteBatch(this.fd, packets, this.offload);
    this.stats.packetsWritten += written;
    this.stats.writeErrors += packets.length - written;
  }

  close(): void {
    this.shutdown(undefined);
  }

  private onRead(packets: Uint8Array[] | null, err?: NativeError): void {
    if (packets) {
      this.stats.packetsRead += packets.length;
      this.stats.batchesRead++;
      for (const cb of this.packetListeners) cb(packets);
      return;
    }
    // the addon stopped the reader already; release the fd and tell the device
    this.reader = undefined;
    const error = new Error(`tun ${this.name}: ${err?.message ?? 'read failed'}`, { cause: err });
    this.shutdown(error);
  }

  private shutdown(err: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.closeError = err;
    if (this.reader) {
      this.native.tunReaderStop(this.reader);
      this.reader = undefined;
    }
    try {
      this.native.closeFd(this.fd);
    } catch {
      /* already gone */
    }
    this.fd = -1;
    for (const cb of this.closeListeners.splice(0)) cb(err);
  }
}

/** Creates (or attaches to) the TUN interface `name` and sets its MTU (default 1420). */
export function openLinuxTun(name: string, opts: LinuxTunOptions = {}): LinuxTun {
  // a "%d" pattern lets the kernel pick the number; validate the rest of the name
  validateIfname(name.replace('%d', '0'), 'tun name');
  const mtu = opts.mtu ?? DEFAULT_TUN_MTU;
  const native = loadNative();
  let opened: { fd: number; name: string };
  let offload = (opts.offload ?? true) && process.env.KUBESPAND_TUN_OFFLOAD !== '0';
  try {
    try {
      opened = native.tunOpen(name, offload);
    } catch (err) {
      if (!offload) throw err;
      offload = false; // a kernel without TUN offloads: plain frames
      opened = native.tunOpen(name, false);
    }
  } catch (err) {
    throw new Error(`tun ${name}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  try {
    setLinkMtuSync(opened.name, mtu);
  } catch (err) {
    native.closeFd(opened.fd);
    throw err;
  }
  return new LinuxTun(opened.fd, opened.name, mtu, opts, offload);
}

/**
 * Wraps an already-open TUN fd (WG_TUN_FD): makes it non-blocking, names the device after the kernel's
 * name for the fd (TUNGETIFF; `name` is only the caller's expectation), and sets the MTU (default 1420)
 * as wireguard-go does for an inherited TUN.
 */
export function tunFromFd(fd: number, name?: string, mtu: number = DEFAULT_TUN_MTU, opts: Pick<LinuxTunOptions, 'maxBatch' | 'bufSize' | 'room'> = {}): LinuxTun {
  if (!Number.isInteger(fd) || fd < 0) throw new Error(`WG_TUN_FD: "${String(fd)}" is not a file descriptor number`);
  const native = loadNative();
  let kernelName: string;
  try {
    native.setNonBlocking(fd);
    kernelName = native.tunGetName(fd);
  } catch (err) {
    throw new Error(`WG_TUN_FD ${fd}: not a usable TUN fd: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  setLinkMtuSync(kernelName, mtu);
  // the kernel's name wins over `name` (wireguard-go names its logs and UAPI socket after the real TUN)
  void name;
  return new LinuxTun(fd, kernelName, mtu, opts);
}
