/** Peer state machine and endpoint cycling as tables and timelines (spec/kubespan.md §3.4). */
import { describe, expect, it } from 'vitest';
import { calculateState, calculateStateWithDurations, pickNewEndpoint, shouldChangeEndpoint, updateEndpoint, PEER_DOWN_INTERVAL_MS } from '../../src/peer/peer-status.js';
import { newPeerStatus } from '../../src/peer/peer-controller.js';
import type { PeerStatus } from '../../src/peer/types.js';

const S = 1000;
const A = { address: '192.0.2.1', port: 51820 };
const B = { address: '198.51.100.1', port: 51820 };
const C = { address: '2001:db8::1', port: 51820 };

describe('calculateStateWithDurations', () => {
  const cases: [string, number, number, string][] = [
    ['endpoint just changed, no handshake yet', Infinity, 5 * S, 'unknown'],
    ['endpoint just changed, handshake since', 3 * S, 5 * S, 'up'],
    ['endpoint just changed, handshake only before the change', 6 * S, 5 * S, 'unknown'],
    ['exactly 15 s: the connection timeout has passed', Infinity, 15 * S, 'down'],
    ['20 s after the change, no handshake', Infinity, 20 * S, 'down'],
    ['20 s after the change, handshake before it', 25 * S, 20 * S, 'down'],
    ['20 s after the change, handshake after it', 10 * S, 20 * S, 'up'],
    ['exactly 275 s: still the middle window', 100 * S, 275 * S, 'up'],
    ['old endpoint, recent handshake', 100 * S, 300 * S, 'up'],
    ['old endpoint, handshake 274 s ago', 274 * S, 3000 * S, 'up'],
    ['old endpoint, handshake 276 s ago', 276 * S, 3000 * S, 'down'],
    ['never changed, never handshaked', Infinity, Infinity, 'down'],
  ];
  for (const [name, sinceHandshake, sinceChange, want] of cases) {
    it(name, () => expect(calculateStateWithDurations(sinceHandshake, sinceChange)).toBe(want));
  }
  it('uses 275 s as the peer-down interval', () => expect(PEER_DOWN_INTERVAL_MS).toBe(275_000));
});

describe('calculateState', () => {
  const now = 1_700_000_000_000;
  it('reports a down peer that never had an endpoint chosen as unknown', () => {
    expect(calculateState({ lastHandshakeTime: 0, lastEndpointChange: 0, lastUsedEndpoint: null }, now)).toBe('unknown');
  });
  it('reports down once an endpoint was chosen and failed for 15 s', () => {
    expect(calculateState({ lastHandshakeTime: 0, lastEndpointChange: now - 16 * S, lastUsedEndpoint: A }, now)).toBe('down');
  });
  it('reports up when a handshake followed the endpoint choice', () => {
    expect(calculateState({ lastHandshakeTime: now - 1 * S, lastEndpointChange: now - 16 * S, lastUsedEndpoint: A }, now)).toBe('up');
  });
});

describe('pickNewEndpoint', () => {
  const status = (lastUsed: typeof A | null, current: typeof A | null = lastUsed) => ({ lastUsedEndpoint: lastUsed, endpoint: current });
  it('has nothing to pick without candidates', () => expect(pickNewEndpoint([], status(null))).toBeNull());
  it('starts with the first candidate', () => expect(pickNewEndpoint([A, B, C], status(null))).toEqual(A));
  it('moves to the next candidate', () => expect(pickNewEndpoint([A, B, C], status(A))).toEqual(B));
  it('wraps around', () => expect(pickNewEndpoint([A, B, C], status(C))).toEqual(A));
  it('restarts at the first when the last used one disappeared', () => expect(pickNewEndpoint([B, C], status(A))).toEqual(B));
  it('keeps a single candidate that WireGuard still uses', () => expect(pickNewEndpoint([A], status(A, A))).toBeNull());
  it('re-applies a single candidate that WireGuard lost', () => expect(pickNewEndpoint([A], status(A, null))).toEqual(A));
  it('switches to a single new candidate', () => expect(pickNewEndpoint([B], status(A, A))).toEqual(B));
});

describe('endpoint cycling timeline (reconcile every 30 s)', () => {
  it('tries each candidate in order until one comes up, then keeps it', () => {
    const candidates = [A, B, C];
    let now = 1_700_000_000_000;
    let s: PeerStatus = newPeerStatus({ publicKey: 'k', label: 'n' });
    const chosen: string[] = [];
    const step = (handshakeOk: boolean) => {
      if (handshakeOk && s.lastUsedEndpoint?.address === B.address) s = { ...s, lastHandshakeTime: now - 1000 };
      s = { ...s, state: calculateState(s, now) };
      if (shouldChangeEndpoint(s)) {
        const next = pickNewEndpoint(candidates, s);
        if (next) {
          s = updateEndpoint(s, next, now);
          chosen.push(next.address);
        }
      }
      now += 30 * S;
    };
    step(false); // T0: first candidate
    expect(s.state).toBe('unknown');
    step(false); // T0+30: A failed → B
    step(true); // T0+60: B handshakes → up, no change
    expect(s.state).toBe('up');
    step(true);
    expect(chosen).toEqual([A.address, B.address]);
  });
});
