/**
 * Addresses of the scale bench, shared by the parent (bench/scale.ts) and the peers child
 * (bench/scale-peers.ts). Everything lives in one namespace: the hub daemon listens on HUB_PORT;
 * peer i owns its own outer address on loopback (a `local 10.77.0.0/16 dev lo` route makes every
 * address of the /16 local, so the handshake rate limiter sees 1000 distinct sources) and a tunnel
 * address in 10.78.0.0/16.
 */
export const HUB_PORT = 51000;
export const PEER_PORT = 51820;
export const PEER_OUTER_ROUTE = '10.77.0.0/16';
export const HUB_TUNNEL = '10.79.0.1';
export const MAX_SCALE_PEERS = 250 * 250;

function hostPart(i: number): [number, number] {
  if (!Number.isInteger(i) || i < 0 || i >= MAX_SCALE_PEERS) throw new Error(`scale peer index ${i} is outside 0..${MAX_SCALE_PEERS - 1}`);
  return [Math.floor(i / 250) + 1, (i % 250) + 1];
}

/** Outer (UDP) address of peer i: 10.77.x.y with x, y in 1..250. */
export function peerOuter(i: number): string {
  const [x, y] = hostPart(i);
  return `10.77.${x}.${y}`;
}

/** Tunnel address of peer i: 10.78.x.y. */
export function peerTunnel(i: number): string {
  const [x, y] = hostPart(i);
  return `10.78.${x}.${y}`;
}

/** Lines the peers child writes on stdout, one JSON object each. */
export type PeersMessage =
  | { kind: 'ready'; publicKeys: string[] }
  | { kind: 'report'; completions: (number | null)[]; initiationsSeen: number; cpuSeconds: number; rss: number }
  | { kind: 'error'; message: string };
