/**
 * WireGuard constants. Spec: ../shared/spec/wireguard.md §1, §2, §4, §5, §7.
 * Durations are milliseconds (TypeScript numbers carry no unit, so the unit is in the name).
 */

// ---- Specification constants ----

export const CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
export const IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';
export const LABEL_MAC1 = 'mac1----';
export const LABEL_COOKIE = 'cookie--';

export const MESSAGE_INITIATION_TYPE = 1;
export const MESSAGE_RESPONSE_TYPE = 2;
export const MESSAGE_COOKIE_REPLY_TYPE = 3;
export const MESSAGE_TRANSPORT_TYPE = 4;

export const MESSAGE_INITIATION_SIZE = 148; // type, sender, ephemeral, static (48), timestamp (28), mac1, mac2
export const MESSAGE_RESPONSE_SIZE = 92; // type, sender, receiver, ephemeral, empty (16), mac1, mac2
export const MESSAGE_COOKIE_REPLY_SIZE = 64; // type, receiver, nonce (24), cookie (32)
export const MESSAGE_TRANSPORT_HEADER_SIZE = 16; // type, receiver, counter
export const MESSAGE_TRANSPORT_MIN_SIZE = 32; // header + tag (keepalive)
export const MESSAGE_MAX_SIZE = 65535;
export const MESSAGE_MAX_PLAINTEXT = MESSAGE_MAX_SIZE - MESSAGE_TRANSPORT_MIN_SIZE;

export const KEY_SIZE = 32;
export const MAC_SIZE = 16;
export const TAG_SIZE = 16;
export const TAI64N_SIZE = 12;
export const COOKIE_NONCE_SIZE = 24;
export const PADDING_MULTIPLE = 16;

export const REKEY_AFTER_TIME_MS = 120_000;
export const REJECT_AFTER_TIME_MS = 180_000;
export const REKEY_ATTEMPT_TIME_MS = 90_000;
export const REKEY_TIMEOUT_MS = 5_000;
export const KEEPALIVE_TIMEOUT_MS = 10_000;
export const COOKIE_REFRESH_TIME_MS = 120_000;
export const MAX_TIMER_HANDSHAKES = REKEY_ATTEMPT_TIME_MS / REKEY_TIMEOUT_MS; // 18
/** Keys are zeroed after 3 × REJECT_AFTER_TIME without a new session. */
export const ZERO_KEY_MATERIAL_AFTER_MS = REJECT_AFTER_TIME_MS * 3;
/** Receive-side rekey: the initiator of a keypair re-handshakes when it is this old (180 − 10 − 5 s). */
export const REKEY_ON_RECEIVE_AFTER_MS = REJECT_AFTER_TIME_MS - KEEPALIVE_TIMEOUT_MS - REKEY_TIMEOUT_MS;
/** At most one consumed initiation per peer per 20 ms (50/s). */
export const HANDSHAKE_INITIATION_RATE_MS = 20;

/**
 * REKEY_AFTER_MESSAGES is 2^60 and REJECT_AFTER_MESSAGES 2^64 − 2^13 − 1 on the wire. Counters here
 * are JavaScript numbers, exact up to 2^53; a keypair lives at most 180 s, which no link fills with
 * 2^53 packets, so both limits are clamped to Number.MAX_SAFE_INTEGER. Received counters whose
 * high 32-bit half is ≥ 2^21 (i.e. ≥ 2^53) are rejected before they become inexact numbers.
 */
export const REKEY_AFTER_MESSAGES = Number.MAX_SAFE_INTEGER - 0xffff;
export const REJECT_AFTER_MESSAGES = Number.MAX_SAFE_INTEGER;

/** Replay window (RFC 6479): 128 blocks of 64 bits, one block of slack → 8128 counters. */
export const REPLAY_WINDOW_SIZE = 8128;

/** Handshake rate limiter: 20 packets/s per source IP, burst 5. */
export const RATE_LIMIT_PACKETS_PER_SECOND = 20;
export const RATE_LIMIT_BURST = 5;

// ---- Implementation constants ----

/** Retransmit jitter: uniform 0..333 ms, as wireguard-go. */
export const REKEY_TIMEOUT_JITTER_MAX_MS = 334;
/** Packets staged per peer while a handshake is pending; the oldest is dropped when full. */
export const MAX_STAGED_PACKETS = 128;
/** Under load when this many handshake initiations arrive within one second (see DeviceCore.noteInitiationArrival). */
export const UNDER_LOAD_HANDSHAKES = 1024;
/** … or when consuming initiations took this much of the last second: the thread no longer keeps up. */
export const UNDER_LOAD_BUSY_MS = 500;
/** A device stays under load for this long after the last detection. */
export const UNDER_LOAD_AFTER_TIME_MS = 1_000;
/** The shell calls tick() this often. */
export const TIMER_TICK_MS = 250;
export const MAX_PEERS = 1 << 16;
export const DEFAULT_MTU = 1420;

/**
 * Room a TUN reader may leave around each packet so the device seals it in place (DeviceOptions
 * packetsMayHaveRoom): the transport header before it; padding to a multiple of 16 (at most 15 bytes)
 * and the tag after it. native/kubespand.c uses the same numbers.
 */
export const PACKET_HEADROOM = 16;
export const PACKET_TAILROOM = 31;
