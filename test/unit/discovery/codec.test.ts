import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ClusterCipher,
  BlobError,
  decodeAffiliate,
  decodeIp,
  decodePrefix,
  discoveryTypes,
  encodeAffiliate,
  encodeEndpoint,
  encodeIp,
  encodePrefix,
  normaliseEndpoint,
  padEndpointPlaintext,
  parseClusterSecret,
  parseRedirectTarget,
  type LocalAffiliate,
} from '../../../src/discovery/index.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const SECRET = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';
const KEY = Uint8Array.from({ length: 32 }, (_, i) => i);

describe('cluster secret', () => {
  it('decodes the spec secret to bytes 0x00..0x1f', () => {
    expect(hex(parseClusterSecret(SECRET))).toBe(hex(KEY));
  });
  it.each([
    ['', 'missing'],
    ['not base64!', 'not standard base64'],
    ['AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd', 'decodes to 30 bytes'],
    ['AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8', 'not standard base64'],
  ])('refuses %j with a message that names the field but not the value', (secret, why) => {
    let message = '';
    try {
      parseClusterSecret(secret);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('clusterSecret');
    expect(message).toContain(why);
    if (secret.length > 3) expect(message).not.toContain(secret);
  });
});

describe('endpoint blobs (spec §1.4/§1.5 vectors)', () => {
  const cipher = new ClusterCipher(KEY);
  it('canonical plaintext of 10.0.0.2:51820', () => {
    expect(hex(encodeEndpoint({ address: '10.0.0.2', port: 51820 }))).toBe('0a040a00000210ec9403');
    expect(hex(padEndpointPlaintext(encodeEndpoint({ address: '10.0.0.2', port: 51820 })))).toBe(
      '0a0a040a00000210ec94030000000000',
    );
  });
  it('hand encoder agrees with the .proto (protobufjs) encoding', () => {
    const Endpoint = discoveryTypes().Endpoint;
    for (const [address, port] of [
      ['10.0.0.2', 51820],
      ['2001:db8::1', 1],
      ['192.168.1.1', 0],
      ['::', 65535],
      ['0.0.0.0', 127],
      ['fd00::2', 128],
    ] as const) {
      const ip = encodeIp(address, 'ip');
      const expected = Endpoint.encode({ ip, port }).finish();
      expect(hex(encodeEndpoint({ address, port }))).toBe(hex(expected));
    }
  });
  it('10.0.0.2:51820 → 45c55198…', () => {
    expect(hex(cipher.encryptEndpoint({ address: '10.0.0.2', port: 51820 }))).toBe('45c55198f8ad5b07dd423e192f7e13e8');
  });
  it('[2001:db8::1]:51820 → e2702633…', () => {
    const padded = padEndpointPlaintext(encodeEndpoint({ address: '2001:db8::1', port: 51820 }));
    expect(hex(padded)).toBe('160a1020010db800000000000000000000000110ec9403' + '00'.repeat(9));
    expect(hex(cipher.encryptEndpoint({ address: '2001:db8::1', port: 51820 }))).toBe(
      'e2702633ca89239d5ee036a316dde237d604c19a74d2f45c1e624c2d38c4cca0',
    );
  });
  it('equal endpoints give equal blobs, and blobs decrypt back', () => {
    const a = cipher.encryptEndpoint({ address: '2001:db8::1', port: 51820 });
    const b = new ClusterCipher(parseClusterSecret(SECRET)).encryptEndpoint({ address: '2001:db8::1', port: 51820 });
    expect(hex(a)).toBe(hex(b));
    expect(cipher.decryptEndpoint(a)).toEqual({ address: '2001:db8::1', port: 51820 });
  });
  it('matches openssl enc -aes-256-ecb -nopad', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ksd-ecb-'));
    try {
      for (const ep of [
        { address: '10.0.0.2', port: 51820 },
        { address: '2001:db8::1', port: 51820 },
        { address: '203.0.113.77', port: 4242 },
      ]) {
        const plain = padEndpointPlaintext(encodeEndpoint(ep));
        const file = join(dir, 'plain.bin');
        writeFileSync(file, plain);
        const out = execFileSync('openssl', ['enc', '-aes-256-ecb', '-nopad', '-K', hex(KEY), '-in', file]);
        expect(hex(cipher.encryptEndpoint(ep))).toBe(out.toString('hex'));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('refuses malformed endpoint blobs with BlobError', () => {
    expect(() => cipher.decryptEndpoint(new Uint8Array(0))).toThrow(BlobError);
    expect(() => cipher.decryptEndpoint(new Uint8Array(15))).toThrow(/multiple of 16/);
    // length byte larger than the blob
    const bad = cipher.ecbEncrypt(Uint8Array.from([200, ...new Uint8Array(15)]));
    expect(() => cipher.decryptEndpoint(bad)).toThrow(/exceeds/);
    // garbage protobuf inside a valid frame
    const garbage = cipher.ecbEncrypt(Uint8Array.from([3, 0xff, 0xff, 0xff, ...new Uint8Array(12)]));
    expect(() => cipher.decryptEndpoint(garbage)).toThrow(BlobError);
    // a wrong key decrypts to junk that must not parse as a plausible endpoint most of the time; it must never throw anything but BlobError
    const other = new ClusterCipher(new Uint8Array(32).fill(7));
    const blob = cipher.encryptEndpoint({ address: '10.0.0.2', port: 51820 });
    try {
      other.decryptEndpoint(blob);
    } catch (err) {
      expect(err).toBeInstanceOf(BlobError);
    }
  });
  it('refuses endpoints it cannot send', () => {
    expect(() => encodeEndpoint({ address: 'fe80::1%eth0', port: 1 }, 'endpoints[0]')).toThrow(/endpoints\[0\]\.address.*zone/);
    expect(() => encodeEndpoint({ address: '10.0.0.300', port: 1 }, 'endpoints[1]')).toThrow(/endpoints\[1\]\.address: "10.0.0.300"/);
    expect(() => encodeEndpoint({ address: '10.0.0.1', port: 70000 }, 'ep')).toThrow(/ep\.port: 70000/);
  });
});

describe('affiliate data (AES-256-GCM)', () => {
  const fixedNonce = { fill: (out: Uint8Array) => out.fill(0x42) };
  it('layout is nonce(12) ‖ ciphertext ‖ tag(16), and matches node:crypto with the same nonce', async () => {
    const cipher = new ClusterCipher(KEY, fixedNonce);
    const blob = cipher.sealAffiliateData(new TextEncoder().encode('hello'));
    expect(blob.length).toBe(12 + 5 + 16);
    expect(hex(blob.subarray(0, 12))).toBe('42'.repeat(12));
    const { createCipheriv } = await import('node:crypto');
    const c = createCipheriv('aes-256-gcm', KEY, blob.subarray(0, 12));
    const body = Buffer.concat([c.update('hello'), c.final()]);
    expect(hex(blob.subarray(12))).toBe(hex(Buffer.concat([body, c.getAuthTag()])));
    expect(new TextDecoder().decode(cipher.openAffiliateData(blob))).toBe('hello');
  });
  it('draws a fresh nonce for every seal', () => {
    const cipher = new ClusterCipher(KEY);
    const a = cipher.sealAffiliateData(new Uint8Array(10));
    const b = cipher.sealAffiliateData(new Uint8Array(10));
    expect(hex(a)).not.toBe(hex(b));
  });
  it('refuses wrong-key, truncated and tampered blobs', () => {
    const cipher = new ClusterCipher(KEY);
    const blob = cipher.sealAffiliateData(new Uint8Array(10));
    expect(() => new ClusterCipher(new Uint8Array(32)).openAffiliateData(blob)).toThrow(/authentication/);
    expect(() => cipher.openAffiliateData(blob.subarray(0, 27))).toThrow(/too short/);
    const tampered = blob.slice();
    tampered[14]! ^= 1;
    expect(() => cipher.openAffiliateData(tampered)).toThrow(BlobError);
  });
});

describe('affiliate record', () => {
  const affiliate: LocalAffiliate = {
    nodeId: 'node-a',
    addresses: ['192.168.1.10', 'fd7f:175a:b97c:5602:2c1a:b6ff:fe53:8169', 'fe80::1%eth0'],
    hostname: 'a.example',
    nodename: 'a',
    machineType: 'worker',
    operatingSystem: 'kubespand (v0.1.0)',
    kubespan: {
      publicKey: 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=',
      address: 'fd7f:175a:b97c:5602:2c1a:b6ff:fe53:8169',
      additionalAddresses: ['10.244.1.0/24'],
      excludeAdvertisedAddresses: ['192.168.0.0/16', '2001:db8::/32'],
    },
  };
  it('round-trips', () => {
    expect(decodeAffiliate(encodeAffiliate(affiliate))).toEqual(affiliate);
  });
  it('is canonical: field numbers ascend, zero values are omitted', () => {
    const bytes = encodeAffiliate({ ...affiliate, hostname: '', addresses: [] });
    // node_id (1), nodename (4), machine_type (5), operating_system (6), kubespan (7)
    const tags: number[] = [];
    for (let i = 0; i < bytes.length; ) {
      const tag = bytes[i]!;
      tags.push(tag >> 3);
      const len = bytes[i + 1]!;
      i += 2 + len;
    }
    expect(tags).toEqual([1, 4, 5, 6, 7]);
    expect(hex(encodeAffiliate(affiliate))).toBe(hex(encodeAffiliate(JSON.parse(JSON.stringify(affiliate)))));
  });
  it('decodes without kubespan and tolerates a record from an older Talos (no field 4)', () => {
    const { kubespan: _k, ...plain } = affiliate;
    expect(decodeAffiliate(encodeAffiliate(plain))).toEqual(plain);
    const older = { ...affiliate, kubespan: { ...affiliate.kubespan!, excludeAdvertisedAddresses: [] } };
    expect(decodeAffiliate(encodeAffiliate(older)).kubespan?.excludeAdvertisedAddresses).toEqual([]);
  });
  it('drops unparseable addresses like Talos, refuses records without node id or with a bad key', () => {
    const A = discoveryTypes().ClientAffiliate;
    const raw = A.encode({ nodeId: 'x', addresses: [Uint8Array.from([1, 2, 3]), Uint8Array.from([10, 0, 0, 1])] }).finish();
    expect(decodeAffiliate(raw).addresses).toEqual(['10.0.0.1']);
    expect(() => decodeAffiliate(A.encode({ hostname: 'h' }).finish())).toThrow(/node_id/);
    expect(() =>
      decodeAffiliate(A.encode({ nodeId: 'x', kubespan: { publicKey: 'short', address: new Uint8Array(16) } }).finish()),
    ).toThrow(/public_key/);
    expect(() => decodeAffiliate(Uint8Array.from([0xff, 0xff, 0xff]))).toThrow(BlobError);
  });
  it('names the field and value on bad input', () => {
    expect(() => encodeAffiliate({ ...affiliate, addresses: ['10.0.0.1', 'nope'] })).toThrow(
      /affiliate\.addresses\[1\]: "nope" is not an IP address/,
    );
    expect(() => encodeAffiliate({ ...affiliate, kubespan: { ...affiliate.kubespan!, publicKey: 'abc' } })).toThrow(
      /affiliate\.kubespan\.publicKey: "abc"/,
    );
    expect(() =>
      encodeAffiliate({ ...affiliate, kubespan: { ...affiliate.kubespan!, additionalAddresses: ['10.0.0.0/33'] } }),
    ).toThrow(/additionalAddresses\[0\]: "10.0.0.0\/33" has an invalid prefix length/);
    expect(() => encodeAffiliate({ ...affiliate, nodeId: '' })).toThrow(/nodeId/);
  });
  it('refuses a record that would not fit the 2048-byte data limit', () => {
    const many = Array.from({ length: 200 }, (_, i) => `2001:db8::${i.toString(16)}`);
    expect(() => encodeAffiliate({ ...affiliate, addresses: many })).toThrow(/more than the 2020/);
  });
});

describe('IP bytes (netip MarshalBinary)', () => {
  it.each([
    ['10.1.2.3', '0a010203'],
    ['2001:db8::1', '20010db8000000000000000000000001'],
    ['::ffff:1.2.3.4', '00000000000000000000ffff01020304'],
    ['fe80::1%eth0', 'fe800000000000000000000000000001' + '65746830'],
  ])('%s ↔ %s', (text, bytes) => {
    expect(hex(encodeIp(text, 'f'))).toBe(bytes);
    expect(decodeIp(Buffer.from(bytes, 'hex'))).toBe(text);
  });
  it('refuses lenient forms and returns undefined for bad lengths', () => {
    for (const bad of ['1.2.3', '0x7f.1', '010.1.1.1', '1.2.3.4%eth0', 'fe80::1%', '']) {
      expect(() => encodeIp(bad, 'f')).toThrow(/f: /);
    }
    expect(decodeIp(new Uint8Array(0))).toBeUndefined();
    expect(decodeIp(new Uint8Array(5))).toBeUndefined();
  });
  it('prefixes', () => {
    expect(encodePrefix('10.244.0.0/16', 'p')).toEqual({ ip: Uint8Array.from([10, 244, 0, 0]), bits: 16 });
    expect(decodePrefix(encodePrefix('2001:db8::/32', 'p'))).toBe('2001:db8::/32');
    expect(decodePrefix({ ip: Uint8Array.from([10, 0, 0, 0]), bits: 33 })).toBeUndefined();
    expect(encodePrefix('10.0.0.1', 'p').bits).toBe(32);
  });
});

describe('endpoint URL normalisation', () => {
  it.each([
    ['https://discovery.talos.dev/', 'discovery.talos.dev:443', true],
    ['http://127.0.0.1:3000', '127.0.0.1:3000', false],
    ['http://example.com', 'example.com:80', false],
    ['grpc://example.com', 'example.com:443', true],
    ['grpc://example.com:3000/some/path', 'example.com:3000', true],
    ['https://[::1]:8443/', '[::1]:8443', true],
  ])('%s → %s', (url, target, tls) => {
    const t = normaliseEndpoint(url);
    expect(t.target).toBe(target);
    expect(t.tls).toBe(tls);
  });
  it('refuses other schemes and non-URLs, naming the field', () => {
    expect(() => normaliseEndpoint('ftp://x', 'discovery.endpoint')).toThrow(/discovery\.endpoint: "ftp:\/\/x" has scheme "ftp"/);
    expect(() => normaliseEndpoint('discovery.talos.dev:443')).toThrow(/scheme/);
    expect(() => normaliseEndpoint('not a url')).toThrow(/not a URL/);
  });
  it('parses redirect targets', () => {
    expect(parseRedirectTarget('other.example:3000', true)).toMatchObject({ target: 'other.example:3000', tls: true });
    expect(parseRedirectTarget('[::1]:3000', false)).toMatchObject({ host: '::1', target: '[::1]:3000', tls: false });
    expect(() => parseRedirectTarget('nope', true)).toThrow(/redirect\.endpoint/);
  });
});
