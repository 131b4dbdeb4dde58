/**
 * CryptoProvider on `node:crypto` (OpenSSL): BLAKE2s-256 hash and HMAC, X25519 through KeyObjects
 * (imported from raw bytes as JWK; see privateKeyObject),
 * ChaCha20-Poly1305. Node has no keyed BLAKE2s and no XChaCha20, so the 16-byte MAC and the
 * cookie-reply XAEAD come from @noble (spec §1, "Node.js note").
 *
 * Outputs are plain Uint8Arrays that own their memory (views over Node's freshly allocated,
 * unpooled result buffers), so `slice()` copies as usual and nothing is shared with other calls.
 * Nothing secret is cached at module level; an `Aead` keeps only its own prepared key.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  diffieHellman,
  type KeyObject,
} from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2.js';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { KEY_SIZE, MAC_SIZE, TAG_SIZE } from './constants.js';
import { checkKey, type Aead, type CryptoProvider } from './crypto.js';
import { writeCounter } from './bytes.js';

/** DER PKCS#8 header of an X25519 private key; the 32 raw bytes follow (RFC 8410). Fallback import. */
const PKCS8_X25519_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
]);

const CIPHER = 'chacha20-poly1305';
const NONCE_SIZE = 12;
const EMPTY = new Uint8Array(0);

/** A plain Uint8Array over the same memory as a Node Buffer (no copy). */
function plain(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * X25519 key import. Node 20 has no raw import for X25519, and PKCS#8/SPKI DER import goes through
 * OpenSSL's decoder machinery, several times slower than JWK import (which Node maps straight onto
 * EVP_PKEY_new_raw_*_key). An OKP private JWK must carry `x`, but Node builds the key from `d`
 * alone and only type-checks `x`, so a placeholder stands in for the public half rather than paying
 * a scalar multiplication to compute it. Whether that holds is checked once, on a published test
 * key (RFC 7748 §6.1 Alice); if a Node version ever rejects or misreads it, DER import is used.
 *
 * JavaScript cannot erase the base64url string of `d`; like Go (wireguard-go keypair.go says the
 * same), key memory here is left to the garbage collector.
 */
const JWK_X_PLACEHOLDER = 'A'.repeat(43);
let jwkPrivateImport: boolean | undefined;

function jwkPrivateImportWorks(): boolean {
  if (jwkPrivateImport === undefined) {
    const alicePrivate = Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex');
    const alicePublic = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a';
    try {
      const key = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: alicePrivate.toString('base64url'), x: JWK_X_PLACEHOLDER }, format: 'jwk' });
      const x = createPublicKey(key).export({ format: 'jwk' }).x;
      jwkPrivateImport = typeof x === 'string' && Buffer.from(x, 'base64url').toString('hex') === alicePublic;
    } catch {
      jwkPrivateImport = false;
    }
  }
  return jwkPrivateImport;
}

function privateKeyObject(raw: Uint8Array): KeyObject {
  const rawBuffer = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  if (jwkPrivateImportWorks()) {
    return createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: rawBuffer.toString('base64url'), x: JWK_X_PLACEHOLDER }, format: 'jwk' });
  }
  const der = new Uint8Array(PKCS8_X25519_PREFIX.length + KEY_SIZE);
  der.set(PKCS8_X25519_PREFIX, 0);
  der.set(raw, PKCS8_X25519_PREFIX.length);
  try {
    return createPrivateKey({ key: Buffer.from(der.buffer, 0, der.length), format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
}

function publicKeyObject(raw: Uint8Array): KeyObject {
  const x = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64url');
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x }, format: 'jwk' });
}

/** Raw 32 bytes of a public KeyObject (JWK export is much faster than DER export). */
function rawPublicKey(key: KeyObject): Uint8Array {
  const x = key.export({ format: 'jwk' }).x;
  if (typeof x !== 'string') throw new Error('X25519 public key export returned no x');
  return new Uint8Array(Buffer.from(x, 'base64url')); // copy: small Buffers come from a shared pool
}

/** nonce = 4 zero bytes ‖ counter (u64 LE); the first 4 bytes of `nonce` are never written. */
function setCounter(nonce: Uint8Array, counter: number): void {
  writeCounter(nonce, 4, counter);
}

function sealWith(key: KeyObject | Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array | undefined): Uint8Array {
  const cipher = createCipheriv(CIPHER, key, nonce, { authTagLength: TAG_SIZE });
  if (ad !== undefined && ad.length > 0) cipher.setAAD(ad, { plaintextLength: plaintext.length });
  const body = cipher.update(plaintext);
  cipher.final();
  const out = new Uint8Array(body.length + TAG_SIZE);
  out.set(body, 0);
  out.set(cipher.getAuthTag(), body.length);
  return out;
}

function openWith(key: KeyObject | Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array | undefined): Uint8Array | null {
  if (ciphertext.length < TAG_SIZE) return null;
  const bodyLength = ciphertext.length - TAG_SIZE;
  const decipher = createDecipheriv(CIPHER, key, nonce, { authTagLength: TAG_SIZE });
  decipher.setAuthTag(ciphertext.subarray(bodyLength));
  if (ad !== undefined && ad.length > 0) decipher.setAAD(ad, { plaintextLength: bodyLength });
  const body = decipher.update(ciphertext.subarray(0, bodyLength));
  try {
    decipher.final();
  } catch {
    body.fill(0); // unauthenticated plaintext never leaves
    return null;
  }
  return plain(body);
}

function xopen(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array | null {
  if (ciphertext.length < TAG_SIZE) return null;
  try {
    return xchacha20poly1305(key, nonce, ad).decrypt(ciphertext);
  } catch {
    return null;
  }
}

export const nodeCrypto: CryptoProvider = {
  name: 'node',

  hash(...parts) {
    const h = createHash('blake2s256');
    for (const p of parts) h.update(p);
    return plain(h.digest());
  },

  mac(key, data) {
    return blake2s(data, { key, dkLen: MAC_SIZE });
  },

  hmac(key, data) {
    return plain(createHmac('blake2s256', key).update(data).digest());
  },

  dh(privateKey, publicKey) {
    checkKey(privateKey, 'dh private key');
    checkKey(publicKey, 'dh public key');
    const priv = privateKeyObject(privateKey);
    const pub = publicKeyObject(publicKey);
    try {
      return plain(diffieHellman({ privateKey: priv, publicKey: pub }));
    } catch (err) {
      // OpenSSL refuses to derive from a low-order point (all-zero result); report that as the
      // all-zero value, which the handshake rejects, exactly like the pure-JS provider.
      if ((err as { code?: unknown }).code === 'ERR_OSSL_FAILED_DURING_DERIVATION') return new Uint8Array(KEY_SIZE);
      throw err;
    }
  },

  publicKey(privateKey) {
    checkKey(privateKey, 'private key');
    return rawPublicKey(createPublicKey(privateKeyObject(privateKey)));
  },

  seal(key, counter, plaintext, ad) {
    const nonce = new Uint8Array(NONCE_SIZE);
    setCounter(nonce, counter);
    return sealWith(key, nonce, plaintext, ad);
  },

  open(key, counter, ciphertext, ad) {
    const nonce = new Uint8Array(NONCE_SIZE);
    setCounter(nonce, counter);
    return openWith(key, nonce, ciphertext, ad);
  },

  xseal(key, nonce, plaintext, ad) {
    return xchacha20poly1305(key, nonce, ad).encrypt(plaintext);
  },

  xopen,

  aead(key): Aead {
    checkKey(key, 'aead key');
    // the key is imported once; the nonce buffer is reused (createCipheriv copies it per call)
    const secret = createSecretKey(key);
    const nonce = new Uint8Array(NONCE_SIZE);
    return {
      seal(counter, plaintext, ad) {
        setCounter(nonce, counter);
        return sealWith(secret, nonce, plaintext, ad ?? EMPTY);
      },
      open(counter, ciphertext, ad) {
        setCounter(nonce, counter);
        return openWith(secret, nonce, ciphertext, ad ?? EMPTY);
      },
    };
  },
};

/** For tests only: force the DER import path (false), the JWK path (true), or re-detect (undefined). */
export const nodeCryptoTesting = {
  setJwkPrivateImport(value: boolean | undefined): void {
    jwkPrivateImport = value;
  },
  jwkPrivateImportWorks,
};
