import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  asPresharedKey,
  asPublicKey,
  clampPrivateKey,
  generatePrivateKey,
  keyFromBase64,
  keyFromHex,
  keyToBase64,
  keyToHex,
  peerTag,
  zeroPresharedKey,
} from '../../../src/noise/keys.js';
import { hexToBytes } from '../../../src/noise/bytes.js';
import { nodeCrypto } from '../../../src/noise/crypto-node.js';
import type { Random } from '../../../src/noise/clock.js';

// RFC 7748 §6.1 Alice, and the same key as `wg` prints it
const ALICE_HEX = '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a';
const ALICE_B64 = 'dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=';
const ALICE_PUB_B64 = 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=';

describe('clampPrivateKey', () => {
  it('clears bits 0–2 of byte 0 and bit 7 of byte 31, sets bit 6 of byte 31, on a copy', () => {
    const raw = new Uint8Array(32).fill(0xff);
    const k = clampPrivateKey(raw);
    expect(k[0]).toBe(0xf8);
    expect(k[31]).toBe(0x7f);
    expect(raw[0]).toBe(0xff);
    const z = clampPrivateKey(new Uint8Array(32));
    expect(z[0]).toBe(0);
    expect(z[31]).toBe(0x40);
    expect(Array.from(z.subarray(1, 31)).every((b) => b === 0)).toBe(true);
    expect(() => clampPrivateKey(new Uint8Array(31))).toThrow('private key: must be 32 bytes, got 31');
  });

  it('is idempotent', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (b) => keyToHex(clampPrivateKey(clampPrivateKey(b))) === keyToHex(clampPrivateKey(b))));
  });
});

describe('base64 and hex keys', () => {
  it('decode and encode the wg forms', () => {
    expect(keyToHex(keyFromBase64(ALICE_B64, 'private key'))).toBe(ALICE_HEX);
    expect(keyToBase64(hexToBytes(ALICE_HEX))).toBe(ALICE_B64);
    expect(keyToHex(keyFromHex(ALICE_HEX.toUpperCase(), 'private_key'))).toBe(ALICE_HEX);
    expect(keyToBase64(nodeCrypto.publicKey(keyFromBase64(ALICE_B64, 'private key')))).toBe(ALICE_PUB_B64);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (b) => {
        return keyToHex(keyFromBase64(keyToBase64(b), 'k')) === keyToHex(b) && keyToHex(keyFromHex(keyToHex(b), 'k')) === keyToHex(b);
      }),
    );
  });

  it('encodes subarray views correctly', () => {
    const big = new Uint8Array(40);
    big.set(hexToBytes(ALICE_HEX), 4);
    expect(keyToBase64(big.subarray(4, 36))).toBe(ALICE_B64);
    expect(keyToHex(big.subarray(4, 36))).toBe(ALICE_HEX);
  });

  const badBase64: [string, RegExp][] = [
    ['', /44 characters of base64, got 0/],
    [ALICE_B64.slice(0, 43), /got 43/],
    [ALICE_B64 + 'A', /got 45/],
    [ALICE_B64.slice(0, 43) + 'A', /canonical/], // no padding
    ['*' + ALICE_B64.slice(1), /canonical/],
    [ALICE_B64.slice(0, 42) + 'p=', /canonical/], // spare bits not zero ('p' = 41)
    ['dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LC==', /canonical/], // decodes to 31 bytes
    [' ' + ALICE_B64.slice(1), /canonical/],
  ];
  it.each(badBase64)('keyFromBase64 rejects %j naming the field, never echoing the text', (text, problem) => {
    let message = '';
    try {
      keyFromBase64(text, 'private key');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^private key: /);
    expect(message).toMatch(problem);
    if (text.length > 4) expect(message).not.toContain(text.slice(1, 9));
  });

  it('keyFromHex rejects wrong length and non-hex, naming the field only', () => {
    expect(() => keyFromHex(ALICE_HEX.slice(2), 'preshared_key')).toThrow('preshared_key: must be 64 hex characters, got 62 characters');
    const bad = ALICE_HEX.slice(0, 63) + 'g';
    expect(() => keyFromHex(bad, 'preshared_key')).toThrow('preshared_key: contains a character that is not hex');
    try {
      keyFromHex(bad, 'preshared_key');
    } catch (err) {
      expect((err as Error).message).not.toContain(ALICE_HEX.slice(0, 8));
    }
  });
});

describe('peerTag', () => {
  it('is peer(first4…last4) of the base64 form', () => {
    expect(peerTag(keyFromBase64(ALICE_PUB_B64, 'public key'))).toBe('peer(hSDw…bTmo)');
  });
});

describe('generatePrivateKey and redaction', () => {
  const fixed: Random = {
    fill(out) {
      out.set(hexToBytes(ALICE_HEX).subarray(0, out.length));
      return out;
    },
    u32: () => 0,
  };

  it('clamps the random bytes', () => {
    const k = generatePrivateKey(fixed);
    expect(keyToHex(k)).toBe(keyToHex(clampPrivateKey(hexToBytes(ALICE_HEX))));
    expect(k[0]! & 7).toBe(0);
    expect(k[31]! & 0xc0).toBe(0x40);
  });

  it('private and preshared keys never print their bytes', () => {
    const k = generatePrivateKey(fixed);
    const psk = asPresharedKey(hexToBytes(ALICE_HEX));
    for (const secret of [k, psk]) {
      const shown = JSON.stringify({ secret }) + inspect(secret) + inspect({ nested: secret }) + String(inspect([secret]));
      expect(shown).toContain('redacted');
      expect(shown).not.toContain('119'); // 0x77, the first byte, as a decimal element
      expect(shown).not.toContain('77 07');
      expect(shown).not.toContain(ALICE_B64.slice(0, 8));
    }
    // the bytes are still there for the crypto
    expect(keyToHex(psk)).toBe(ALICE_HEX);
    expect(keyToHex(zeroPresharedKey())).toBe('00'.repeat(32));
  });

  it('asPublicKey and asPresharedKey check the length', () => {
    expect(() => asPublicKey(new Uint8Array(31), 'public_key')).toThrow('public_key: must be 32 bytes, got 31');
    expect(() => asPresharedKey(new Uint8Array(33))).toThrow('preshared key: must be 32 bytes, got 33');
    const raw = new Uint8Array(32);
    const pub = asPublicKey(raw);
    expect(pub).toBe(raw);
  });
});
