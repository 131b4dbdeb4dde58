/**
 * Peer health and endpoint cycling (spec/kubespan.md §3.4), as Talos's kubespan peer_status adapter.
 * Every function is pure: time arrives as `now` (Unix ms).
 */
import { sameEndpoint, type Endpoint, type PeerState, type PeerStatus } from './types.js';

/** A fresh endpoint gets this long to produce a handshake. */
export const ENDPOINT_CONNECTION_TIMEOUT_MS = 15_000;
/** 180 s handshake timeout + 5 s rekey timeout + 90 s rekey attempt time (the WireGuard paper's numbers). */
export const PEER_DOWN_INTERVAL_MS = (180 + 5 + 90) * 1000;
/** The controller re-evaluates every peer at least this often ("peer status every 30 s"). */
export const PEER_RECONCILE_INTERVAL_MS = 30_000;

/**
 * State from the time since the last handshake (`sinceHandshake`) and since we last chose an
 * endpoint (`sinceEndpointChange`):
 *
 *   endpoint chosen at T0          T0+15 s                          T0+275 s
 *   ──────────┬──────────────────────┬──────────────────────────────────┬──────────────────▶
 *             │ handshake since T0?  │ handshake since T0?              │ handshake within
 *             │  yes → up            │  yes → up                        │ the last 275 s?
 *             │  no  → unknown       │  no  → down                      │  yes → up, no → down
 *
 * "Handshake since T0" is sinceHandshake < sinceEndpointChange. Never-handshaked peers pass Infinity.
 */
export function calculateStateWithDurations(sinceHandshake: number, sinceEndpointChange: number): PeerState {
  if (sinceEndpointChange > PEER_DOWN_INTERVAL_MS) return sinceHandshake < PEER_DOWN_INTERVAL_MS ? 'up' : 'down';
  if (sinceEndpointChange < ENDPOINT_CONNECTION_TIMEOUT_MS) return sinceHandshake < sinceEndpointChange ? 'up' : 'unknown';
  return sinceHandshake < sinceEndpointChange ? 'up' : 'down';
}

/** calculateStateWithDurations over a status at `now`; down without any chosen endpoint is reported as unknown. */
export function calculateState(status: Pick<PeerStatus, 'lastHandshakeTime' | 'lastEndpointChange' | 'lastUsedEndpoint'>, now: number): PeerState {
  const sinceHandshake = status.lastHandshakeTime > 0 ? now - status.lastHandshakeTime : Infinity;
  const sinceEndpointChange = status.lastEndpointChange > 0 ? now - status.lastEndpointChange : Infinity;
  const state = calculateStateWithDurations(sinceHandshake, sinceEndpointChange);
  if (state === 'down' && !status.lastUsedEndpoint) return 'unknown';
  return state;
}

/** An endpoint change is attempted when the peer is down or no endpoint was ever chosen. */
export function shouldChangeEndpoint(status: Pick<PeerStatus, 'state' | 'lastUsedEndpoint'>): boolean {
  return status.state === 'down' || !status.lastUsedEndpoint;
}

/**
 * The next candidate after the last used one, wrapping (a last used endpoint no longer in the list
 * restarts at the first). With exactly one candidate that is already in use, nothing changes: there
 * is nothing else to try. Returns null when there is no change to make.
 */
export function pickNewEndpoint(candidates: Endpoint[], status: Pick<PeerStatus, 'lastUsedEndpoint' | 'endpoint'>): Endpoint | null {
  if (candidates.length === 0) return null;
  if (!status.lastUsedEndpoint) return candidates[0]!;
  if (candidates.length === 1 && sameEndpoint(candidates[0], status.lastUsedEndpoint) && sameEndpoint(status.endpoint, status.lastUsedEndpoint)) {
    return null;
  }
  const index = candidates.findIndex((c) => sameEndpoint(c, status.lastUsedEndpoint));
  return candidates[(index + 1) % candidates.length]!;
}

/** Records a newly chosen endpoint at `now`. */
export function updateEndpoint(status: PeerStatus, endpoint: Endpoint, now: number): PeerStatus {
  return { ...status, endpoint, lastUsedEndpoint: endpoint, lastEndpointChange: now, state: 'unknown' };
}
