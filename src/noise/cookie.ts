/**
 * mac1/mac2 and cookie replies (spec/wireguard.md §5). The checker is the receiving side of handshake
 * messages (our own public key); a generator exists per peer for the messages we send to it.
 */
import { COOKIE_REFRESH_TIME_MS, LABEL_COOKIE, LABEL_MAC1, MAC_SIZE, MESSAGE_COOKIE_REPLY_SIZE, MESSAGE_COOKIE_REPLY_TYPE, COOKIE_NONCE_SIZE } from './constants.js';
import type { CryptoProvider } from './crypto.js';
import type { Random } from './clock.js';
import { constantTimeEqual, writeU32LE } from './bytes.js';
import type { CookieReplyMessage } from './messages.js';

const text = new TextEncoder();
const ZERO_MAC = new Uint8Array(MAC_SIZE);

export function mac1Key(c: CryptoProvider, publicKey: Uint8Array): Uint8Array {
  return c.hash(text.encode(LABEL_MAC1), publicKey);
}

export function cookieKey(c: CryptoProvider, publicKey: Uint8Array): Uint8Array {
  return c.hash(text.encode(LABEL_COOKIE), publicKey);
}

/**
 * The responder-private encoding of a source address fed into the cookie MAC: address bytes followed
 * by the port little-endian (wireguard-go's netip.AddrPort binary form). Only we verify it.
 */
export function cookieSource(addressBytes: Uint8Array, port: number): Uint8Array {
  const out = new Uint8Array(addressBytes.length + 2);
  out.set(addressBytes, 0);
  out[addressBytes.length] = port & 0xff;
  out[addressBytes.length + 1] = (port >>> 8) & 0xff;
  return out;
}

/** Checks mac1/mac2 of handshake messages addressed to us and makes cookie replies. */
export class CookieChecker {
  private mac1Key: Uint8Array | null = null;
  private encryptionKey: Uint8Array | null = null;
  private secret: Uint8Array | null = null;
  private secretSetAt = 0;

  constructor(
    private readonly crypto: CryptoProvider,
    private readonly random: Random,
  ) {}

  /** (Re)initialises for our public key; null disables checking (no private key configured). */
  init(publicKey: Uint8Array | null): void {
    this.mac1Key = publicKey ? mac1Key(this.crypto, publicKey) : null;
    this.encryptionKey = publicKey ? cookieKey(this.crypto, publicKey) : null;
    this.secret = null;
  }

  /** mac1 = MAC(HASH(LABEL_MAC1 ‖ our public key), msg[0 : L−32]). */
  checkMac1(msg: Uint8Array): boolean {
    if (!this.mac1Key) return false;
    const l = msg.length;
    const expected = this.crypto.mac(this.mac1Key, msg.subarray(0, l - 32));
    return constantTimeEqual(expected, msg.subarray(l - 32, l - 16));
  }

  /** mac2 = MAC(cookie for this source, msg[0 : L−16]); needs a secret younger than 120 s. */
  checkMac2(msg: Uint8Array, source: Uint8Array, now: number): boolean {
    if (!this.secret || now - this.secretSetAt >= COOKIE_REFRESH_TIME_MS) return false;
    const cookie = this.crypto.mac(this.secret, source);
    const l = msg.length;
    const expected = this.crypto.mac(cookie, msg.subarray(0, l - 16));
    return constantTimeEqual(expected, msg.subarray(l - 16, l));
  }

  /** Cookie reply for the handshake message `msg` (its sender index and mac1) from `source`. */
  createReply(msg: Uint8Array, senderIndex: number, source: Uint8Array, now: number): Uint8Array | null {
    if (!this.encryptionKey) return null;
    // refresh the secret lazily
    if (!this.secret || now - this.secretSetAt >= COOKIE_REFRESH_TIME_MS) {
      this.secret = this.random.fill(new Uint8Array(32));
      this.secretSetAt = now;
    }
    const cookie = this.crypto.mac(this.secret, source);
    const l = msg.length;
    const mac1 = msg.subarray(l - 32, l - 16);
    const reply = new Uint8Array(MESSAGE_COOKIE_REPLY_SIZE);
    reply[0] = MESSAGE_COOKIE_REPLY_TYPE;
    writeU32LE(reply, 4, senderIndex);
    const nonce = this.random.fill(new Uint8Array(COOKIE_NONCE_SIZE));
    reply.set(nonce, 8);
    reply.set(this.crypto.xseal(this.encryptionKey, nonce, cookie, mac1), 32);
    return reply;
  }
}

/** Adds mac1/mac2 to the handshake messages we send to one peer and consumes its cookie replies. */
export class CookieGenerator {
  private readonly mac1Key: Uint8Array;
  private readonly encryptionKey: Uint8Array;
  private lastMac1: Uint8Array | null = null;
  private cookie: Uint8Array | null = null;
  private cookieSetAt = 0;

  constructor(
    private readonly crypto: CryptoProvider,
    peerPublicKey: Uint8Array,
  ) {
    this.mac1Key = mac1Key(crypto, peerPublicKey);
    this.encryptionKey = cookieKey(crypto, peerPublicKey);
  }

  /** Writes mac1, and mac2 when we hold a cookie younger than 120 s, into the serialized message. */
  addMacs(msg: Uint8Array, now: number): void {
    const l = msg.length;
    const mac1 = this.crypto.mac(this.mac1Key, msg.subarray(0, l - 32));
    msg.set(mac1, l - 32);
    this.lastMac1 = mac1;
    if (this.cookie && now - this.cookieSetAt < COOKIE_REFRESH_TIME_MS) {
      msg.set(this.crypto.mac(this.cookie, msg.subarray(0, l - 16)), l - 16);
    } else {
      msg.set(ZERO_MAC, l - 16);
    }
  }

  /** Opens a cookie reply with AD = the last mac1 we sent; stores the cookie. */
  consumeReply(reply: CookieReplyMessage, now: number): boolean {
    if (!this.lastMac1) return false;
    const cookie = this.crypto.xopen(this.encryptionKey, reply.nonce, reply.encryptedCookie, this.lastMac1);
    if (!cookie) return false;
    this.cookie = cookie;
    this.cookieSetAt = now;
    return true;
  }

  hasFreshCookie(now: number): boolean {
    return this.cookie !== null && now - this.cookieSetAt < COOKIE_REFRESH_TIME_MS;
  }
}
