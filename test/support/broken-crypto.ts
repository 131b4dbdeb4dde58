/**
 * A crypto provider that seals correctly but flips a plaintext bit after a successful open, in place or
 * copying: what a broken accelerator could do. Handshakes still work (they use the one-shot seal/open
 * functions, not `aead()`); transport packets come out changed. The bit is in byte 8 (an IPv4 packet's
 * TTL, an IPv6 packet's source address), not the last byte, which may be padding the device strips.
 */
import { nodeCrypto } from '../../src/noise/crypto-node.js';
import type { Aead, CryptoProvider } from '../../src/noise/crypto.js';

export function corruptingCrypto(): CryptoProvider {
  return {
    ...nodeCrypto,
    name: 'broken',
    aead(key): Aead {
      const inner = nodeCrypto.aead(key);
      return {
        ...inner,
        openInPlace: inner.openInPlace
          ? (counter, buf, off, len) => {
              const ok = inner.openInPlace!(counter, buf, off, len);
              if (ok && len > 0) buf[off + Math.min(8, len - 1)]! ^= 0x01;
              return ok;
            }
          : undefined,
        open: (counter, ct, ad) => {
          const pt = inner.open(counter, ct, ad);
          if (pt && pt.length > 0) pt[Math.min(8, pt.length - 1)]! ^= 0x01;
          return pt;
        },
      };
    },
  };
}
