/**
 * The cross-platform WireGuard UAPI, sans-IO: the text `wg` and wireguard-go speak over
 * `/var/run/wireguard/IFNAME.sock`. Spec: ../shared/spec/wireguard.md §11 (framing §11.3, get
 * keys §11.4, set keys §11.5) and §7 (private key changes).
 *
 *   formatGet(state)            → the reply to `get=1\n\n`
 *   applySet(device, lines)     → applies the lines of one `set=1` request, returns 0 or −errno
 *   createUapiSession(device)   → a per-connection request parser: bytes in, reply strings out
 *
 * Nothing here touches sockets; `server.ts` is the thin shell. No key material is ever logged:
 * peers appear as `peer(abcd…wxyz)` and private/preshared key values are never echoed.
 */
import { canonicalAddress } from '../bind/bind.js';
import { formatIp, formatPrefix, maskPrefix, parseIp, parsePrefix, type Prefix } from '../noise/allowed-ips.js';
import { constantTimeEqual, isZero } from '../noise/bytes.js';
import { KEY_SIZE } from '../noise/constants.js';
import { clampPrivateKey, keyFromHex, keyToHex, peerTag } from '../noise/keys.js';
import {
  UAPI_ERRNO,
  UapiError,
  silentUapiLog,
  type Endpoint,
  type UapiDevice,
  type UapiDeviceState,
  type UapiLog,
} from './types.js';

// ---- Implementation constants ----

/** Longest line accepted (bufio.Scanner's default token limit in wireguard-go). */
export const UAPI_MAX_LINE_BYTES = 64 * 1024;
/** Largest `set=1` request buffered before it is applied (≈ 200 000 peers' worth of lines). */
export const UAPI_MAX_SET_REQUEST_BYTES = 64 * 1024 * 1024;

// ---- small helpers ----

/** 64 hex digits of either case → 32 bytes (Go's hex decoder), or null. */
function keyOrNull(text: string): Uint8Array | null {
  try {
    return keyFromHex(text, 'key');
  } catch {
    return null;
  }
}

/** strconv.ParseUint(value, 10, bits): plain decimal digits, leading zeros allowed, ≤ max. */
function parseDecimal(value: string, max: number): number | null {
  if (!/^[0-9]+$/.test(value)) return null;
  const digits = value.replace(/^0+(?=.)/, '');
  if (digits.length > 16) return null;
  const n = Number(digits);
  return n <= max ? n : null;
}

/**
 * Parses a UAPI endpoint value with the strictness of Go's netip.ParseAddrPort: `a.b.c.d:port` or
 * `[v6(%zone)]:port`, numeric only (wg resolves host names before sending), port 0..65535. Throws
 * on anything else. The address comes back in the bind layer's canonical text (`canonicalAddress`:
 * RFC 5952, no brackets, IPv4-mapped IPv6 as plain IPv4) so the device compares it with the source
 * addresses of received packets as equals.
 */
export function parseUapiEndpoint(text: string): Endpoint {
  const bad = (why: string): Error => new Error(`endpoint ${JSON.stringify(text)}: ${why}`);
  const colon = text.lastIndexOf(':');
  if (colon < 0) throw bad('missing port');
  const host = text.slice(0, colon);
  const port = parseDecimal(text.slice(colon + 1), 65535);
  if (port === null) throw bad('invalid port');
  const bracketed = host.startsWith('[') && host.endsWith(']');
  const inner = bracketed ? host.slice(1, -1) : host;
  if (!bracketed && inner.includes(':')) throw bad('IPv6 address needs brackets');
  const percent = inner.indexOf('%');
  if (percent >= 0 && !bracketed) throw bad('a zone needs an IPv6 address in brackets');
  let address: Uint8Array;
  try {
    address = parseIp(percent < 0 ? inner : inner.slice(0, percent), 'endpoint');
  } catch (err) {
    throw bad((err as Error).message.replace(/^endpoint: /, ''));
  }
  if (bracketed !== (address.length === 16)) throw bad(bracketed ? 'brackets are only for IPv6 addresses' : 'IPv6 address needs brackets');
  const canonical = canonicalAddress(formatIp(address) + (percent < 0 ? '' : inner.slice(percent)));
  if (canonical === undefined) throw bad('invalid IPv6 zone');
  return { address: canonical, port };
}

/** `a.b.c.d:port` or `[v6]:port`, as wireguard-go prints endpoints. */
export function formatUapiEndpoint(endpoint: Endpoint): string {
  return endpoint.address.includes(':') ? `[${endpoint.address}]:${endpoint.port}` : `${endpoint.address}:${endpoint.port}`;
}

// ---- get ----

/**
 * The reply to `get=1\n\n` in wireguard-go's key order (§11.4): device keys (each omitted when
 * unset/zero), then per peer public_key, preshared_key (always), protocol_version, endpoint (if
 * any), last handshake sec/nsec, tx, rx, persistent keepalive (always), allowed IPs; then
 * `errno=0` and an empty line.
 */
export function formatGet(state: UapiDeviceState): string {
  const out: string[] = [];
  if (state.privateKey !== null) out.push(`private_key=${keyToHex(state.privateKey)}`);
  if (state.listenPort !== 0) out.push(`listen_port=${state.listenPort}`);
  if (state.fwmark !== 0) out.push(`fwmark=${state.fwmark}`);
  for (const peer of state.peers) {
    out.push(`public_key=${keyToHex(peer.publicKey)}`);
    out.push(`preshared_key=${keyToHex(peer.presharedKey ?? new Uint8Array(KEY_SIZE))}`);
    out.push('protocol_version=1');
    if (peer.endpoint !== null) out.push(`endpoint=${formatUapiEndpoint(peer.endpoint)}`);
    const wallMs = Number.isFinite(peer.lastHandshakeWallMs) && peer.lastHandshakeWallMs > 0 ? peer.lastHandshakeWallMs : 0;
    const sec = Math.floor(wallMs / 1000);
    const nsec = Math.min(999_999_999, Math.round((wallMs - sec * 1000) * 1e6));
    out.push(`last_handshake_time_sec=${sec}`);
    out.push(`last_handshake_time_nsec=${nsec}`);
    out.push(`tx_bytes=${Math.trunc(peer.txBytes)}`);
    out.push(`rx_bytes=${Math.trunc(peer.rxBytes)}`);
    out.push(`persistent_keepalive_interval=${peer.persistentKeepaliveSec}`);
    for (const prefix of peer.allowedIps) out.push(`allowed_ip=${formatPrefix(maskPrefix(prefix))}`);
  }
  out.push('errno=0', '', '');
  return out.join('\n');
}

// ---- set ----

/** The peer the following lines apply to (wireguard-go's ipcSetPeer). */
interface SelectedPeer {
  publicKey: Uint8Array;
  /** Lines are validated but not applied: own key, removed, or update_only on a new peer. */
  dummy: boolean;
  /** The public_key line created it. */
  created: boolean;
}

/** Runs `fn`; a plain exception becomes a UapiError with `errno`, a UapiError passes through. */
async function call<T>(errno: number, what: string, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof UapiError) throw err;
    throw new UapiError(errno, `${what}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function invalid(message: string): UapiError {
  return new UapiError(UAPI_ERRNO.EINVAL, message);
}

class SetOperation {
  private inDeviceSection = true;
  private peer: SelectedPeer | null = null;

  constructor(
    private readonly device: UapiDevice,
    private readonly log: UapiLog,
  ) {}

  async line(line: string): Promise<void> {
    const eq = line.indexOf('=');
    if (eq < 0) {
      // the value may be key material: name only its length
      throw new UapiError(UAPI_ERRNO.EPROTO, `failed to parse line: no '=' in a ${line.length}-character line`);
    }
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'public_key') {
      this.inDeviceSection = false;
      await this.postConfig();
      await this.selectPeer(value);
      return;
    }
    if (this.inDeviceSection) await this.deviceLine(key, value);
    else await this.peerLine(key, value);
  }

  /** After a peer's block (next public_key, blank line, end of request): start it, flush staged packets. */
  async postConfig(): Promise<void> {
    const peer = this.peer;
    this.peer = null;
    if (peer === null || peer.dummy) return;
    await call(UAPI_ERRNO.ENOANO, `${peerTag(peer.publicKey)} start`, () => this.device.peerDone(peer.publicKey));
  }

  private async deviceLine(key: string, value: string): Promise<void> {
    const device = this.device;
    switch (key) {
      case 'private_key': {
        const sk = keyOrNull(value);
        if (sk === null) throw invalid('failed to set private_key: not 64 hex digits');
        this.log.debug(isZero(sk) ? 'UAPI: removing private key' : 'UAPI: updating private key');
        try {
          await call(UAPI_ERRNO.ENOANO, 'failed to set private_key', () =>
            device.setPrivateKey(isZero(sk) ? null : clampPrivateKey(sk)),
          );
        } finally {
          sk.fill(0);
        }
        return;
      }
      case 'listen_port': {
        const port = parseDecimal(value, 0xffff);
        if (port === null) throw invalid(`failed to parse listen_port: ${JSON.stringify(value)}`);
        this.log.debug(`UAPI: updating listen port to ${port}`);
        await call(UAPI_ERRNO.EADDRINUSE, 'failed to set listen_port', () => device.setListenPort(port));
        return;
      }
      case 'fwmark': {
        const mark = parseDecimal(value, 0xffffffff);
        if (mark === null) throw invalid(`invalid fwmark: ${JSON.stringify(value)}`);
        this.log.debug(`UAPI: updating fwmark to ${mark}`);
        await call(UAPI_ERRNO.EADDRINUSE, 'failed to update fwmark', () => device.setFwmark(mark));
        return;
      }
      case 'replace_peers': {
        if (value !== 'true') throw invalid(`failed to set replace_peers, invalid value: ${JSON.stringify(value)}`);
        this.log.debug('UAPI: removing all peers');
        await call(UAPI_ERRNO.ENOANO, 'failed to remove peers', () => device.removeAllPeers());
        return;
      }
      default:
        throw invalid(`invalid UAPI device key: ${JSON.stringify(key)}`);
    }
  }

  private async selectPeer(value: string): Promise<void> {
    const publicKey = keyOrNull(value);
    if (publicKey === null) throw invalid(`failed to get peer by public key: not 64 hex digits (got ${JSON.stringify(value)})`);
    const own = await call(UAPI_ERRNO.ENOANO, 'failed to read the device public key', () => this.device.publicKey());
    if (own !== null && constantTimeEqual(own, publicKey)) {
      // ignore a peer with the same public key as this device: its lines go to a throw-away dummy
      this.peer = { publicKey, dummy: true, created: false };
      return;
    }
    const exists = await call(UAPI_ERRNO.ENOANO, 'failed to look up peer', () => this.device.hasPeer(publicKey));
    if (!exists) {
      await call(UAPI_ERRNO.EINVAL, 'failed to create new peer', () => this.device.createPeer(publicKey));
      this.log.debug(`${peerTag(publicKey)} - UAPI: created`);
    }
    this.peer = { publicKey, dummy: false, created: !exists };
  }

  private async peerLine(key: string, value: string): Promise<void> {
    const peer = this.peer;
    if (peer === null) throw new UapiError(UAPI_ERRNO.ENOANO, 'peer key before any public_key');
    const device = this.device;
    const pub = peer.publicKey;
    const tag = peerTag(pub);
    switch (key) {
      case 'update_only': {
        if (value !== 'true') throw invalid(`failed to set update only, invalid value: ${JSON.stringify(value)}`);
        if (peer.created && !peer.dummy) {
          // operation applies only to existing peers: undo the creation, ignore the rest
          await call(UAPI_ERRNO.ENOANO, `${tag} remove`, () => device.removePeer(pub));
          peer.dummy = true;
        }
        return;
      }
      case 'remove': {
        if (value !== 'true') throw invalid(`failed to set remove, invalid value: ${JSON.stringify(value)}`);
        if (!peer.dummy) {
          this.log.debug(`${tag} - UAPI: removing`);
          await call(UAPI_ERRNO.ENOANO, `${tag} remove`, () => device.removePeer(pub));
        }
        peer.dummy = true;
        return;
      }
      case 'preshared_key': {
        const psk = keyOrNull(value);
        if (psk === null) throw invalid(`${tag} failed to set preshared key: not 64 hex digits`);
        if (peer.dummy) return;
        this.log.debug(`${tag} - UAPI: updating preshared key`);
        await call(UAPI_ERRNO.ENOANO, `${tag} failed to set preshared key`, () =>
          device.setPresharedKey(pub, isZero(psk) ? null : psk),
        );
        return;
      }
      case 'endpoint': {
        let endpoint: Endpoint;
        try {
          endpoint = parseUapiEndpoint(value);
        } catch (err) {
          throw invalid(`${tag} failed to set endpoint: ${(err as Error).message}`);
        }
        if (peer.dummy) return;
        this.log.debug(`${tag} - UAPI: updating endpoint to ${formatUapiEndpoint(endpoint)}`);
        await call(UAPI_ERRNO.ENOANO, `${tag} failed to set endpoint`, () => device.setEndpoint(pub, endpoint));
        return;
      }
      case 'persistent_keepalive_interval': {
        const seconds = parseDecimal(value, 0xffff);
        if (seconds === null) {
          throw invalid(`${tag} failed to set persistent keepalive interval: ${JSON.stringify(value)}`);
        }
        if (peer.dummy) return;
        this.log.debug(`${tag} - UAPI: updating persistent keepalive interval to ${seconds}`);
        await call(UAPI_ERRNO.ENOANO, `${tag} failed to set persistent keepalive interval`, () =>
          device.setPersistentKeepalive(pub, seconds),
        );
        return;
      }
      case 'replace_allowed_ips': {
        if (value !== 'true') throw invalid(`${tag} failed to replace allowedips, invalid value: ${JSON.stringify(value)}`);
        if (peer.dummy) return;
        this.log.debug(`${tag} - UAPI: removing all allowedips`);
        await call(UAPI_ERRNO.ENOANO, `${tag} failed to replace allowedips`, () => device.replaceAllowedIps(pub));
        return;
      }
      case 'allowed_ip': {
        const remove = value.startsWith('-');
        const text = remove ? value.slice(1) : value;
        let prefix: Prefix | null;
        try {
          prefix = parsePrefix(text);
        } catch (err) {
          throw invalid(`${tag} failed to set allowed ip: ${(err as Error).message}`);
        }
        if (!prefix) throw invalid(`${tag} failed to set allowed ip: ${JSON.stringify(text)} is not a prefix`);
        if (peer.dummy) return;
        const p = prefix;
        this.log.debug(`${tag} - UAPI: ${remove ? 'removing' : 'adding'} allowedip ${text}`);
        if (remove) await call(UAPI_ERRNO.ENOANO, `${tag} failed to remove allowed ip`, () => device.removeAllowedIp(pub, p));
        else await call(UAPI_ERRNO.ENOANO, `${tag} failed to add allowed ip`, () => device.addAllowedIp(pub, p));
        return;
      }
      case 'protocol_version': {
        if (value !== '1') throw invalid(`invalid protocol version: ${JSON.stringify(value)}`);
        return;
      }
      default:
        throw invalid(`invalid UAPI peer key: ${JSON.stringify(key)}`);
    }
  }
}

/**
 * Applies the lines of one `set=1` request (without the `set=1` line; an empty line ends the
 * request early) to `device`, line by line, stopping at the first error. Earlier lines stay
 * applied (no rollback, as wireguard-go). Returns 0, or a NEGATIVE errno: −22 bad key or value,
 * −71 a line without '=', −98 listen_port/fwmark failure, −55 any other failure (or the errno of a
 * `UapiError` the device threw).
 *
 * One deliberate difference from wireguard-go: when a line fails, the peer being configured still
 * gets `peerDone`, so the lines applied before the error take full effect (wireguard-go leaves a
 * newly created peer stopped until the next interface up).
 */
export async function applySet(device: UapiDevice, lines: readonly string[], log: UapiLog = silentUapiLog): Promise<number> {
  const op = new SetOperation(device, log);
  try {
    for (const line of lines) {
      if (line === '') break;
      await op.line(line);
    }
    await op.postConfig();
    return 0;
  } catch (err) {
    const uerr = err instanceof UapiError ? err : new UapiError(UAPI_ERRNO.ENOANO, `other UAPI error: ${String(err)}`);
    log.error(`UAPI: ${uerr.message}`);
    try {
      await op.postConfig();
    } catch (postErr) {
      log.error(`UAPI: ${(postErr as Error).message}`);
    }
    return -uerr.errno;
  }
}

// ---- per-connection session ----

export interface UapiSessionResult {
  /** Replies to write, in order. */
  replies: string[];
  /** The connection must be closed after writing the replies (unknown operation, oversized input, end). */
  close: boolean;
}

export interface UapiSession {
  /** Feeds bytes read from the connection; resolves with the replies of the requests they completed. */
  push(chunk: Uint8Array | string): Promise<UapiSessionResult>;
  /** The client closed its sending side: a pending set is applied as wireguard-go does at EOF. */
  end(): Promise<UapiSessionResult>;
}

/** get/set on one device never interleave, even across connections (wireguard-go's ipcMutex). */
const deviceLocks = new WeakMap<UapiDevice, Promise<unknown>>();

function withDeviceLock<T>(device: UapiDevice, fn: () => Promise<T>): Promise<T> {
  const previous = deviceLocks.get(device) ?? Promise.resolve();
  const run = previous.then(fn, fn);
  deviceLocks.set(
    device,
    run.catch(() => undefined),
  );
  return run;
}

type SessionState =
  | { kind: 'operation' }
  | { kind: 'get-terminator' }
  | { kind: 'set'; lines: string[]; bytes: number }
  | { kind: 'closed' };

const NL = 0x0a;

function printableOperation(line: string): string {
  // never echo a value: an unknown first line may be a key=value line carrying a key
  const head = line.split('=', 1)[0] ?? '';
  return JSON.stringify(head.length > 32 ? `${head.slice(0, 32)}…` : head);
}

/**
 * A request parser for one UAPI connection (§11.3): `get=1\n\n` → the get reply; `get=1\n` then
 * any byte but `\n` → `errno=-22\n\n` (that byte is consumed); `set=1\n` + lines + empty line →
 * `errno=N\n\n`; any number of requests per connection; an unknown first line → close without
 * reply. A set request is buffered until its empty line and then applied under a per-device lock,
 * so a slow client never holds the device. Calls to `push`/`end` may overlap; they are processed in
 * order.
 */
export function createUapiSession(device: UapiDevice, log: UapiLog = silentUapiLog): UapiSession {
  let buffer: Buffer = Buffer.alloc(0);
  let state: SessionState = { kind: 'operation' };
  let ended = false;
  let chain: Promise<unknown> = Promise.resolve();

  const takeLine = (): string | null => {
    const nl = buffer.indexOf(NL);
    if (nl < 0) return null;
    const line = buffer.subarray(0, nl).toString('utf8');
    buffer = buffer.subarray(nl + 1);
    return line;
  };

  const drain = async (): Promise<UapiSessionResult> => {
    const replies: string[] = [];
    const close = (): UapiSessionResult => {
      state = { kind: 'closed' };
      buffer = Buffer.alloc(0);
      return { replies, close: true };
    };
    for (;;) {
      switch (state.kind) {
        case 'closed':
          return { replies, close: true };
        case 'operation': {
          const line = takeLine();
          if (line === null) {
            if (buffer.length > UAPI_MAX_LINE_BYTES) {
              log.error('UAPI: operation line too long');
              return close();
            }
            if (ended) return close();
            return { replies, close: false };
          }
          if (line === 'get=1') state = { kind: 'get-terminator' };
          else if (line === 'set=1') state = { kind: 'set', lines: [], bytes: 0 };
          else {
            log.error(`UAPI: invalid operation ${printableOperation(line)}`);
            return close();
          }
          break;
        }
        case 'get-terminator': {
          if (buffer.length === 0) {
            if (ended) return close();
            return { replies, close: false };
          }
          const next = buffer[0];
          buffer = buffer.subarray(1);
          state = { kind: 'operation' };
          if (next !== NL) {
            log.error('UAPI: trailing character in UAPI get');
            replies.push(`errno=-${UAPI_ERRNO.EINVAL}\n\n`);
            break;
          }
          try {
            replies.push(await withDeviceLock(device, async () => formatGet(device.getState())));
          } catch (err) {
            log.error(`UAPI: get failed: ${(err as Error).message}`);
            replies.push(`errno=-${err instanceof UapiError ? err.errno : UAPI_ERRNO.ENOANO}\n\n`);
          }
          break;
        }
        case 'set': {
          const set = state;
          const line = takeLine();
          if (line === null) {
            if (buffer.length > UAPI_MAX_LINE_BYTES) {
              log.error('UAPI: set line too long');
              replies.push(`errno=-${UAPI_ERRNO.EIO}\n\n`);
              return close();
            }
            if (!ended) return { replies, close: false };
            // EOF without the empty line: wireguard-go applies what it read (including a last unterminated line)
            if (buffer.length > 0) set.lines.push(buffer.toString('utf8'));
            buffer = Buffer.alloc(0);
            const errno = await withDeviceLock(device, () => applySet(device, set.lines, log));
            replies.push(`errno=${errno}\n\n`);
            return close();
          }
          if (line.length > UAPI_MAX_LINE_BYTES) {
            log.error('UAPI: set line too long');
            replies.push(`errno=-${UAPI_ERRNO.EIO}\n\n`);
            return close();
          }
          if (line !== '') {
            set.bytes += line.length + 1;
            if (set.bytes > UAPI_MAX_SET_REQUEST_BYTES) {
              log.error('UAPI: set request too large');
              replies.push(`errno=-${UAPI_ERRNO.EIO}\n\n`);
              return close();
            }
            set.lines.push(line);
            break;
          }
          state = { kind: 'operation' };
          const errno = await withDeviceLock(device, () => applySet(device, set.lines, log));
          replies.push(`errno=${errno}\n\n`);
          break;
        }
      }
    }
  };

  const enqueue = (): Promise<UapiSessionResult> => {
    const run = chain.then(drain);
    chain = run.catch(() => undefined);
    return run;
  };

  return {
    push(chunk) {
      if (state.kind !== 'closed') {
        const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        buffer = buffer.length === 0 ? Buffer.from(bytes) : Buffer.concat([buffer, bytes]);
      }
      return enqueue();
    },
    end() {
      ended = true;
      return enqueue();
    },
  };
}
