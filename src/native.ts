/**
 * Typed access to the native addon (`native/kubespand.c`, built by `npm run build:native` into
 * `build/Release/kubespand_native.node`). The addon is loaded lazily on first use, so modules that
 * merely import this file (the UDP bind, the CLI) still load when the addon is not built; the first
 * call then fails with "native addon not built: run npm run build:native".
 *
 * The addon is plain Node-API version 8, so one build serves Node 20, 22 and 24.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Errors thrown (or reported) by the addon carry the errno name, e.g. code "EPERM", errno -1. */
export interface NativeError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

/** Opaque handle of a running TUN reader. */
export interface TunReaderHandle {
  readonly __brand: 'TunReaderHandle';
}

/**
 * Reader callback: `packets` is a batch of whole IP packets (one read() each, copied out of the
 * addon's buffer), or `null` together with `err` once, when the fd failed (interface deleted:
 * EBADFD/EIO); the reader has stopped by then.
 */
export type TunReaderCallback = (packets: Uint8Array[] | null, err?: NativeError) => void;

/**
 * UDP reader callback, once per wake-up: `data` holds the datagrams' payloads back to back, `meta` is
 * [length, source port] per datagram, `addresses` their source addresses (numeric text, IPv4-mapped
 * sources as IPv4, link-local IPv6 with `%zone`). Once, when the socket died: `(null, err)`.
 */
export type UdpReaderCallback = (data: Uint8Array | null, metaOrErr?: Uint32Array | NativeError, addresses?: string[]) => void;

export interface NativeAddon {
  /** Opens /dev/net/tun (O_RDWR|O_NONBLOCK|O_CLOEXEC), TUNSETIFF IFF_TUN|IFF_NO_PI; `name` may hold a %d pattern. */
  tunOpen(name: string, vnetHdr?: boolean): { fd: number; name: string };
  /** The kernel's interface name of an open TUN fd (TUNGETIFF). */
  tunGetName(fd: number): string;
  setNonBlocking(fd: number): void;
  /**
   * With `vnetHdr`, frames are split (TSO) and checksums completed; the callback gets plain IP packets.
   * With `room`, each packet is a Uint8Array view with 16 zeroed bytes before it and 31 after it in its
   * own ArrayBuffer (src/tun/tun.ts PACKET_HEADROOM/PACKET_TAILROOM); otherwise a plain Uint8Array copy
   * (never a Buffer: one object map on the data path).
   */
  tunReaderStart(fd: number, maxBatch: number, bufSize: number, cb: TunReaderCallback, vnetHdr?: boolean, room?: boolean): TunReaderHandle;
  /** Idempotent. Must be called before the fd is closed. */
  tunReaderStop(handle: TunReaderHandle): void;
  /**
   * Reads a UDP socket with recvmmsg (up to `maxBatch` datagrams per wake-up, one callback). It polls its
   * own dup of `fd`, so the socket's owner keeps sending on and closing its fd; stop it with tunReaderStop.
   * Absent from an addon built before it existed.
   */
  udpReaderStart?(fd: number, maxBatch: number, cb: UdpReaderCallback): TunReaderHandle;
  /** Bytes written, or -errno; never throws for I/O errors. */
  tunWrite(fd: number, packet: Uint8Array, vnetHdr?: boolean): number;
  /** Writes in order, skipping packets the kernel rejects, stopping at EAGAIN; returns the count written. */
  tunWriteBatch(fd: number, packets: Uint8Array[], vnetHdr?: boolean): number;
  closeFd(fd: number): void;
  /** setsockopt(SO_MARK); needs CAP_NET_ADMIN. */
  setSocketMark(fd: number, mark: number): void;
  getSocketMark(fd: number): number;
  /**
   * Sets SO_RCVBUF and SO_SNDBUF to `bytes`, trying SO_*BUFFORCE first (CAP_NET_ADMIN: beyond
   * net.core.[rw]mem_max, as wireguard-go does). Returns the kernel's sizes (twice the request, per socket(7)).
   */
  setSocketBuffers(fd: number, bytes: number): { recv: number; send: number };
  /**
   * Sends `text` as one datagram to a systemd notify socket (an absolute path, or `@name` for an
   * abstract socket); returns the bytes sent. Throws with the errno name when nobody listens.
   */
  sdNotify(path: string, text: string): number;
  /** The reader's offload step alone (tests): one IFF_VNET_HDR frame → plain packets, or null when malformed. */
  offloadSplit(frame: Uint8Array): Uint8Array[] | null;
  /** The writer's offload step alone (tests): packets → frames with virtio headers (consecutive TCP segments coalesced). */
  offloadCoalesce(packets: Uint8Array[]): Uint8Array[];
}

export const NATIVE_ADDON_FILE = join('build', 'Release', 'kubespand_native.node');

/** Environment variable naming the .node file explicitly (a packaged layout, or a copy in a test dir). */
export const NATIVE_ADDON_ENV = 'KUBESPAND_NATIVE_ADDON';

let loaded: NativeAddon | undefined;

/**
 * Candidate addon paths: the env override, then `build/Release/…` in each ancestor of this file's
 * directory, which covers `src/native.ts` (vitest) and `dist/src/native.js` (after tsc).
 */
export function nativeAddonCandidates(fromDir = dirname(fileURLToPath(import.meta.url))): string[] {
  const out: string[] = [];
  const override = process.env[NATIVE_ADDON_ENV];
  if (override) out.push(resolve(override));
  let dir = fromDir;
  for (let i = 0; i < 5; i++) {
    out.push(join(dir, NATIVE_ADDON_FILE));
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return out;
}

/** Loads (once) and returns the addon; throws a clear error when it is not built. */
export function loadNative(): NativeAddon {
  if (loaded) return loaded;
  if (process.platform !== 'linux') {
    throw new Error(`native addon: TUN and SO_MARK need Linux (this is ${process.platform})`);
  }
  const candidates = nativeAddonCandidates();
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(`native addon not built: run npm run build:native (looked for ${candidates.join(', ')})`);
  }
  const require = createRequire(import.meta.url);
  try {
    loaded = require(found) as NativeAddon;
  } catch (err) {
    throw new Error(
      `native addon at ${found} failed to load (rebuild with npm run build:native): ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  return loaded;
}

/** True when the addon can be loaded (for diagnostics; tests should call loadNative and fail loudly). */
export function nativeAvailable(): boolean {
  try {
    loadNative();
    return true;
  } catch {
    return false;
  }
}

// Thin typed wrappers, so callers can import the functions directly.
export const tunOpen = (name: string): { fd: number; name: string } => loadNative().tunOpen(name);
export const tunGetName = (fd: number): string => loadNative().tunGetName(fd);
export const setNonBlocking = (fd: number): void => loadNative().setNonBlocking(fd);
export const tunReaderStart = (fd: number, maxBatch: number, bufSize: number, cb: TunReaderCallback): TunReaderHandle =>
  loadNative().tunReaderStart(fd, maxBatch, bufSize, cb);
export const tunReaderStop = (handle: TunReaderHandle): void => loadNative().tunReaderStop(handle);
export const tunWrite = (fd: number, packet: Uint8Array): number => loadNative().tunWrite(fd, packet);
export const tunWriteBatch = (fd: number, packets: Uint8Array[]): number => loadNative().tunWriteBatch(fd, packets);
export const closeFd = (fd: number): void => loadNative().closeFd(fd);
export const setSocketMark = (fd: number, mark: number): void => loadNative().setSocketMark(fd, mark);
export const getSocketMark = (fd: number): number => loadNative().getSocketMark(fd);
export const setSocketBuffers = (fd: number, bytes: number): { recv: number; send: number } => loadNative().setSocketBuffers(fd, bytes);
export const sdNotify = (path: string, text: string): number => loadNative().sdNotify(path, text);
