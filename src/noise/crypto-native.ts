/**
 * The fastest provider: node:crypto for everything, except transport AEAD, which goes through the
 * data-path addon in place (one native call per packet, no cipher objects, no copies), and X25519,
 * which the addon does on raw keys (node:crypto needs a KeyObject per key: a JWK import each time).
 * Inside the addon, libsodium (when the system has it) does X25519 and small packets, OpenSSL the rest.
 * Falls back to plain `nodeCrypto` when the addon is unavailable. Cross-tested against the other
 * providers.
 */
import { checkKey, type Aead, type CryptoProvider } from './crypto.js';
import { KEY_SIZE } from './constants.js';
import { nodeCrypto } from './crypto-node.js';
import { tryLoadDatapath } from '../native-datapath.js';

const TAG = 16;

function nativeAead(key: Uint8Array): Aead {
  const addon = tryLoadDatapath()!;
  const handle = addon.aeadCreate(key);
  return {
    seal(counter, plaintext, ad) {
      if (ad && ad.length > 0) return nodeCrypto.seal(key, counter, plaintext, ad);
      const out = new Uint8Array(plaintext.length + TAG);
      out.set(plaintext, 0);
      if (!addon.aeadSeal(handle, counter, out, 0, plaintext.length)) throw new Error('AEAD seal failed');
      return out;
    },
    open(counter, ciphertext, ad) {
      if (ad && ad.length > 0) return nodeCrypto.open(key, counter, ciphertext, ad);
      if (ciphertext.length < TAG) return null;
      const buf = ciphertext.slice();
      return addon.aeadOpen(handle, counter, buf, 0, buf.length - TAG) ? buf.subarray(0, buf.length - TAG) : null;
    },
    sealInPlace: (counter, buf, off, len) => addon.aeadSeal(handle, counter, buf, off, len),
    openInPlace: (counter, buf, off, len) => addon.aeadOpen(handle, counter, buf, off, len),
  };
}

function buildNative(): CryptoProvider {
  const addon = tryLoadDatapath();
  const x25519 = addon?.x25519?.bind(addon);
  // an addon built before x25519 existed still accelerates the AEAD
  const x: Partial<CryptoProvider> = x25519
    ? {
        dh(privateKey, publicKey) {
          checkKey(privateKey, 'dh private key');
          checkKey(publicKey, 'dh public key');
          const out = new Uint8Array(KEY_SIZE);
          if (!x25519(privateKey, publicKey, out)) throw new Error('X25519 failed in the data-path addon');
          return out;
        },
        publicKey(privateKey) {
          checkKey(privateKey, 'private key');
          const out = new Uint8Array(KEY_SIZE);
          if (!x25519(privateKey, null, out)) throw new Error('X25519 public key failed in the data-path addon');
          return out;
        },
      }
    : {};
  return { ...nodeCrypto, ...x, name: 'native', aead: nativeAead };
}

/** nodeCrypto with native in-place transport AEAD and X25519. Only use when `tryLoadDatapath()` succeeded. */
export const nativeCrypto: CryptoProvider = buildNative();

/** The best provider this process can use. */
export function bestCrypto(): CryptoProvider {
  return tryLoadDatapath() ? nativeCrypto : nodeCrypto;
}
