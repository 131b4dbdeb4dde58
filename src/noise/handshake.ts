/**
 * Noise IKpsk2 as WireGuard uses it: `<- s ; -> e, es, s, ss, {t} ; <- e, ee, se, psk, {}`.
 * Pure functions over explicit inputs (keys, ephemeral private key, index, timestamp), so a fixed
 * input gives byte-identical messages (spec/wireguard.md §3, §13.3). mac1/mac2 are added by
 * cookie.ts over the serialized bytes; here they are left zero.
 */
import { CONSTRUCTION, IDENTIFIER, KEY_SIZE, MESSAGE_INITIATION_SIZE, MESSAGE_INITIATION_TYPE, MESSAGE_RESPONSE_SIZE, MESSAGE_RESPONSE_TYPE } from './constants.js';
import { kdf1, kdf2, kdf3, type CryptoProvider } from './crypto.js';
import { isZero, writeU32LE } from './bytes.js';
import type { InitiationMessage, ResponseMessage } from './messages.js';

const EMPTY = new Uint8Array(0);
const ZERO_KEY = new Uint8Array(KEY_SIZE);
const text = new TextEncoder();

const initialCache = new WeakMap<CryptoProvider, { chainKey: Uint8Array; hash: Uint8Array }>();

/** Ci = HASH(CONSTRUCTION), Hi = HASH(Ci ‖ IDENTIFIER). */
export function initialChainKeyAndHash(c: CryptoProvider): { chainKey: Uint8Array; hash: Uint8Array } {
  let v = initialCache.get(c);
  if (!v) {
    const chainKey = c.hash(text.encode(CONSTRUCTION));
    v = { chainKey, hash: c.hash(chainKey, text.encode(IDENTIFIER)) };
    initialCache.set(c, v);
  }
  return v;
}

/** The local static identity as the handshake sees it. */
export interface StaticIdentity {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

/** What an initiator keeps between sending the initiation and consuming the response. */
export interface InitiationCreated {
  chainKey: Uint8Array;
  hash: Uint8Array;
  ephemeralPrivate: Uint8Array;
  localIndex: number;
}

/** What a responder learns from a valid initiation. */
export interface InitiationConsumed {
  remoteStatic: Uint8Array;
  timestamp: Uint8Array;
  chainKey: Uint8Array;
  hash: Uint8Array;
  remoteEphemeral: Uint8Array;
  remoteIndex: number;
}

export interface SessionKeys {
  sendKey: Uint8Array;
  receiveKey: Uint8Array;
}

/** DH that refuses the all-zero result (low-order points). */
function dh(c: CryptoProvider, priv: Uint8Array, pub: Uint8Array): Uint8Array | null {
  const shared = c.dh(priv, pub);
  return isZero(shared) ? null : shared;
}

/** Precomputed static-static DH(S_priv, S_remote_pub); null when it is all zero (the peer cannot be used). */
export function precomputeStaticStatic(c: CryptoProvider, privateKey: Uint8Array, remoteStatic: Uint8Array): Uint8Array | null {
  return dh(c, privateKey, remoteStatic);
}

/**
 * Creates a handshake initiation (spec §3.1). Returns the 148-byte message with zero macs, or null
 * if a DH result is zero.
 */
export function createInitiation(
  c: CryptoProvider,
  local: StaticIdentity,
  remoteStatic: Uint8Array,
  staticStatic: Uint8Array,
  ephemeralPrivate: Uint8Array,
  localIndex: number,
  timestamp: Uint8Array,
): { message: Uint8Array; state: InitiationCreated } | null {
  const init = initialChainKeyAndHash(c);
  let chainKey = init.chainKey;
  let hash = c.hash(init.hash, remoteStatic);
  const msg = new Uint8Array(MESSAGE_INITIATION_SIZE);
  msg[0] = MESSAGE_INITIATION_TYPE;
  writeU32LE(msg, 4, localIndex);

  // create ephemeral key
  const ephemeralPublic = c.publicKey(ephemeralPrivate);
  msg.set(ephemeralPublic, 8);
  chainKey = kdf1(c, chainKey, ephemeralPublic);
  hash = c.hash(hash, ephemeralPublic);

  // es: encrypt static key
  const es = dh(c, ephemeralPrivate, remoteStatic);
  if (!es) return null;
  let key: Uint8Array;
  [chainKey, key] = kdf2(c, chainKey, es);
  const encryptedStatic = c.seal(key, 0, local.publicKey, hash);
  msg.set(encryptedStatic, 40);
  hash = c.hash(hash, encryptedStatic);

  // ss: encrypt timestamp
  [chainKey, key] = kdf2(c, chainKey, staticStatic);
  const encryptedTimestamp = c.seal(key, 0, timestamp, hash);
  msg.set(encryptedTimestamp, 88);
  hash = c.hash(hash, encryptedTimestamp);

  return { message: msg, state: { chainKey, hash, ephemeralPrivate, localIndex } };
}

/**
 * Consumes an initiation (spec §3.2 steps 2–5). `staticStaticFor` looks up the peer by the decrypted
 * static key and returns its precomputed static-static value (or undefined for an unknown peer).
 * Replay and flood checks (step 6) belong to the caller, which owns the per-peer state.
 */
export function consumeInitiation<P>(
  c: CryptoProvider,
  local: StaticIdentity,
  msg: InitiationMessage,
  lookupPeer: (remoteStatic: Uint8Array) => { peer: P; staticStatic: Uint8Array } | undefined,
): { peer: P; consumed: InitiationConsumed } | 'unknown-peer' | 'handshake-decrypt-failed' | 'zero-shared-secret' {
  const init = initialChainKeyAndHash(c);
  let hash = c.hash(init.hash, local.publicKey);
  hash = c.hash(hash, msg.ephemeral);
  let chainKey = kdf1(c, init.chainKey, msg.ephemeral);

  // es: decrypt static key
  const es = dh(c, local.privateKey, msg.ephemeral);
  if (!es) return 'zero-shared-secret';
  let key: Uint8Array;
  [chainKey, key] = kdf2(c, chainKey, es);
  const remoteStatic = c.open(key, 0, msg.encryptedStatic, hash);
  if (!remoteStatic) return 'handshake-decrypt-failed';
  hash = c.hash(hash, msg.encryptedStatic);

  // lookup peer
  const found = lookupPeer(remoteStatic);
  if (!found) return 'unknown-peer';

  // ss: decrypt timestamp
  [chainKey, key] = kdf2(c, chainKey, found.staticStatic);
  const timestamp = c.open(key, 0, msg.encryptedTimestamp, hash);
  if (!timestamp) return 'handshake-decrypt-failed';
  hash = c.hash(hash, msg.encryptedTimestamp);

  return {
    peer: found.peer,
    consumed: {
      remoteStatic,
      timestamp,
      chainKey,
      hash,
      remoteEphemeral: msg.ephemeral.slice(),
      remoteIndex: msg.sender,
    },
  };
}

/** Creates the response to a consumed initiation (spec §3.3). Returns the 92-byte message with zero macs. */
export function createResponse(
  c: CryptoProvider,
  consumed: InitiationConsumed,
  presharedKey: Uint8Array | null,
  ephemeralPrivate: Uint8Array,
  localIndex: number,
): { message: Uint8Array; chainKey: Uint8Array; hash: Uint8Array } | null {
  const msg = new Uint8Array(MESSAGE_RESPONSE_SIZE);
  msg[0] = MESSAGE_RESPONSE_TYPE;
  writeU32LE(msg, 4, localIndex);
  writeU32LE(msg, 8, consumed.remoteIndex);

  // create ephemeral key
  const ephemeralPublic = c.publicKey(ephemeralPrivate);
  msg.set(ephemeralPublic, 12);
  let hash = c.hash(consumed.hash, ephemeralPublic);
  let chainKey = kdf1(c, consumed.chainKey, ephemeralPublic);

  // ee, se
  const ee = dh(c, ephemeralPrivate, consumed.remoteEphemeral);
  if (!ee) return null;
  chainKey = kdf1(c, chainKey, ee);
  const se = dh(c, ephemeralPrivate, consumed.remoteStatic);
  if (!se) return null;
  chainKey = kdf1(c, chainKey, se);

  // psk: add preshared key
  let tau: Uint8Array;
  let key: Uint8Array;
  [chainKey, tau, key] = kdf3(c, chainKey, presharedKey ?? ZERO_KEY);
  hash = c.hash(hash, tau);

  // encrypt nothing
  const encryptedNothing = c.seal(key, 0, EMPTY, hash);
  msg.set(encryptedNothing, 44);
  hash = c.hash(hash, encryptedNothing);
  return { message: msg, chainKey, hash };
}

/** Consumes a response to our initiation (spec §3.4). Returns the final chain key and hash, or a drop reason. */
export function consumeResponse(
  c: CryptoProvider,
  local: StaticIdentity,
  created: InitiationCreated,
  presharedKey: Uint8Array | null,
  msg: ResponseMessage,
): { chainKey: Uint8Array; hash: Uint8Array; remoteIndex: number } | 'handshake-decrypt-failed' | 'zero-shared-secret' {
  let hash = c.hash(created.hash, msg.ephemeral);
  let chainKey = kdf1(c, created.chainKey, msg.ephemeral);

  // ee, se
  const ee = dh(c, created.ephemeralPrivate, msg.ephemeral);
  if (!ee) return 'zero-shared-secret';
  chainKey = kdf1(c, chainKey, ee);
  const se = dh(c, local.privateKey, msg.ephemeral);
  if (!se) return 'zero-shared-secret';
  chainKey = kdf1(c, chainKey, se);

  // psk: add preshared key
  let tau: Uint8Array;
  let key: Uint8Array;
  [chainKey, tau, key] = kdf3(c, chainKey, presharedKey ?? ZERO_KEY);
  hash = c.hash(hash, tau);

  // authenticate the empty payload
  if (!c.open(key, 0, msg.encryptedNothing, hash)) return 'handshake-decrypt-failed';
  hash = c.hash(hash, msg.encryptedNothing);
  return { chainKey, hash, remoteIndex: msg.sender };
}

/** Splits the final chain key into transport keys (spec §3.5): T1 is the initiator's send key. */
export function beginSession(c: CryptoProvider, chainKey: Uint8Array, isInitiator: boolean): SessionKeys {
  const [t1, t2] = kdf2(c, chainKey, EMPTY);
  return isInitiator ? { sendKey: t1, receiveKey: t2 } : { sendKey: t2, receiveKey: t1 };
}
