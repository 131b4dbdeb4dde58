import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  base62Encode,
  eui64Address,
  IdentityFileError,
  isKubespanUla,
  isSideroLinkUla,
  kubespanPrefix,
  loadOrCreateIdentity,
  loadOrCreateNodeId,
  nodeAddressFor,
  parseMac,
} from '../../../src/kubespan/identity.js';
import { nodeCrypto } from '../../../src/noise/crypto-node.js';
import { keyFromBase64, keyToBase64 } from '../../../src/noise/keys.js';

/** Deterministic bytes: 0, 1, 2, … continuing across calls. */
function counterRandom(start = 0) {
  let next = start;
  return {
    fill: (out: Uint8Array) => {
      for (let i = 0; i < out.length; i++) out[i] = next++ & 0xff;
      return out;
    },
  };
}

describe('KubeSpan addressing (spec §2)', () => {
  it('reproduces the upstream identity vector', () => {
    const clusterId = '8XuV9TZHW08DOk3bVxQjH9ih_TBKjnh-j44tsCLSBzo=';
    expect(kubespanPrefix(clusterId)).toBe('fd7f:175a:b97c:5602::/64');
    expect(nodeAddressFor(clusterId, '2e:1a:b6:53:81:69')).toEqual({
      subnet: 'fd7f:175a:b97c:5602::/64',
      address: 'fd7f:175a:b97c:5602:2c1a:b6ff:fe53:8169/128',
      ip: 'fd7f:175a:b97c:5602:2c1a:b6ff:fe53:8169',
    });
  });

  it('hashes the cluster id verbatim (no decoding, no trimming)', () => {
    const a = kubespanPrefix('8XuV9TZHW08DOk3bVxQjH9ih_TBKjnh-j44tsCLSBzo=');
    expect(kubespanPrefix('8XuV9TZHW08DOk3bVxQjH9ih_TBKjnh-j44tsCLSBzo')).not.toBe(a);
    expect(kubespanPrefix(' 8XuV9TZHW08DOk3bVxQjH9ih_TBKjnh-j44tsCLSBzo=')).not.toBe(a);
    for (const id of ['a', 'cluster', 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=']) {
      const p = kubespanPrefix(id);
      expect(p).toMatch(/^fd[0-9a-f]{2}:[0-9a-f]{1,4}:[0-9a-f]{1,4}:[0-9a-f]{0,2}02::\/64$/);
      expect(isKubespanUla(p.replace('/64', ''))).toBe(true);
    }
  });

  it('refuses an empty cluster id', () => {
    expect(() => kubespanPrefix('')).toThrow(/cluster\.id: is empty/);
  });

  it.each([
    // [mac, interface identifier]
    ['2e:1a:b6:53:81:69', '2c1a:b6ff:fe53:8169'],
    ['00:00:00:00:00:01', '200:ff:fe00:1'],
    ['02:00:00:00:00:01', '0:ff:fe00:1'],
    ['AA-BB-CC-DD-EE-FF', 'a8bb:ccff:fedd:eeff'],
    ['02:42:ac:11:00:02', '42:acff:fe11:2'],
    ['00:11:22:33:44:55:66:77', '211:2233:4455:6677'],
  ])('EUI-64 of %s is …:%s', (mac, iid) => {
    expect(eui64Address('fd00:1:2:3::/64', mac)).toBe(`fd00:1:2:3:${iid}/128`);
  });

  it('EUI-64 needs an IPv6 /64 and a 6- or 8-byte, non-zero MAC', () => {
    expect(() => eui64Address('fd00::/48', '2e:1a:b6:53:81:69')).toThrow(/not an IPv6 \/64/);
    expect(() => eui64Address('10.0.0.0/8', '2e:1a:b6:53:81:69')).toThrow(/not an IPv6 \/64/);
    expect(() => parseMac('2e:1a:b6:53:81')).toThrow(/has 5 bytes/);
    expect(() => parseMac('00:00:00:00:00:00')).toThrow(/all zeros/);
    expect(() => parseMac('zz:1a:b6:53:81:69')).toThrow(/"zz:1a:b6:53:81:69" is not a hardware address/);
  });

  it('recognises SideroLink ULAs', () => {
    expect(isSideroLinkUla('fd12:3456:789a:bc03::1')).toBe(true);
    expect(isSideroLinkUla('fd7f:175a:b97c:5602::1')).toBe(false);
    expect(isSideroLinkUla('10.0.0.1')).toBe(false);
  });
});

describe('base62 node ids', () => {
  it('encodes big-endian with 0-9A-Za-z, padded to 43 characters for 32 bytes', () => {
    expect(base62Encode(new Uint8Array(32))).toBe('0'.repeat(43));
    expect(base62Encode(new Uint8Array(32).fill(0xff))).toHaveLength(43);
    const one = new Uint8Array(32);
    one[31] = 61;
    expect(base62Encode(one)).toBe('0'.repeat(42) + 'z');
    one[31] = 62;
    expect(base62Encode(one)).toBe('0'.repeat(41) + '10');
    // 2^256 - 1 in base62, computed independently with BigInt.toString-style division below
    let n = (1n << 256n) - 1n;
    let expected = '';
    const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
    while (n > 0n) {
      expected = alphabet[Number(n % 62n)] + expected;
      n /= 62n;
    }
    expect(base62Encode(new Uint8Array(32).fill(0xff))).toBe(expected);
  });
});

describe('identity files', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ksk-identity-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates the key pair once (0600, dir 0700) with the Talos keys, then reloads the same pair', () => {
    const stateDir = join(dir, 'state', 'nested');
    const first = loadOrCreateIdentity(stateDir, counterRandom());
    expect(first.created).toBe(true);
    expect(first.path).toBe(join(stateDir, 'kubespan-identity.yaml'));
    expect(statSync(first.path).mode & 0o777).toBe(0o600);
    expect(statSync(stateDir).mode & 0o777).toBe(0o700);
    const doc = parseYaml(readFileSync(first.path, 'utf8')) as Record<string, string>;
    expect(Object.keys(doc).sort()).toEqual(['address', 'privateKey', 'publicKey', 'subnet']);
    // the private key is the clamped random bytes 0..31
    const expectedPriv = Uint8Array.from({ length: 32 }, (_, i) => i);
    expectedPriv[0]! &= 248;
    expectedPriv[31] = (expectedPriv[31]! & 127) | 64;
    expect(keyFromBase64(doc.privateKey!, 'privateKey')).toEqual(expectedPriv);
    expect(doc.publicKey).toBe(keyToBase64(nodeCrypto.publicKey(expectedPriv)));
    expect(first.publicKeyBase64).toBe(doc.publicKey);

    const again = loadOrCreateIdentity(stateDir, counterRandom(100));
    expect(again.created).toBe(false);
    expect(again.publicKeyBase64).toBe(first.publicKeyBase64);
    expect(Buffer.from(again.privateKey)).toEqual(Buffer.from(first.privateKey));
  });

  it('never prints the private key', () => {
    const id = loadOrCreateIdentity(dir, counterRandom());
    const priv = keyToBase64(id.privateKey);
    expect(JSON.stringify(id)).not.toContain(priv);
    expect(inspect(id)).not.toContain(priv);
    expect(JSON.stringify(id)).toContain('redacted');
  });

  it('reads a Talos-written file with address and subnet filled in', () => {
    const priv = Uint8Array.from({ length: 32 }, (_, i) => 200 - i);
    priv[0]! &= 248;
    priv[31] = (priv[31]! & 127) | 64;
    const pub = keyToBase64(nodeCrypto.publicKey(priv));
    const path = join(dir, 'kubespan-identity.yaml');
    writeFileSync(
      path,
      `address: fd7f:175a:b97c:5602:2c1a:b6ff:fe53:8169/128\nsubnet: fd7f:175a:b97c:5602::/64\nprivateKey: ${keyToBase64(priv)}\npublicKey: ${pub}\n`,
      { mode: 0o600 },
    );
    const id = loadOrCreateIdentity(dir);
    expect(id.created).toBe(false);
    expect(id.publicKeyBase64).toBe(pub);
  });

  it('refuses a group/world-readable file, naming path and mode', () => {
    const id = loadOrCreateIdentity(dir, counterRandom());
    chmodSync(id.path, 0o644);
    expect(() => loadOrCreateIdentity(dir)).toThrow(IdentityFileError);
    expect(() => loadOrCreateIdentity(dir)).toThrow(`${id.path}: mode 0644 lets group or others read the KubeSpan private key`);
    chmodSync(id.path, 0o640);
    expect(() => loadOrCreateIdentity(dir)).toThrow(/mode 0640/);
    chmodSync(id.path, 0o600);
    expect(loadOrCreateIdentity(dir).publicKeyBase64).toBe(id.publicKeyBase64);
  });

  it.each([
    ['not YAML', 'privateKey: [unterminated\n', /is corrupt: not YAML/],
    ['not a mapping', '- a\n- b\n', /is corrupt: not a YAML mapping/],
    ['no private key', 'publicKey: x\n', /privateKey is missing/],
    ['bad private key', 'privateKey: c2hvcnQ=\npublicKey: x\n', /is corrupt: privateKey: must be 44 characters/],
    ['mismatched public key', `privateKey: ${'A'.repeat(43)}=\npublicKey: ${'B'.repeat(43)}=\n`, /publicKey does not match privateKey/],
    ['no public key', `privateKey: ${'A'.repeat(43)}=\n`, /publicKey is missing/],
  ])('a corrupt file (%s) is a clear error and is left in place', (_name, content, pattern) => {
    const path = join(dir, 'kubespan-identity.yaml');
    writeFileSync(path, content, { mode: 0o600 });
    expect(() => loadOrCreateIdentity(dir)).toThrow(pattern);
    expect(() => loadOrCreateIdentity(dir)).toThrow(new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
    expect(readFileSync(path, 'utf8')).toBe(content);
  });

  it('errors never contain the private key text', () => {
    const priv = keyToBase64(Uint8Array.from({ length: 32 }, (_, i) => i + 1));
    const path = join(dir, 'kubespan-identity.yaml');
    writeFileSync(path, `privateKey: ${priv}\npublicKey: ${'B'.repeat(43)}=\n`, { mode: 0o600 });
    let message = '';
    try {
      loadOrCreateIdentity(dir);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/does not match/);
    expect(message).not.toContain(priv);
  });

  it('creates and reloads the node id', () => {
    const a = loadOrCreateNodeId(dir, counterRandom(7));
    expect(a.created).toBe(true);
    expect(a.nodeId).toMatch(/^[0-9A-Za-z]{43}$/);
    expect(parseYaml(readFileSync(a.path, 'utf8'))).toEqual({ nodeId: a.nodeId });
    expect(statSync(a.path).mode & 0o777).toBe(0o600);
    const b = loadOrCreateNodeId(dir, counterRandom(99));
    expect(b).toEqual({ nodeId: a.nodeId, path: a.path, created: false });
    // different randomness, different id
    const other = mkdtempSync(join(tmpdir(), 'ksk-identity-'));
    try {
      expect(loadOrCreateNodeId(other).nodeId).not.toBe(a.nodeId);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('refuses a corrupt node id file', () => {
    writeFileSync(join(dir, 'node-identity.yaml'), 'nodeId: ""\n');
    expect(() => loadOrCreateNodeId(dir)).toThrow(/node-identity\.yaml: is corrupt: nodeId/);
  });
});
