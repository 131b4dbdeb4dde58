/**
 * Prometheus metrics of a running node (prom-client, on a registry of our own so nothing global
 * leaks in). Every series is computed at scrape time from one snapshot of the daemon: nothing here
 * is on the packet path, and a scrape costs one `getState()` of the device.
 *
 * Peers are labelled `peer="peer(abcd…wxyz)"` (the short key fingerprint the logs use) and
 * `label` (the peer's node name). Only public data is exported: no key, secret or proxy URL ever
 * reaches a label or a value (the metrics test scrapes a live daemon and greps for them).
 *
 *   kubespand_build_info{version,node_version}                      1
 *   kubespand_peers{state}                                          peers per state
 *   kubespand_peer_state{peer,label,state}                          1 for the current state, 0 otherwise
 *   kubespand_peer_receive_bytes_total / _transmit_bytes_total      WireGuard rx/tx of the peer
 *   kubespand_peer_last_handshake_timestamp_seconds                 0 = never
 *   kubespand_peer_last_handshake_age_seconds                       only once a handshake completed
 *   kubespand_peer_endpoint_changes_total                           controller choices and roams
 *   kubespand_peer_handshake_attempts_total                         initiations sent
 *   kubespand_peer_handshake_failures_total                         initiations left unanswered (retried or given up)
 *   kubespand_peer_handshakes_total                                 handshakes completed
 *   kubespand_dropped_packets_total{reason}                         the core's DropReason counts
 *   kubespand_device_*_total                                        datagrams and TUN packets moved, internal errors
 *   kubespand_discovery_connection_state{state}                     1 for the client's current state
 *   kubespand_discovery_affiliates                                  affiliates currently seen
 *   kubespand_discovery_client_events_total{event}                  hellos, watch errors, updates sent, …
 *   kubespand_reconcile_passes_total / _errors_total, kubespand_reconcile_last_success_timestamp_seconds
 *   kubespand_config_reloads_total{result}, kubespand_config_last_reload_success_timestamp_seconds
 *   process_* and nodejs_*                                          prom-client's default process metrics
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { peerTag, keyFromBase64 } from '../noise/keys.js';

export const PEER_STATES = ['unknown', 'up', 'down'] as const;
export const DISCOVERY_STATES = ['connecting', 'connected', 'backoff', 'stopped', 'disabled'] as const;

export interface PeerMetrics {
  /** Standard base64 public key (public data; exported only as its short fingerprint). */
  publicKey: string;
  label: string;
  state: (typeof PEER_STATES)[number];
  receiveBytes: number;
  transmitBytes: number;
  /** Unix ms of the last completed handshake; 0 = never. */
  lastHandshakeTime: number;
  endpointChanges: number;
  handshakeAttempts: number;
  handshakeFailures: number;
  handshakes: number;
}

/** Everything one scrape shows, taken from the daemon in one go. */
export interface MetricsSnapshot {
  peers: PeerMetrics[];
  drops: ReadonlyMap<string, number>;
  device: { datagramsIn: number; datagramsOut: number; packetsFromTun: number; packetsToTun: number; internalErrors: number };
  discovery: { state: string; affiliates: number; events: Readonly<Record<string, number>> };
  reconcile: { passes: number; errors: number; lastSuccessAt: number };
  reloads: { succeeded: number; failed: number; lastSuccessAt: number };
}

export interface MetricsOptions {
  version: string;
  /** Unix ms clock for ages (tests pin it). */
  now?: () => number;
  /** prom-client's process_* / nodejs_* collectors (default true). */
  processMetrics?: boolean;
}

function fingerprint(publicKey: string): string {
  try {
    return peerTag(keyFromBase64(publicKey, 'peer public key'));
  } catch {
    return 'peer(invalid)';
  }
}

/** Builds a registry whose every series is read from `snapshot()` when scraped. */
export function createMetricsRegistry(snapshot: () => MetricsSnapshot, opts: MetricsOptions): Registry {
  const registry = new Registry();
  const now = opts.now ?? Date.now;
  // one snapshot per scrape: prom-client calls every collect() synchronously at the start of metrics()
  let cached: MetricsSnapshot | null = null;
  const take = (): MetricsSnapshot => {
    if (!cached) {
      cached = snapshot();
      queueMicrotask(() => (cached = null));
    }
    return cached;
  };
  const registers = [registry];
  const peerLabels = ['peer', 'label'] as const;

  new Gauge({
    name: 'kubespand_build_info',
    help: 'kubespand version and the Node.js running it (always 1).',
    labelNames: ['version', 'node_version'],
    registers,
    collect() {
      this.set({ version: opts.version, node_version: process.version }, 1);
    },
  });

  new Gauge({
    name: 'kubespand_peers',
    help: 'KubeSpan peers by state (unknown, up, down).',
    labelNames: ['state'],
    registers,
    collect() {
      const peers = take().peers;
      for (const state of PEER_STATES) this.set({ state }, peers.filter((p) => p.state === state).length);
    },
  });

  new Gauge({
    name: 'kubespand_peer_state',
    help: 'KubeSpan peer state: 1 for the state the peer is in, 0 for the others.',
    labelNames: ['peer', 'label', 'state'],
    registers,
    collect() {
      this.reset();
      for (const p of take().peers) {
        const peer = fingerprint(p.publicKey);
        for (const state of PEER_STATES) this.set({ peer, label: p.label, state }, p.state === state ? 1 : 0);
      }
    },
  });

  /** A per-peer counter read from the snapshot (reset and re-filled on every scrape). */
  const peerCounter = (name: string, help: string, value: (p: PeerMetrics) => number): void => {
    new Counter({
      name,
      help,
      labelNames: peerLabels,
      registers,
      collect() {
        this.reset();
        for (const p of take().peers) this.inc({ peer: fingerprint(p.publicKey), label: p.label }, Math.max(0, value(p)));
      },
    });
  };
  peerCounter('kubespand_peer_receive_bytes_total', 'Bytes received from the peer over WireGuard.', (p) => p.receiveBytes);
  peerCounter('kubespand_peer_transmit_bytes_total', 'Bytes sent to the peer over WireGuard.', (p) => p.transmitBytes);
  peerCounter('kubespand_peer_endpoint_changes_total', 'Endpoint changes of the peer: choices by the controller and roams seen by WireGuard.', (p) => p.endpointChanges);
  peerCounter('kubespand_peer_handshake_attempts_total', 'Handshake initiations sent to the peer.', (p) => p.handshakeAttempts);
  peerCounter('kubespand_peer_handshake_failures_total', 'Handshake initiations the peer left unanswered (retried after REKEY_TIMEOUT, or given up).', (p) => p.handshakeFailures);
  peerCounter('kubespand_peer_handshakes_total', 'Handshakes completed with the peer.', (p) => p.handshakes);

  new Gauge({
    name: 'kubespand_peer_last_handshake_timestamp_seconds',
    help: 'Unix time of the last completed handshake with the peer (0 = never).',
    labelNames: peerLabels,
    registers,
    collect() {
      this.reset();
      for (const p of take().peers) this.set({ peer: fingerprint(p.publicKey), label: p.label }, p.lastHandshakeTime / 1000);
    },
  });

  new Gauge({
    name: 'kubespand_peer_last_handshake_age_seconds',
    help: 'Seconds since the last completed handshake with the peer (absent until one completed).',
    labelNames: peerLabels,
    registers,
    collect() {
      this.reset();
      const t = now();
      for (const p of take().peers) {
        if (p.lastHandshakeTime > 0) this.set({ peer: fingerprint(p.publicKey), label: p.label }, Math.max(0, (t - p.lastHandshakeTime) / 1000));
      }
    },
  });

  new Counter({
    name: 'kubespand_dropped_packets_total',
    help: 'Packets and datagrams the WireGuard core dropped, by reason.',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      for (const [reason, n] of take().drops) this.inc({ reason }, n);
    },
  });

  const deviceCounter = (name: string, help: string, value: (d: MetricsSnapshot['device']) => number): void => {
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(value(take().device));
      },
    });
  };
  deviceCounter('kubespand_device_datagrams_received_total', 'UDP datagrams received on the WireGuard port.', (d) => d.datagramsIn);
  deviceCounter('kubespand_device_datagrams_sent_total', 'UDP datagrams sent from the WireGuard port.', (d) => d.datagramsOut);
  deviceCounter('kubespand_device_tun_packets_read_total', 'IP packets read from the KubeSpan TUN interface.', (d) => d.packetsFromTun);
  deviceCounter('kubespand_device_tun_packets_written_total', 'IP packets written to the KubeSpan TUN interface.', (d) => d.packetsToTun);
  deviceCounter('kubespand_device_internal_errors_total', 'Exceptions caught on the packet path (bugs: each is logged with its stack).', (d) => d.internalErrors);

  new Gauge({
    name: 'kubespand_discovery_connection_state',
    help: 'Discovery client state: 1 for the current one (connecting, connected, backoff, stopped, disabled).',
    labelNames: ['state'],
    registers,
    collect() {
      const current = take().discovery.state;
      for (const state of DISCOVERY_STATES) this.set({ state }, state === current ? 1 : 0);
    },
  });

  new Gauge({
    name: 'kubespand_discovery_affiliates',
    help: 'Affiliates of the cluster the discovery client currently sees (this node excluded).',
    registers,
    collect() {
      this.set(take().discovery.affiliates);
    },
  });

  new Counter({
    name: 'kubespand_discovery_client_events_total',
    help: 'Discovery client events: hellos, watch errors, updates sent, rejected records, …',
    labelNames: ['event'],
    registers,
    collect() {
      this.reset();
      for (const [event, n] of Object.entries(take().discovery.events)) this.inc({ event }, n);
    },
  });

  new Counter({
    name: 'kubespand_reconcile_passes_total',
    help: 'Reconcile passes completed.',
    registers,
    collect() {
      this.reset();
      this.inc(take().reconcile.passes);
    },
  });
  new Counter({
    name: 'kubespand_reconcile_errors_total',
    help: 'Reconcile passes that failed (retried with back-off).',
    registers,
    collect() {
      this.reset();
      this.inc(take().reconcile.errors);
    },
  });
  new Gauge({
    name: 'kubespand_reconcile_last_success_timestamp_seconds',
    help: 'Unix time of the last successful reconcile pass.',
    registers,
    collect() {
      this.set(take().reconcile.lastSuccessAt / 1000);
    },
  });

  new Counter({
    name: 'kubespand_config_reloads_total',
    help: 'Config reloads (SIGHUP or the control socket) by result.',
    labelNames: ['result'],
    registers,
    collect() {
      this.reset();
      const r = take().reloads;
      this.inc({ result: 'success' }, r.succeeded);
      this.inc({ result: 'failure' }, r.failed);
    },
  });
  new Gauge({
    name: 'kubespand_config_last_reload_success_timestamp_seconds',
    help: 'Unix time of the last successful config reload (0 = none since start).',
    registers,
    collect() {
      this.set(take().reloads.lastSuccessAt / 1000);
    },
  });

  if (opts.processMetrics !== false) collectDefaultMetrics({ register: registry });
  return registry;
}
