/**
 * Encryption of discovery records exactly as Talos does it (kubespan.md §1.5).
 *
 * Key: the cluster secret is standard base64 of 32 random bytes; the decoded bytes are the
 * AES-256 key (no KDF, no salt).
 *
 * Affiliate data: AES-256-GCM, 12-byte random nonce, 16-byte tag, no additional data; the blob is
 * `nonce(12) ‖ ciphertext ‖ tag(16)`. A fresh nonce is drawn for every seal.
 *
 * Endpoints: `len(Endpoint protobuf)` as one byte ‖ protobuf ‖ zero padding to a multiple of 16,
 * each 16-byte block encrypted on its own with raw AES (AES-256-ECB, no IV) — deliberately
 * deterministic so equal endpoints from different nodes give equal blobs and the server dedups them.
 */
import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';
import type { Random } from '../noise/clock.js';
import { decodeEndpoint, encodeEndpoint } from './endpoint-codec.js';
import { BlobError } from './errors.js';
import type { AffiliateEndpoint } from './types.js';

export { BlobError };

export const CLUSTER_KEY_SIZE = 32;
export const GCM_NONCE_SIZE = 12;
export const GCM_TAG_SIZE = 16;
/** Bytes GCM adds to every affiliate data blob. */
export const GCM_OVERHEAD = GCM_NONCE_SIZE + GCM_TAG_SIZE;
export const AES_BLOCK_SIZE = 16;

const BASE64_STD = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Decodes the cluster secret (standard base64, padded, 32 bytes). Errors name the field and the
 * problem, never the value.
 */
export function parseClusterSecret(secret: string, field = 'clusterSecret'): Uint8Array {
  if (typeof secret !== 'string' || secret.length === 0) throw new Error(`${field}: missing`);
  const trimmed = secret.trim();
  if (!BASE64_STD.test(trimmed)) throw new Error(`${field}: not standard base64`);
  const key = Buffer.from(trimmed, 'base64');
  if (key.length !== CLUSTER_KEY_SIZE) {
    throw new Error(`${field}: decodes to ${key.length} bytes, want ${CLUSTER_KEY_SIZE}`);
  }
  return new Uint8Array(key);
}

const systemRandom: Pick<Random, 'fill'> = {
  fill(out: Uint8Array): Uint8Array {
    return randomFillSync(out);
  },
};

/** AES-256 with the cluster key: GCM for affiliate data, ECB for endpoints. */
export class ClusterCipher {
  readonly #key: Buffer;
  readonly #random: Pick<Random, 'fill'>;

  constructor(key: Uint8Array, random: Pick<Random, 'fill'> = systemRandom) {
    if (key.length !== CLUSTER_KEY_SIZE) throw new Error(`cluster key: ${key.length} bytes, want ${CLUSTER_KEY_SIZE}`);
    this.#key = Buffer.from(key);
    this.#random = random;
  }

  /** Builds a cipher from the base64 cluster secret. */
  static fromSecret(secret: string, random?: Pick<Random, 'fill'>): ClusterCipher {
    return new ClusterCipher(parseClusterSecret(secret), random);
  }

  /** Encrypts affiliate data: `nonce ‖ ciphertext ‖ tag`, fresh random nonce. */
  sealAffiliateData(plaintext: Uint8Array): Uint8Array {
    const nonce = this.#random.fill(new Uint8Array(GCM_NONCE_SIZE));
    const cipher = createCipheriv('aes-256-gcm', this.#key, nonce, { authTagLength: GCM_TAG_SIZE });
    const body = cipher.update(plaintext);
    cipher.final();
    const tag = cipher.getAuthTag();
    const out = new Uint8Array(GCM_OVERHEAD + body.length);
    out.set(nonce, 0);
    out.set(body, GCM_NONCE_SIZE);
    out.set(tag, GCM_NONCE_SIZE + body.length);
    return out;
  }

  /** Opens an affiliate data blob; throws BlobError when it is too short or fails authentication. */
  openAffiliateData(blob: Uint8Array): Uint8Array {
    if (blob.length < GCM_OVERHEAD) throw new BlobError(`data blob too short (${blob.length} bytes)`);
    const nonce = blob.subarray(0, GCM_NONCE_SIZE);
    const body = blob.subarray(GCM_NONCE_SIZE, blob.length - GCM_TAG_SIZE);
    const tag = blob.subarray(blob.length - GCM_TAG_SIZE);
    const decipher = createDecipheriv('aes-256-gcm', this.#key, nonce, { authTagLength: GCM_TAG_SIZE });
    decipher.setAuthTag(tag);
    const out = decipher.update(body);
    try {
      decipher.final();
    } catch {
      throw new BlobError('data blob failed authentication (wrong cluster secret or corrupted)');
    }
    return new Uint8Array(out);
  }

  /** Raw AES-256-ECB over whole blocks (no padding added here). */
  ecbEncrypt(blocks: Uint8Array): Uint8Array {
    if (blocks.length % AES_BLOCK_SIZE !== 0) throw new Error('ecb input is not a whole number of blocks');
    const cipher = createCipheriv('aes-256-ecb', this.#key, null);
    cipher.setAutoPadding(false);
    return new Uint8Array(Buffer.concat([cipher.update(blocks), cipher.final()]));
  }

  /** Raw AES-256-ECB decryption over whole blocks. */
  ecbDecrypt(blocks: Uint8Array): Uint8Array {
    if (blocks.length % AES_BLOCK_SIZE !== 0) throw new BlobError(`endpoint blob length ${blocks.length} is not a multiple of 16`);
    const decipher = createDecipheriv('aes-256-ecb', this.#key, null);
    decipher.setAutoPadding(false);
    return new Uint8Array(Buffer.concat([decipher.update(blocks), decipher.final()]));
  }

  /** Encrypts one endpoint into its deterministic blob (16 bytes for IPv4, 32 for IPv6). */
  encryptEndpoint(endpoint: AffiliateEndpoint, field = 'endpoint'): Uint8Array {
    return this.ecbEncrypt(padEndpointPlaintext(encodeEndpoint(endpoint, field)));
  }

  /** Decrypts one endpoint blob; throws BlobError for any malformed blob. */
  decryptEndpoint(blob: Uint8Array): AffiliateEndpoint {
    if (blob.length === 0) throw new BlobError('endpoint blob is empty');
    const plain = this.ecbDecrypt(blob);
    const length = plain[0] ?? 0;
    if (length + 1 > plain.length) throw new BlobError(`endpoint length byte ${length} exceeds blob`);
    return decodeEndpoint(plain.subarray(1, 1 + length));
  }
}

/** `len ‖ protobuf ‖ zero padding` to a multiple of 16 (the plaintext of an endpoint blob). */
export function padEndpointPlaintext(protobufBytes: Uint8Array): Uint8Array {
  if (protobufBytes.length > 255) throw new Error('endpoint protobuf longer than 255 bytes');
  const size = Math.ceil((protobufBytes.length + 1) / AES_BLOCK_SIZE) * AES_BLOCK_SIZE;
  const out = new Uint8Array(size);
  out[0] = protobufBytes.length;
  out.set(protobufBytes, 1);
  return out;
}
