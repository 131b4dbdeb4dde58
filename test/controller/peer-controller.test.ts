/** One reconcile pass as a pure function: statuses, WireGuard peers, routing target set, harvest. */
import { describe, expect, it } from 'vitest';
import { isKubespanUla, reconcilePeers, type ReconcileInput } from '../../src/peer/peer-controller.js';
import type { DevicePeerSnapshot, PeerSpec, PeerStatus } from '../../src/peer/types.js';

const now = 1_700_000_000_000;
const A = { address: '192.0.2.1', port: 51820 };
const B = { address: '198.51.100.1', port: 51820 };
const spec: PeerSpec = {
  publicKey: 'pk1',
  address: 'fd7f:175a:b97c:5602:2c1a:b6ff:fe53:8169',
  allowedIps: ['10.244.1.0/24', '192.0.2.1/32', 'fd7f:175a:b97c:5602:2c1a:b6ff:fe53:8169/128'],
  endpoints: [A, B],
  label: 'node-1',
  affiliateId: 'aff1',
};

function input(over: Partial<ReconcileInput> = {}): ReconcileInput {
  return {
    now,
    specs: [spec],
    previous: new Map(),
    device: new Map(),
    presharedKey: 'secret',
    allowDownPeerBypass: false,
    harvestExtraEndpoints: false,
    ...over,
  };
}

describe('reconcilePeers', () => {
  it('a new peer gets its first endpoint, the cluster secret as PSK and a 25 s keepalive', () => {
    const out = reconcilePeers(input());
    expect(out.statuses[0]).toMatchObject({ state: 'unknown', lastUsedEndpoint: A, lastEndpointChange: now, label: 'node-1' });
    expect(out.devicePeers[0]).toEqual({ publicKey: 'pk1', presharedKey: 'secret', persistentKeepaliveSec: 25, allowedIps: spec.allowedIps, endpoint: A });
    expect(out.endpointChanges).toEqual([{ publicKey: 'pk1', label: 'node-1', from: null, to: A }]);
  });

  it('copies endpoint, handshake and byte counters from WireGuard and reports up', () => {
    const prev: PeerStatus = { publicKey: 'pk1', label: 'node-1', endpoint: A, state: 'unknown', receiveBytes: 0, transmitBytes: 0, lastHandshakeTime: 0, lastUsedEndpoint: A, lastEndpointChange: now - 20_000 };
    const dev: DevicePeerSnapshot = { publicKey: 'pk1', endpoint: A, lastHandshakeTime: now - 5_000, receiveBytes: 1234, transmitBytes: 4321 };
    const out = reconcilePeers(input({ previous: new Map([['pk1', prev]]), device: new Map([['pk1', dev]]) }));
    expect(out.statuses[0]).toMatchObject({ state: 'up', receiveBytes: 1234, transmitBytes: 4321, lastHandshakeTime: now - 5_000 });
    expect(out.devicePeers[0]!.endpoint).toEqual(A); // re-applied: WireGuard uses the last used one
    expect(out.endpointChanges).toEqual([]);
  });

  it('moves a down peer to the next endpoint', () => {
    const prev: PeerStatus = { publicKey: 'pk1', label: 'node-1', endpoint: A, state: 'unknown', receiveBytes: 0, transmitBytes: 0, lastHandshakeTime: 0, lastUsedEndpoint: A, lastEndpointChange: now - 31_000 };
    const out = reconcilePeers(input({ previous: new Map([['pk1', prev]]), device: new Map([['pk1', { publicKey: 'pk1', endpoint: A, lastHandshakeTime: 0, receiveBytes: 0, transmitBytes: 0 }]]) }));
    expect(out.statuses[0]).toMatchObject({ state: 'unknown', lastUsedEndpoint: B, lastEndpointChange: now });
    expect(out.devicePeers[0]!.endpoint).toEqual(B);
  });

  it('respects roaming: an up peer that WireGuard sees elsewhere keeps that endpoint (push null)', () => {
    const roamed = { address: '203.0.113.9', port: 40000 };
    const prev: PeerStatus = { publicKey: 'pk1', label: 'node-1', endpoint: A, state: 'up', receiveBytes: 0, transmitBytes: 0, lastHandshakeTime: now - 1000, lastUsedEndpoint: A, lastEndpointChange: now - 100_000 };
    const out = reconcilePeers(input({ previous: new Map([['pk1', prev]]), device: new Map([['pk1', { publicKey: 'pk1', endpoint: roamed, lastHandshakeTime: now - 1000, receiveBytes: 1, transmitBytes: 1 }]]) }));
    expect(out.statuses[0]!.state).toBe('up');
    expect(out.statuses[0]!.endpoint).toEqual(roamed);
    expect(out.devicePeers[0]!.endpoint).toBeNull();
  });

  it('steers all peers by default, only up peers with allowDownPeerBypass, never the ULA', () => {
    const forced = reconcilePeers(input());
    expect(forced.targetPrefixes).toEqual(['10.244.1.0/24', '192.0.2.1/32']);
    const bypass = reconcilePeers(input({ allowDownPeerBypass: true }));
    expect(bypass.targetPrefixes).toEqual([]);
    const prev: PeerStatus = { publicKey: 'pk1', label: 'node-1', endpoint: A, state: 'up', receiveBytes: 0, transmitBytes: 0, lastHandshakeTime: now - 1000, lastUsedEndpoint: A, lastEndpointChange: now - 100_000 };
    const up = reconcilePeers(input({ allowDownPeerBypass: true, previous: new Map([['pk1', prev]]), device: new Map([['pk1', { publicKey: 'pk1', endpoint: A, lastHandshakeTime: now - 1000, receiveBytes: 0, transmitBytes: 0 }]]) }));
    expect(up.targetPrefixes).toEqual(['10.244.1.0/24', '192.0.2.1/32']);
  });

  it('harvests endpoints of up peers only when enabled', () => {
    const prev: PeerStatus = { publicKey: 'pk1', label: 'node-1', endpoint: A, state: 'up', receiveBytes: 0, transmitBytes: 0, lastHandshakeTime: now - 1000, lastUsedEndpoint: A, lastEndpointChange: now - 100_000 };
    const dev = new Map([['pk1', { publicKey: 'pk1', endpoint: A, lastHandshakeTime: now - 1000, receiveBytes: 0, transmitBytes: 0 }]]);
    expect(reconcilePeers(input({ previous: new Map([['pk1', prev]]), device: dev })).harvested).toEqual([]);
    expect(reconcilePeers(input({ previous: new Map([['pk1', prev]]), device: dev, harvestExtraEndpoints: true })).harvested).toEqual([{ publicKey: 'pk1', affiliateId: 'aff1', endpoint: A }]);
  });

  it('recognises KubeSpan ULA prefixes', () => {
    expect(isKubespanUla('fd7f:175a:b97c:5602::/64')).toBe(true);
    expect(isKubespanUla('fd7f:175a:b97c:5603::/64')).toBe(false);
    expect(isKubespanUla('10.0.0.0/8')).toBe(false);
  });
});
