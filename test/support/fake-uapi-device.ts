/**
 * A config-only UapiDevice for tests: it stores what the UAPI sets and reports it back, with the
 * same observable rules as wireguard-go's device (peers kept in insertion order, allowed IPs move
 * between peers, a new private key drops the peer with the matching public key, listen port 0
 * stays 0 because nothing is bound). No packets, no timers. Every call is recorded in `calls`
 * (peers as `peer(abcd…wxyz)`, keys never), and failures can be injected.
 */
import nacl from 'tweetnacl';
import { formatPrefix, maskPrefix, type Prefix } from '../../src/noise/allowed-ips.js';
import { UapiError, type Endpoint, type UapiDevice, type UapiDeviceState, type UapiPeer } from '../../src/uapi/types.js';

function hex(k: Uint8Array): string {
  return Buffer.from(k).toString('hex');
}

function tag(k: Uint8Array): string {
  const b64 = Buffer.from(k).toString('base64');
  return `peer(${b64.slice(0, 4)}…${b64.slice(39, 43)})`;
}

function samePrefix(a: Prefix, b: Prefix): boolean {
  return a.bits === b.bits && Buffer.from(a.address).equals(Buffer.from(b.address));
}

export interface FakeUapiDeviceOptions {
  /** setListenPort rejects for these ports (like a bind failing with EADDRINUSE). */
  busyPorts?: number[];
  /** setFwmark throws (like SO_MARK failing). */
  fwmarkFails?: boolean;
  /** createPeer throws once this many peers exist (like wireguard-go's MaxPeers). */
  maxPeers?: number;
  /** setEndpoint throws a UapiError with this errno. */
  endpointErrno?: number;
}

export class FakeUapiDevice implements UapiDevice {
  privateKey: Uint8Array | null = null;
  listenPort = 0;
  fwmark = 0;
  readonly peers = new Map<string, UapiPeer>();
  readonly calls: string[] = [];
  /** Set of peer tags for which peerDone saw persistent keepalive turned on from 0 (a keepalive would be sent). */
  readonly keepalivesSent: string[] = [];
  private readonly pkaTurnedOn = new Set<string>();

  constructor(private readonly options: FakeUapiDeviceOptions = {}) {}

  private peer(pub: Uint8Array): UapiPeer {
    const p = this.peers.get(hex(pub));
    if (!p) throw new Error(`fake device: no such peer ${tag(pub)}`);
    return p;
  }

  getState(): UapiDeviceState {
    return {
      privateKey: this.privateKey && Uint8Array.from(this.privateKey),
      listenPort: this.listenPort,
      fwmark: this.fwmark,
      peers: [...this.peers.values()].map((p) => ({ ...p, allowedIps: p.allowedIps.map((a) => ({ address: Uint8Array.from(a.address), bits: a.bits })) })),
    };
  }

  publicKey(): Uint8Array | null {
    return this.privateKey && nacl.scalarMult.base(this.privateKey);
  }

  setPrivateKey(key: Uint8Array | null): void {
    this.calls.push(key ? 'setPrivateKey(key)' : 'setPrivateKey(null)');
    this.privateKey = key && Uint8Array.from(key);
    const pub = this.publicKey();
    if (pub) this.peers.delete(hex(pub));
  }

  async setListenPort(port: number): Promise<void> {
    this.calls.push(`setListenPort(${port})`);
    await new Promise((r) => setImmediate(r));
    if (this.options.busyPorts?.includes(port)) throw new Error(`listen udp :${port}: address already in use`);
    this.listenPort = port;
  }

  setFwmark(mark: number): void {
    this.calls.push(`setFwmark(${mark})`);
    if (this.options.fwmarkFails) throw new Error('setsockopt SO_MARK: operation not permitted');
    this.fwmark = mark;
  }

  removeAllPeers(): void {
    this.calls.push('removeAllPeers()');
    this.peers.clear();
  }

  hasPeer(pub: Uint8Array): boolean {
    return this.peers.has(hex(pub));
  }

  createPeer(pub: Uint8Array): void {
    this.calls.push(`createPeer(${tag(pub)})`);
    if (this.options.maxPeers !== undefined && this.peers.size >= this.options.maxPeers) throw new Error('too many peers');
    if (pub.length !== 32) throw new Error(`fake device: public key of ${pub.length} bytes`);
    this.peers.set(hex(pub), {
      publicKey: Uint8Array.from(pub),
      presharedKey: null,
      endpoint: null,
      lastHandshakeWallMs: 0,
      rxBytes: 0,
      txBytes: 0,
      persistentKeepaliveSec: 0,
      allowedIps: [],
    });
  }

  removePeer(pub: Uint8Array): void {
    this.calls.push(`removePeer(${tag(pub)})`);
    this.peers.delete(hex(pub));
  }

  setPresharedKey(pub: Uint8Array, key: Uint8Array | null): void {
    this.calls.push(`setPresharedKey(${tag(pub)}, ${key ? 'key' : 'null'})`);
    this.peer(pub).presharedKey = key && Uint8Array.from(key);
  }

  setEndpoint(pub: Uint8Array, endpoint: Endpoint): void {
    this.calls.push(`setEndpoint(${tag(pub)}, ${endpoint.address} ${endpoint.port})`);
    if (this.options.endpointErrno !== undefined) throw new UapiError(this.options.endpointErrno, 'endpoint refused by fake');
    this.peer(pub).endpoint = { ...endpoint };
  }

  setPersistentKeepalive(pub: Uint8Array, seconds: number): void {
    this.calls.push(`setPersistentKeepalive(${tag(pub)}, ${seconds})`);
    const p = this.peer(pub);
    if (p.persistentKeepaliveSec === 0 && seconds !== 0) this.pkaTurnedOn.add(hex(pub));
    p.persistentKeepaliveSec = seconds;
  }

  replaceAllowedIps(pub: Uint8Array): void {
    this.calls.push(`replaceAllowedIps(${tag(pub)})`);
    this.peer(pub).allowedIps = [];
  }

  addAllowedIp(pub: Uint8Array, prefix: Prefix): void {
    const masked = maskPrefix(prefix);
    this.calls.push(`addAllowedIp(${tag(pub)}, ${formatPrefix(masked)})`);
    const target = this.peer(pub);
    // a prefix has one owner: move it here (to the end of this peer's list)
    for (const p of this.peers.values()) p.allowedIps = p.allowedIps.filter((a) => !samePrefix(a, masked));
    target.allowedIps.push(masked);
  }

  removeAllowedIp(pub: Uint8Array, prefix: Prefix): void {
    const masked = maskPrefix(prefix);
    this.calls.push(`removeAllowedIp(${tag(pub)}, ${formatPrefix(masked)})`);
    const p = this.peer(pub);
    p.allowedIps = p.allowedIps.filter((a) => !samePrefix(a, masked));
  }

  peerDone(pub: Uint8Array): void {
    this.calls.push(`peerDone(${tag(pub)})`);
    this.peer(pub);
    if (this.pkaTurnedOn.delete(hex(pub))) this.keepalivesSent.push(tag(pub));
  }

  /** Test helper: counters and handshake time as a running device would report them. */
  setStats(pub: Uint8Array, stats: Partial<Pick<UapiPeer, 'rxBytes' | 'txBytes' | 'lastHandshakeWallMs' | 'endpoint'>>): void {
    Object.assign(this.peer(pub), stats);
  }
}

export { tag as fakePeerTag };
