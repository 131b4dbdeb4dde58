/**
 * UDP bind on node:dgram, shaped like wireguard-go's StdNetBind: one udp4 socket on 0.0.0.0:port and
 * one IPv6-only udp6 socket on [::]:port, the same port for both. With port 0 the kernel picks the v4
 * port and the v6 socket takes the same one, retrying a few times when that port is taken on v6; a
 * host without IPv6 runs v4 only.
 *
 * Receiving, with the native addon (the default): a poll-driven reader on a dup of each socket's fd
 * takes up to 64 datagrams per wake-up with recvmmsg(2) and hands them over in one call, in the same
 * event-loop turn, and dgram's own receiver is stopped (its handle's recvStop). Should node's
 * internals not offer that, dgram's receiver stays armed too: whichever of the two the kernel wakes
 * first reads, so nothing is lost either way (the other finds EAGAIN). Without the addon, or with
 * KUBESPAND_NATIVE_UDP_RECV=0, each dgram 'message' is queued and the queue is handed over once per
 * event-loop turn (setImmediate, right after the poll phase that read the burst). Why: on the bench
 * topology dgram's per-datagram callback plus the setImmediate hop cost 100-400 µs of a round trip on
 * an idle daemon (cold caches), twice per ping.
 *
 * Sending: fire and forget; failures are counted, never thrown. SO_MARK goes through the native addon
 * on the sockets' fds, and is re-applied after a rebind.
 */
import * as dgram from 'node:dgram';
import { loadNative, type NativeAddon, type TunReaderHandle } from '../native.js';
import { tryLoadDatapath } from '../native-datapath.js';
import { parseIp } from '../noise/allowed-ips.js';
import { normalizeReceivedAddress, validateMark, validatePort, type Bind, type Datagram, type Endpoint } from './bind.js';

export interface UdpBindOptions {
  /** IPv4 listen address (default 0.0.0.0; tests use 127.0.0.1). Null disables IPv4. */
  address4?: string | null;
  /** IPv6 listen address (default ::; tests use ::1). Null disables IPv6. */
  address6?: string | null;
  /** Socket receive and send buffer size; errors (limits) are ignored. Default 4 MiB. */
  bufferSize?: number;
  /** Attempts to find a port free on both families when opening port 0. Default 10. */
  portAttempts?: number;
  /**
   * Receive with the native recvmmsg reader when the addon has it. Default: true unless the
   * environment sets KUBESPAND_NATIVE_UDP_RECV=0. False keeps dgram's receiver alone.
   */
  nativeReceive?: boolean;
}

export interface UdpBindStats {
  sent: number;
  sendErrors: number;
  received: number;
  /** Of `received`, those read by the native reader (the rest came through dgram). */
  receivedNative: number;
  batches: number;
  /** Datagrams that arrived while nobody listened. */
  dropped: number;
  /** 'error' events from the sockets after binding. */
  socketErrors: number;
}

const DEFAULT_BUFFER_SIZE = 4 * 1024 * 1024;
/** Datagrams per recvmmsg: one wake-up's worth at ~300k datagrams/s without holding the loop long. */
const NATIVE_RECV_BATCH = 64;
const FAMILY_UNAVAILABLE = new Set(['EAFNOSUPPORT', 'EADDRNOTAVAIL', 'EPROTONOSUPPORT']);

interface SocketPair {
  v4?: dgram.Socket;
  v6?: dgram.Socket;
  port: number;
}

/** Endpoints are numeric, so the resolver is the identity (and skips dns.lookup's nextTick per packet). */
function numericLookup(address: string, family: unknown, callback: (err: Error | null, address: string, family: number) => void): void {
  callback(null, address, family === 6 || family === 'IPv6' ? 6 : 4);
}

function errorCode(err: unknown): string {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
}

function bindSocket(sock: dgram.Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      sock.off('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      sock.off('error', onError);
      resolve();
    };
    sock.once('error', onError);
    sock.once('listening', onListening);
    sock.bind({ port, address, exclusive: true });
  });
}

function closeSocket(sock: dgram.Socket | undefined): Promise<void> {
  if (!sock) return Promise.resolve();
  return new Promise((resolve) => {
    try {
      sock.close(() => resolve());
    } catch {
      resolve(); // not running (failed bind) or already closed
    }
  });
}

interface UdpHandle {
  fd?: unknown;
  recvStart?: () => number;
  recvStop?: () => number;
}

/**
 * dgram's UDP handle. Node keeps it under a "state symbol"; the public `_handle` getter works too but
 * is deprecated (DEP0112), so it is only the fallback (for the fd; recvStop is only used when found).
 */
function socketHandle(sock: dgram.Socket): UdpHandle | undefined {
  const stateSymbol = Object.getOwnPropertySymbols(sock).find((s) => s.description === 'state symbol');
  const state = stateSymbol ? (sock as unknown as Record<symbol, { handle?: UdpHandle } | undefined>)[stateSymbol] : undefined;
  return state?.handle ?? undefined;
}

/** The fd of a bound dgram socket (through its handle; see socketHandle). */
export function socketFd(sock: dgram.Socket): number {
  let fd = socketHandle(sock)?.fd;
  if (typeof fd !== 'number') fd = (sock as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('udp bind: cannot find the socket fd (is the socket bound? did node internals change?)');
  return fd;
}

export class UdpBind implements Bind {
  readonly stats: UdpBindStats = { sent: 0, sendErrors: 0, received: 0, receivedNative: 0, batches: 0, dropped: 0, socketErrors: 0 };
  private readonly nativeReceive: boolean;
  private readers = new Map<dgram.Socket, TunReaderHandle>();
  private v4: dgram.Socket | undefined;
  private v6: dgram.Socket | undefined;
  private boundPort = 0;
  private mark = 0;
  private appliedMark = 0;
  private readonly listeners: ((batch: Datagram[]) => void)[] = [];
  private pending: Datagram[] = [];
  private flushScheduled = false;
  private opening: Promise<number> | undefined;
  private readonly address4: string | null;
  private readonly address6: string | null;
  private readonly bufferSize: number;
  private readonly portAttempts: number;

  constructor(opts: UdpBindOptions = {}) {
    this.address4 = opts.address4 === undefined ? '0.0.0.0' : opts.address4;
    this.address6 = opts.address6 === undefined ? '::' : opts.address6;
    this.bufferSize = opts.bufferSize ?? DEFAULT_BUFFER_SIZE;
    this.portAttempts = opts.portAttempts ?? 10;
    this.nativeReceive = opts.nativeReceive ?? process.env.KUBESPAND_NATIVE_UDP_RECV !== '0';
    if (this.address4 === null && this.address6 === null) throw new Error('udp bind: both address families disabled');
  }

  get port(): number {
    return this.boundPort;
  }

  /** Which families are bound right now. */
  get families(): { v4: boolean; v6: boolean } {
    return { v4: this.v4 !== undefined, v6: this.v6 !== undefined };
  }

  /** The bound sockets' fds (tests, diagnostics). */
  socketFds(): { v4?: number; v6?: number } {
    return { v4: this.v4 ? socketFd(this.v4) : undefined, v6: this.v6 ? socketFd(this.v6) : undefined };
  }

  /** The kernel's receive/send buffer sizes per socket (diagnostics; the kernel reports twice the request). */
  bufferSizes(): { v4?: { recv: number; send: number }; v6?: { recv: number; send: number } } {
    const sizes = (sock: dgram.Socket | undefined): { recv: number; send: number } | undefined =>
      sock ? { recv: sock.getRecvBufferSize(), send: sock.getSendBufferSize() } : undefined;
    return { v4: sizes(this.v4), v6: sizes(this.v6) };
  }

  /**
   * Binds both families to `port` (0: kernel's pick). When already open, a different port rebinds: the
   * new sockets are bound first and the old ones closed after, so a failed rebind keeps the old port.
   * The same non-zero port is a no-op; 0 picks a new random port.
   */
  open(port: number): Promise<number> {
    try {
      validatePort(port);
    } catch (err) {
      return Promise.reject(err);
    }
    // serialise concurrent opens (UAPI set while a previous rebind is in flight)
    const run = async (): Promise<number> => {
      if (this.isOpen && port !== 0 && port === this.boundPort) return port;
      const pair = await this.bindPair(port);
      try {
        if (this.mark !== 0) this.applyMark(pair, this.mark);
      } catch (err) {
        await Promise.all([closeSocket(pair.v4), closeSocket(pair.v6)]);
        throw err;
      }
      const old = [this.v4, this.v6];
      this.stopReaders(old);
      this.install(pair);
      this.appliedMark = this.mark;
      await Promise.all(old.map((s) => closeSocket(s)));
      return pair.port;
    };
    const next = (this.opening ?? Promise.resolve(0)).then(run, run);
    this.opening = next;
    return next;
  }

  get isOpen(): boolean {
    return this.v4 !== undefined || this.v6 !== undefined;
  }

  send(ep: Endpoint, data: Uint8Array): void {
    this.sendBatch(ep, [data]);
  }

  /**
   * Sends datagrams to one endpoint. With the data-path addon they go out in one sendmmsg(2) on the
   * dgram socket's own fd; whatever the kernel does not take at once (EAGAIN), and everything while
   * dgram still has sends queued (so order is kept), goes through dgram, which queues and retries.
   */
  sendBatch(ep: Endpoint, packets: Uint8Array[]): void {
    const v6 = ep.address.includes(':');
    const sock = v6 ? this.v6 : this.v4;
    if (!sock) {
      this.stats.sendErrors += packets.length;
      return;
    }
    let first = 0;
    const addon = this.dgramQueued === 0 ? tryLoadDatapath() : undefined;
    const fd = addon ? (v6 ? this.fd6 : this.fd4) : undefined;
    if (addon && fd !== undefined) {
      const address = this.addressBytes(ep.address);
      const n = address ? addon.udpSendBatch(fd, address, ep.port, packets) : -1;
      if (n >= 0) {
        this.stats.sent += n;
        first = n;
      }
    }
    for (let i = first; i < packets.length; i++) {
      try {
        this.dgramQueued++;
        sock.send(packets[i]!, ep.port, ep.address, this.afterSend);
      } catch {
        this.dgramQueued--;
        this.stats.sendErrors++;
      }
    }
  }

  private dgramQueued = 0;
  private fd4: number | undefined;
  private fd6: number | undefined;
  private readonly addressCache = new Map<string, Uint8Array | null>();

  private addressBytes(address: string): Uint8Array | null {
    let bytes = this.addressCache.get(address);
    if (bytes === undefined) {
      try {
        bytes = parseIp(address);
      } catch {
        bytes = null;
      }
      if (this.addressCache.size >= 4096) this.addressCache.clear();
      this.addressCache.set(address, bytes);
    }
    return bytes;
  }

  onDatagrams(cb: (batch: Datagram[]) => void): void {
    this.listeners.push(cb);
  }

  /** Sets SO_MARK on both sockets (needs CAP_NET_ADMIN); throws with the errno text when refused. */
  setMark(mark: number): void {
    validateMark(mark);
    if (this.isOpen && mark !== this.appliedMark) {
      this.applyMark({ v4: this.v4, v6: this.v6, port: this.boundPort }, mark);
      this.appliedMark = mark;
    }
    this.mark = mark;
  }

  async close(): Promise<void> {
    await this.opening?.catch(() => undefined);
    const old = [this.v4, this.v6];
    this.stopReaders(old);
    this.v4 = undefined;
    this.v6 = undefined;
    this.fd4 = this.fd6 = undefined;
    this.boundPort = 0;
    this.appliedMark = 0;
    this.pending = [];
    await Promise.all(old.map((s) => closeSocket(s)));
  }

  // ------------------------------------------------------------ internals

  private readonly afterSend = (err: Error | null): void => {
    this.dgramQueued--;
    if (err) this.stats.sendErrors++;
    else this.stats.sent++;
  };

  private applyMark(pair: SocketPair, mark: number): void {
    const native = loadNative();
    for (const sock of [pair.v4, pair.v6]) {
      if (!sock) continue;
      try {
        native.setSocketMark(socketFd(sock), mark);
      } catch (err) {
        throw new Error(`udp bind port ${pair.port}: setting fwmark 0x${mark.toString(16)}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    }
  }

  private async bindPair(port: number): Promise<SocketPair> {
    const attempts = port === 0 ? this.portAttempts : 1;
    let lastError: unknown;
    for (let attempt = 0; attempt < attempts; attempt++) {
      let v4: dgram.Socket | undefined;
      let v6: dgram.Socket | undefined;
      let chosen = port;
      try {
        if (this.address4 !== null) {
          v4 = dgram.createSocket({ type: 'udp4', lookup: numericLookup as never });
          try {
            await bindSocket(v4, chosen, this.address4);
            chosen = v4.address().port;
          } catch (err) {
            await closeSocket(v4);
            v4 = undefined;
            if (!FAMILY_UNAVAILABLE.has(errorCode(err)) || this.address6 === null) throw err;
          }
        }
        if (this.address6 !== null) {
          v6 = dgram.createSocket({ type: 'udp6', ipv6Only: true, lookup: numericLookup as never });
          try {
            await bindSocket(v6, chosen, this.address6);
            chosen = v6.address().port;
          } catch (err) {
            await closeSocket(v6);
            v6 = undefined;
            // no IPv6 on this host: run v4 only (if v4 is up)
            if (!(FAMILY_UNAVAILABLE.has(errorCode(err)) && v4)) throw err;
          }
        }
        return { v4, v6, port: chosen };
      } catch (err) {
        await Promise.all([closeSocket(v4), closeSocket(v6)]);
        lastError = err;
        // port 0: the v4 port the kernel picked was taken on v6; try another
        if (!(port === 0 && errorCode(err) === 'EADDRINUSE')) break;
      }
    }
    const code = errorCode(lastError);
    const detail = lastError instanceof Error ? lastError.message : String(lastError);
    throw new Error(`udp bind: listen_port ${port}: ${code === 'EADDRINUSE' ? 'port already in use' : 'bind failed'} (${detail})`, { cause: lastError });
  }

  /**
   * Large socket buffers absorb bursts between event-loop turns. With CAP_NET_ADMIN the addon forces
   * them past net.core.[rw]mem_max (as wireguard-go does); otherwise node's setters apply, capped by
   * those limits. Failures are ignored: buffer size is a tuning, not a requirement.
   */
  private sizeBuffers(sock: dgram.Socket): void {
    try {
      loadNative().setSocketBuffers(socketFd(sock), this.bufferSize);
      return;
    } catch {
      /* addon not built or setsockopt refused: fall back to node's setters */
    }
    try {
      sock.setRecvBufferSize(this.bufferSize);
    } catch {
      /* capped by net.core.rmem_max: fine */
    }
    try {
      sock.setSendBufferSize(this.bufferSize);
    } catch {
      /* capped by net.core.wmem_max: fine */
    }
  }

  private install(pair: SocketPair): void {
    this.v4 = pair.v4;
    this.v6 = pair.v6;
    this.fd4 = pair.v4 ? socketFd(pair.v4) : undefined;
    this.fd6 = pair.v6 ? socketFd(pair.v6) : undefined;
    this.boundPort = pair.port;
    for (const sock of [pair.v4, pair.v6]) {
      if (!sock) continue;
      this.sizeBuffers(sock);
      sock.on('message', (msg: Buffer, rinfo: dgram.RemoteInfo) => {
        if (sock !== this.v4 && sock !== this.v6) return; // a socket being replaced by a rebind
        // a plain Uint8Array view, like the native reader's: the core then sees one object map (a Buffer
        // would deoptimise the code the start-up warm-up optimised)
        const data = new Uint8Array(msg.buffer, msg.byteOffset, msg.length);
        this.pending.push({ data, from: { address: normalizeReceivedAddress(rinfo.address), port: rinfo.port } });
        if (!this.flushScheduled) {
          this.flushScheduled = true;
          setImmediate(this.flush);
        }
      });
      sock.on('error', () => {
        this.stats.socketErrors++;
      });
      this.startReader(sock);
    }
  }

  /** Which reader takes datagrams off the sockets: 'native' (recvmmsg, with dgram as the runner-up) or 'dgram'. */
  get receivePath(): 'native' | 'dgram' {
    return this.readers.size > 0 ? 'native' : 'dgram';
  }

  private startReader(sock: dgram.Socket): void {
    if (!this.nativeReceive) return;
    let addon: NativeAddon;
    try {
      addon = loadNative();
    } catch {
      return; // addon not built: dgram receives alone
    }
    if (typeof addon.udpReaderStart !== 'function') return;
    try {
      const handle = addon.udpReaderStart(socketFd(sock), NATIVE_RECV_BATCH, (data, metaOrErr, addresses) => {
        if (sock !== this.v4 && sock !== this.v6) return;
        if (data === null) {
          // the reader failed on a live socket: hand receiving back to dgram
          this.readers.delete(sock);
          this.stats.socketErrors++;
          socketHandle(sock)?.recvStart?.();
          return;
        }
        const meta = metaOrErr as Uint32Array;
        const count = meta.length >> 1;
        const batch: Datagram[] = new Array(count);
        let offset = 0;
        let last: Endpoint | undefined;
        for (let i = 0; i < count; i++) {
          const length = meta[2 * i]!;
          const port = meta[2 * i + 1]!;
          const address = addresses![i]!;
          // consecutive datagrams from one source share one endpoint object (the device batches by it)
          const from = last !== undefined && last.port === port && last.address === address ? last : (last = { address: normalizeReceivedAddress(address), port });
          batch[i] = { data: data.subarray(offset, offset + length), from };
          offset += length;
        }
        this.stats.receivedNative += batch.length;
        this.deliver(batch);
      });
      this.readers.set(sock, handle);
      // one reader per socket: dgram's would race ours for every datagram (and cost a JS call per datagram when it wins)
      const udp = socketHandle(sock);
      if (typeof udp?.recvStop === 'function') udp.recvStop();
    } catch {
      /* not a socket the reader accepts: dgram receives alone */
    }
  }

  private stopReaders(socks: (dgram.Socket | undefined)[]): void {
    for (const sock of socks) {
      if (!sock) continue;
      const handle = this.readers.get(sock);
      if (!handle) continue;
      this.readers.delete(sock);
      try {
        loadNative().tunReaderStop(handle);
      } catch {
        /* already stopped */
      }
    }
  }

  /** Hands a batch to the listeners (datagrams queued by dgram go first, so order within a source holds). */
  private deliver(batch: Datagram[]): void {
    if (this.pending.length > 0) {
      const queued = this.pending;
      this.pending = [];
      batch = queued.concat(batch);
    }
    if (this.listeners.length === 0) {
      this.stats.dropped += batch.length;
      return;
    }
    this.stats.received += batch.length;
    this.stats.batches++;
    for (const cb of this.listeners) cb(batch);
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.pending.length === 0) return;
    this.deliver([]);
  };
}
