/**
 * KubeSpan identity: the cluster's ULA /64, the node's EUI-64 address inside it, and the files that
 * keep a node's WireGuard key pair and node id across restarts.
 *
 * Spec: ../shared/spec/kubespan.md §2 (ULA derivation, EUI-64, which MAC, the identity file) and
 * §1.6 (node id).
 *
 * - ULA /64: SHA-256 of the cluster id string exactly as configured; take the last 16 bytes, set
 *   byte 0 to 0xfd and byte 7 to the KubeSpan purpose 0x02, clear bytes 8–15.
 * - Node address: the EUI-64 interface identifier of a MAC inside that /64, as a /128.
 * - `<stateDir>/kubespan-identity.yaml`: keys `address`, `subnet`, `privateKey`, `publicKey`, as
 *   Talos writes it. Written once, mode 0600, at generation (address and subnet empty then, as in
 *   Talos: they are recomputed from the cluster id and the MAC on every start); afterwards only read.
 *   A file readable by group or others is refused, as is a corrupt one (never silently replaced).
 * - `<stateDir>/node-identity.yaml`: key `nodeId`, the affiliate id (base62 of 32 random bytes).
 *
 * Secrets: private keys are branded and redacted (src/noise/keys.ts); errors about the identity
 * file name the path and the problem, never key text.
 */
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type { Random } from '../noise/clock.js';
import { formatIp, formatPrefix, parseIp, parsePrefix } from '../noise/allowed-ips.js';
import { nodeCrypto } from '../noise/crypto-node.js';
import { asPublicKey, clampPrivateKey, keyFromBase64, keyToBase64, type PrivateKey, type PublicKey } from '../noise/keys.js';

// ---- Constants ----

/** ULA purpose byte for KubeSpan (byte 7 of the /64); 0x03 is SideroLink. */
export const ULA_PURPOSE_KUBESPAN = 0x02;
/** ULA purpose byte for SideroLink addresses, which are never advertised. */
export const ULA_PURPOSE_SIDEROLINK = 0x03;
export const KUBESPAN_IDENTITY_FILE = 'kubespan-identity.yaml';
export const NODE_IDENTITY_FILE = 'node-identity.yaml';
/** Bytes of randomness behind a node id (Talos: 32, base62-encoded to ~43 characters). */
export const NODE_ID_RANDOM_BYTES = 32;

// ---- ULA and EUI-64 ----

/** The cluster's KubeSpan ULA /64, e.g. `fd7f:175a:b97c:5602::/64` (spec §2). */
export function kubespanPrefix(clusterId: string): string {
  if (typeof clusterId !== 'string' || clusterId === '') throw new Error('cluster.id: is empty; the KubeSpan prefix is derived from it');
  const h = createHash('sha256').update(clusterId, 'utf8').digest();
  const address = new Uint8Array(h.subarray(16, 32));
  address[0] = 0xfd;
  address[7] = ULA_PURPOSE_KUBESPAN;
  address.fill(0, 8);
  return formatPrefix({ address, bits: 64 });
}

const MAC_TEXT = /^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2})*$/;

/**
 * Parses a hardware address written `aa:bb:cc:dd:ee:ff` (or with `-`). Throws naming the value when
 * it is not 6 or 8 bytes of hex pairs.
 */
export function parseMac(mac: string, field = 'MAC address'): Uint8Array {
  if (typeof mac !== 'string' || !MAC_TEXT.test(mac)) {
    throw new Error(`${field}: ${JSON.stringify(mac)} is not a hardware address (want hex pairs like 2e:1a:b6:53:81:69)`);
  }
  const bytes = Uint8Array.from(mac.split(/[:-]/), (p) => parseInt(p, 16));
  if (bytes.length !== 6 && bytes.length !== 8) {
    throw new Error(`${field}: ${JSON.stringify(mac)} has ${bytes.length} bytes; EUI-64 needs a 6-byte (EUI-48) or 8-byte (EUI-64) address`);
  }
  if (bytes.every((b) => b === 0)) throw new Error(`${field}: ${JSON.stringify(mac)} is all zeros`);
  return bytes;
}

/**
 * The EUI-64 address of `mac` inside the /64 `prefix`, as `/128` prefix text, e.g.
 * `fd7f:175a:b97c:5602:2c1a:b6ff:fe53:8169/128`. A 6-byte MAC `a:b:c:d:e:f` gives the interface
 * identifier `(a^0x02) b c ff fe d e f`; an 8-byte one has only its universal/local bit flipped.
 */
export function eui64Address(prefix: string, mac: string): string {
  const p = parsePrefix(prefix, 'KubeSpan prefix');
  if (p.address.length !== 16 || p.bits !== 64) {
    throw new Error(`KubeSpan prefix: ${JSON.stringify(prefix)} is not an IPv6 /64`);
  }
  const m = parseMac(mac);
  const address = new Uint8Array(p.address);
  if (m.length === 6) {
    address.set([m[0]! ^ 0x02, m[1]!, m[2]!, 0xff, 0xfe, m[3]!, m[4]!, m[5]!], 8);
  } else {
    address.set(m, 8);
    address[8] = address[8]! ^ 0x02;
  }
  return `${formatIp(address)}/128`;
}

/** The node's KubeSpan addressing for a cluster id and identity MAC. */
export interface NodeAddress {
  /** The cluster's /64, e.g. `fd7f:175a:b97c:5602::/64` (the `subnet` of the identity). */
  subnet: string;
  /** The node address as a /128 prefix (the `address` of the identity). */
  address: string;
  /** The bare node address, e.g. `fd7f:175a:b97c:5602:2c1a:b6ff:fe53:8169`. */
  ip: string;
}

/** `kubespanPrefix` + `eui64Address` in one step. */
export function nodeAddressFor(clusterId: string, mac: string): NodeAddress {
  const subnet = kubespanPrefix(clusterId);
  const address = eui64Address(subnet, mac);
  return { subnet, address, ip: address.slice(0, -'/128'.length) };
}

/** True for a KubeSpan ULA (fd…, byte 7 = 0x02) of any cluster. */
export function isKubespanUla(ip: string | Uint8Array): boolean {
  const b = typeof ip === 'string' ? parseIp(ip) : ip;
  return b.length === 16 && b[0] === 0xfd && b[7] === ULA_PURPOSE_KUBESPAN;
}

/** True for a SideroLink ULA (fd…, byte 7 = 0x03). */
export function isSideroLinkUla(ip: string | Uint8Array): boolean {
  const b = typeof ip === 'string' ? parseIp(ip) : ip;
  return b.length === 16 && b[0] === 0xfd && b[7] === ULA_PURPOSE_SIDEROLINK;
}

// ---- Files ----

/** Thrown for an identity file that cannot be used: names the path and the problem, never key text. */
export class IdentityFileError extends Error {
  constructor(
    readonly path: string,
    problem: string,
  ) {
    super(`${path}: ${problem}`);
    this.name = 'IdentityFileError';
  }
}

const systemFill: Pick<Random, 'fill'> = { fill: (out) => randomFillSync(out) };

function isErrno(err: unknown, code: string): boolean {
  return (err as { code?: unknown } | null)?.code === code;
}

/** Creates `dir` (and parents) with mode 0700 if missing; an existing directory is left as it is. */
function ensureStateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new Error(`state directory ${dir}: cannot create it: ${(err as Error).message}`);
  }
  if (!statSync(dir).isDirectory()) throw new Error(`state directory ${dir}: exists and is not a directory`);
}

/**
 * Writes `content` to `path` only if `path` does not exist yet, with `mode`, durably: a private
 * temporary file is written and fsynced, then hard-linked into place (link fails if another process
 * won the race). Returns false when the file already existed.
 */
function writeFileOnce(path: string, content: string, mode: number): boolean {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
    return true;
  } catch (err) {
    if (isErrno(err, 'EEXIST')) return false;
    throw err;
  } finally {
    unlinkSync(tmp);
  }
}

function readYamlMap(path: string): Record<string, unknown> {
  const text = readFileSync(path, 'utf8');
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new IdentityFileError(path, `is corrupt: not YAML (${(err as Error).message.split('\n')[0]}); move it away to generate a new one`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new IdentityFileError(path, 'is corrupt: not a YAML mapping; move it away to generate a new one');
  }
  return doc as Record<string, unknown>;
}

/** The node's persistent WireGuard key pair, as read from (or just written to) the identity file. */
export interface WireGuardIdentity {
  privateKey: PrivateKey;
  publicKey: PublicKey;
  /** Standard base64 (44 characters), as peers see it. */
  publicKeyBase64: string;
  /** The identity file. */
  path: string;
  /** True when this call generated the key pair and wrote the file. */
  created: boolean;
}

/**
 * Refuses a file that holds secrets or private state when it is open to others, as `wg` warns about
 * world-accessible keys: `mask` 0o077 (group or others; state files kubespand writes 0600 itself) or
 * 0o007 (others; config files an operator may share with a group). Throws IdentityFileError naming
 * the path, the mode, what it holds and the fix.
 */
export function refuseOpenMode(path: string, holds: string, mask: 0o077 | 0o007 = 0o077): void {
  const mode = statSync(path).mode & 0o777;
  if ((mode & mask) !== 0) {
    throw new IdentityFileError(
      path,
      `mode ${mode.toString(8).padStart(4, '0')} lets ${mask === 0o077 ? 'group or others' : 'others'} read ${holds}; refusing to use it (fix with: chmod 600 ${path})`,
    );
  }
}

function checkPrivateMode(path: string): void {
  refuseOpenMode(path, 'the KubeSpan private key');
}

function loadIdentityFile(path: string): WireGuardIdentity {
  checkPrivateMode(path);
  const doc = readYamlMap(path);
  if (typeof doc.privateKey !== 'string') {
    throw new IdentityFileError(path, 'is corrupt: privateKey is missing or not a string; move it away to generate a new key pair');
  }
  let privateKey: PrivateKey;
  try {
    privateKey = clampPrivateKey(keyFromBase64(doc.privateKey, 'privateKey'));
  } catch (err) {
    throw new IdentityFileError(path, `is corrupt: ${(err as Error).message}`);
  }
  const derived = asPublicKey(nodeCrypto.publicKey(privateKey));
  const publicKeyBase64 = keyToBase64(derived);
  if (doc.publicKey !== publicKeyBase64) {
    throw new IdentityFileError(
      path,
      typeof doc.publicKey === 'string' ? 'is corrupt: publicKey does not match privateKey' : 'is corrupt: publicKey is missing or not a string',
    );
  }
  for (const key of ['address', 'subnet'] as const) {
    const v = doc[key];
    if (v !== undefined && v !== null && typeof v !== 'string') throw new IdentityFileError(path, `is corrupt: ${key} is not a string`);
  }
  return { privateKey, publicKey: derived, publicKeyBase64, path, created: false };
}

/**
 * Loads `<stateDir>/kubespan-identity.yaml`, or generates a clamped Curve25519 key pair and writes
 * it (mode 0600; the directory is created 0700) when the file does not exist. Refuses a file that
 * group or others can read and a corrupt file, with an error naming the path.
 */
export function loadOrCreateIdentity(stateDir: string, random: Pick<Random, 'fill'> = systemFill): WireGuardIdentity {
  ensureStateDir(stateDir);
  const path = join(stateDir, KUBESPAN_IDENTITY_FILE);
  try {
    return loadIdentityFile(path);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
  // generate: random 32 bytes, clamped (wgtypes.GeneratePrivateKey)
  const raw = random.fill(new Uint8Array(32));
  const privateKey = clampPrivateKey(raw);
  raw.fill(0);
  const publicKey = asPublicKey(nodeCrypto.publicKey(privateKey));
  const publicKeyBase64 = keyToBase64(publicKey);
  // same keys as Talos; address and subnet are recomputed on every start, so they stay empty here
  const text = stringifyYaml({ address: '', subnet: '', privateKey: keyToBase64(privateKey), publicKey: publicKeyBase64 });
  if (!writeFileOnce(path, text, 0o600)) return loadIdentityFile(path); // another process won the race
  return { privateKey, publicKey, publicKeyBase64, path, created: true };
}

// ---- Node id ----

const BASE62_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * Big-integer base62 (alphabet 0-9A-Za-z, most significant digit first), left-padded with '0' to
 * the length of the largest value of that many bytes: 32 bytes → always 43 characters. This is
 * not jxskiss/base62's bit-packing variant; a node id is an opaque string to every reader.
 */
export function base62Encode(bytes: Uint8Array): string {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  let out = '';
  while (n > 0n) {
    out = BASE62_ALPHABET[Number(n % 62n)]! + out;
    n /= 62n;
  }
  const width = Math.ceil((bytes.length * 8) / Math.log2(62));
  return out.padStart(width, '0');
}

const NODE_ID_TEXT = /^[\x21-\x7e]{1,256}$/;

/**
 * Loads `<stateDir>/node-identity.yaml` (key `nodeId`) or generates a node id (base62 of 32 random
 * bytes, 43 characters) and writes it (mode 0600). A corrupt file is an error naming the path.
 */
export function loadOrCreateNodeId(stateDir: string, random: Pick<Random, 'fill'> = systemFill): { nodeId: string; path: string; created: boolean } {
  ensureStateDir(stateDir);
  const path = join(stateDir, NODE_IDENTITY_FILE);
  const load = (): string => {
    const doc = readYamlMap(path);
    const id = doc.nodeId;
    if (typeof id !== 'string' || !NODE_ID_TEXT.test(id)) {
      throw new IdentityFileError(path, 'is corrupt: nodeId must be 1–256 printable characters without spaces; move it away to generate a new one');
    }
    refuseOpenMode(path, "this node's identity");
    return id;
  };
  try {
    return { nodeId: load(), path, created: false };
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
  const nodeId = base62Encode(random.fill(new Uint8Array(NODE_ID_RANDOM_BYTES)));
  if (!writeFileOnce(path, stringifyYaml({ nodeId }), 0o600)) return { nodeId: load(), path, created: false };
  return { nodeId, path, created: true };
}
