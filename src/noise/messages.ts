/**
 * WireGuard message layouts (spec/wireguard.md §2) and the one parser that maps (type, exact length)
 * to a typed view or a drop reason. Nothing else in the core reads raw offsets of a received
 * datagram. Views are subarrays of the datagram: valid only while that datagram is being handled.
 */
import {
  MESSAGE_COOKIE_REPLY_SIZE,
  MESSAGE_COOKIE_REPLY_TYPE,
  MESSAGE_INITIATION_SIZE,
  MESSAGE_INITIATION_TYPE,
  MESSAGE_RESPONSE_SIZE,
  MESSAGE_RESPONSE_TYPE,
  MESSAGE_TRANSPORT_HEADER_SIZE,
  MESSAGE_TRANSPORT_MIN_SIZE,
  MESSAGE_TRANSPORT_TYPE,
  MESSAGE_MAX_SIZE,
  PADDING_MULTIPLE,
} from './constants.js';
import { readCounter, readU32LE } from './bytes.js';

export interface InitiationMessage {
  type: 'initiation';
  bytes: Uint8Array;
  sender: number;
  ephemeral: Uint8Array;
  encryptedStatic: Uint8Array;
  encryptedTimestamp: Uint8Array;
  mac1: Uint8Array;
  mac2: Uint8Array;
}

export interface ResponseMessage {
  type: 'response';
  bytes: Uint8Array;
  sender: number;
  receiver: number;
  ephemeral: Uint8Array;
  encryptedNothing: Uint8Array;
  mac1: Uint8Array;
  mac2: Uint8Array;
}

export interface CookieReplyMessage {
  type: 'cookie-reply';
  bytes: Uint8Array;
  receiver: number;
  nonce: Uint8Array;
  encryptedCookie: Uint8Array;
}

export interface TransportMessage {
  type: 'transport';
  bytes: Uint8Array;
  receiver: number;
  counter: number;
  /** ciphertext ‖ tag */
  content: Uint8Array;
}

export type Message = InitiationMessage | ResponseMessage | CookieReplyMessage | TransportMessage;

/** Why a datagram or packet was not used. Counted, never thrown. */
export type DropReason =
  | 'too-short'
  | 'too-long'
  | 'unknown-type'
  | 'bad-length'
  | 'counter-too-large'
  | 'invalid-mac1'
  | 'invalid-mac2'
  | 'under-load-cookie-sent'
  | 'rate-limited'
  | 'unknown-peer'
  | 'handshake-decrypt-failed'
  | 'handshake-replay'
  | 'handshake-flood'
  | 'zero-shared-secret'
  | 'unexpected-response'
  | 'cookie-decrypt-failed'
  | 'unknown-receiver-index'
  | 'keypair-expired'
  | 'replayed-counter'
  | 'decrypt-failed'
  | 'invalid-inner-packet'
  | 'disallowed-source'
  | 'no-route'
  | 'no-endpoint'
  | 'staged-overflow'
  | 'no-private-key'
  | 'peer-gave-up';

/** Parses a received datagram by (type, exact length) before any cryptography runs. */
export function parseMessage(b: Uint8Array): Message | DropReason {
  if (b.length < MESSAGE_TRANSPORT_MIN_SIZE) return 'too-short';
  if (b.length > MESSAGE_MAX_SIZE) return 'too-long';
  // the type is a little-endian u32: bytes 1..3 must be zero
  if (b[1] !== 0 || b[2] !== 0 || b[3] !== 0) return 'unknown-type';
  switch (b[0]) {
    case MESSAGE_INITIATION_TYPE:
      if (b.length !== MESSAGE_INITIATION_SIZE) return 'bad-length';
      return {
        type: 'initiation',
        bytes: b,
        sender: readU32LE(b, 4),
        ephemeral: b.subarray(8, 40),
        encryptedStatic: b.subarray(40, 88),
        encryptedTimestamp: b.subarray(88, 116),
        mac1: b.subarray(116, 132),
        mac2: b.subarray(132, 148),
      };
    case MESSAGE_RESPONSE_TYPE:
      if (b.length !== MESSAGE_RESPONSE_SIZE) return 'bad-length';
      return {
        type: 'response',
        bytes: b,
        sender: readU32LE(b, 4),
        receiver: readU32LE(b, 8),
        ephemeral: b.subarray(12, 44),
        encryptedNothing: b.subarray(44, 60),
        mac1: b.subarray(60, 76),
        mac2: b.subarray(76, 92),
      };
    case MESSAGE_COOKIE_REPLY_TYPE:
      if (b.length !== MESSAGE_COOKIE_REPLY_SIZE) return 'bad-length';
      return {
        type: 'cookie-reply',
        bytes: b,
        receiver: readU32LE(b, 4),
        nonce: b.subarray(8, 32),
        encryptedCookie: b.subarray(32, 64),
      };
    case MESSAGE_TRANSPORT_TYPE: {
      const counter = readCounter(b, 8);
      if (counter === null) return 'counter-too-large';
      return {
        type: 'transport',
        bytes: b,
        receiver: readU32LE(b, 4),
        counter,
        content: b.subarray(MESSAGE_TRANSPORT_HEADER_SIZE),
      };
    }
    default:
      return 'unknown-type';
  }
}

/**
 * Padded plaintext length for a packet of `length` bytes on a TUN of `mtu` (spec §6): the last
 * MTU-sized piece is rounded up to a multiple of 16 but never past the MTU; mtu 0 pads to 16 only.
 */
export function paddedLength(length: number, mtu: number): number {
  if (mtu === 0) return Math.ceil(length / PADDING_MULTIPLE) * PADDING_MULTIPLE;
  const last = length > mtu ? length % mtu : length;
  let padded = Math.ceil(last / PADDING_MULTIPLE) * PADDING_MULTIPLE;
  if (padded > mtu) padded = mtu;
  return length + (padded - last);
}
