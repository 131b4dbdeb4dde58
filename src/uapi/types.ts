/**
 * The seam between the UAPI protocol (spec/wireguard.md §11) and a WireGuard device. The protocol
 * module reads a plain `UapiDeviceState` snapshot for `get=1` and calls one `UapiDevice` method per
 * `set=1` line, in order, exactly as wireguard-go's `IpcSetOperation` does.
 *
 * Public keys passed to peer methods are always 32 bytes; the protocol has already checked them.
 */
import type { Endpoint } from '../bind/bind.js';
import type { Prefix } from '../noise/allowed-ips.js';

export type { Prefix };

/**
 * A UDP endpoint `{ address, port }` with canonical address text (IPv6 without brackets), as
 * defined by the bind layer (`src/bind/bind.ts`), re-exported so UAPI users need one import.
 */
export type { Endpoint };

/** One peer as `get=1` reports it (§11.4). */
export interface UapiPeer {
  publicKey: Uint8Array;
  /** null = no preshared key (reported as 64 zero hex digits). */
  presharedKey: Uint8Array | null;
  endpoint: Endpoint | null;
  /** Unix epoch milliseconds of the last completed handshake; 0 = never. */
  lastHandshakeWallMs: number;
  rxBytes: number;
  txBytes: number;
  /** 0 = off. */
  persistentKeepaliveSec: number;
  allowedIps: Prefix[];
}

/** The device as `get=1` reports it (§11.4). */
export interface UapiDeviceState {
  /** The clamped private key, or null when none is set. */
  privateKey: Uint8Array | null;
  /** The bound port when up (random if 0 was asked), else the configured one; 0 = unset. */
  listenPort: number;
  /** 0 = off. */
  fwmark: number;
  /** In the order the device keeps them (insertion order, as the kernel does). */
  peers: UapiPeer[];
}

/**
 * What the UAPI needs from a device. Methods may throw `UapiError` to choose the reply's errno;
 * any other exception maps to the errno wireguard-go uses for that key (−98 for listen_port and
 * fwmark, −22 for peer creation, −55 otherwise).
 */
export interface UapiDevice {
  getState(): UapiDeviceState;
  /** Sets the (already clamped) private key, or removes it (null). Drops a peer whose public key equals the new public key (§7). */
  setPrivateKey(key: Uint8Array | null): void;
  /** Stores the port and rebinds if up (0 = random). Rejects when binding fails. */
  setListenPort(port: number): Promise<void>;
  setFwmark(mark: number): void;
  removeAllPeers(): void;
  hasPeer(publicKey: Uint8Array): boolean;
  createPeer(publicKey: Uint8Array): void;
  removePeer(publicKey: Uint8Array): void;
  /** null = no preshared key. */
  setPresharedKey(publicKey: Uint8Array, key: Uint8Array | null): void;
  setEndpoint(publicKey: Uint8Array, endpoint: Endpoint): void;
  /** 0 = off; turning it on from 0 sends a keepalive at `peerDone` if the device is up. */
  setPersistentKeepalive(publicKey: Uint8Array, seconds: number): void;
  /** Drops all of this peer's allowed IPs (`replace_allowed_ips=true`). */
  replaceAllowedIps(publicKey: Uint8Array): void;
  /** Adds a prefix (host bits may be set; the device masks it), moving it from another peer if needed. */
  addAllowedIp(publicKey: Uint8Array, prefix: Prefix): void;
  /** Removes a prefix only if this peer owns it. */
  removeAllowedIp(publicKey: Uint8Array, prefix: Prefix): void;
  /** Called after each peer's block of lines: start the peer if up and flush staged packets. */
  peerDone(publicKey: Uint8Array): void;
  /** The public key of the current private key, or null when none is set. */
  publicKey(): Uint8Array | null;
}

/** Linux errno values the UAPI replies with (negated on the wire). */
export const UAPI_ERRNO = {
  EIO: 5,
  EINVAL: 22,
  ENOANO: 55,
  EPROTO: 71,
  EADDRINUSE: 98,
} as const;

/** An error carrying the errno the UAPI reply should report. `errno` is stored positive. */
export class UapiError extends Error {
  readonly errno: number;

  constructor(errno: number, message: string) {
    super(message);
    this.name = 'UapiError';
    this.errno = Math.abs(Math.trunc(errno)) || UAPI_ERRNO.ENOANO;
  }
}

/** Minimal logger the UAPI writes to; a pino logger fits. Messages never contain key material. */
export interface UapiLog {
  debug(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export const silentUapiLog: UapiLog = {
  debug() {},
  warn() {},
  error() {},
};
