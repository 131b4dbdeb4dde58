/**
 * CryptoProvider in pure JavaScript, the reference the node:crypto provider is cross-tested
 * against: @noble/hashes BLAKE2s and HMAC, tweetnacl X25519, @noble/ciphers ChaCha20-Poly1305 and
 * XChaCha20-Poly1305. Spec: ../shared/spec/wireguard.md §1.
 */
import nacl from 'tweetnacl';
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { chacha20poly1305, xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { KEY_SIZE, MAC_SIZE, TAG_SIZE } from './constants.js';
import { checkKey, type Aead, type CryptoProvider } from './crypto.js';
import { writeCounter } from './bytes.js';

const NONCE_SIZE = 12;

/** nonce = 4 zero bytes ‖ counter (u64 LE). */
function transportNonce(nonce: Uint8Array, counter: number): Uint8Array {
  writeCounter(nonce, 4, counter);
  return nonce;
}

function openWith(
  cipher: (key: Uint8Array, nonce: Uint8Array, ad?: Uint8Array) => { decrypt(c: Uint8Array): Uint8Array },
  key: Uint8Array,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  ad: Uint8Array | undefined,
): Uint8Array | null {
  if (ciphertext.length < TAG_SIZE) return null;
  try {
    return cipher(key, nonce, ad).decrypt(ciphertext);
  } catch {
    return null; // tag mismatch
  }
}

export const nobleCrypto: CryptoProvider = {
  name: 'noble',

  hash(...parts) {
    const h = blake2s.create();
    for (const p of parts) h.update(p);
    return h.digest();
  },

  mac(key, data) {
    return blake2s(data, { key, dkLen: MAC_SIZE });
  },

  hmac(key, data) {
    return hmac(blake2s, key, data);
  },

  dh(privateKey, publicKey) {
    checkKey(privateKey, 'dh private key');
    checkKey(publicKey, 'dh public key');
    // tweetnacl clamps the scalar and masks the top bit of u itself; a low-order point yields zeros
    return nacl.scalarMult(privateKey, publicKey);
  },

  publicKey(privateKey) {
    checkKey(privateKey, 'private key');
    return nacl.scalarMult.base(privateKey);
  },

  seal(key, counter, plaintext, ad) {
    return chacha20poly1305(key, transportNonce(new Uint8Array(NONCE_SIZE), counter), ad).encrypt(plaintext);
  },

  open(key, counter, ciphertext, ad) {
    return openWith(chacha20poly1305, key, transportNonce(new Uint8Array(NONCE_SIZE), counter), ciphertext, ad);
  },

  xseal(key, nonce, plaintext, ad) {
    return xchacha20poly1305(key, nonce, ad).encrypt(plaintext);
  },

  xopen(key, nonce, ciphertext, ad) {
    return openWith(xchacha20poly1305, key, nonce, ciphertext, ad);
  },

  aead(key): Aead {
    checkKey(key, 'aead key');
    const ownKey = new Uint8Array(key); // later changes to the caller's array do not reach us
    const nonce = new Uint8Array(NONCE_SIZE);
    return {
      seal(counter, plaintext, ad) {
        return chacha20poly1305(ownKey, transportNonce(nonce, counter), ad).encrypt(plaintext);
      },
      open(counter, ciphertext, ad) {
        return openWith(chacha20poly1305, ownKey, transportNonce(nonce, counter), ciphertext, ad);
      },
    };
  },
};
