/**
 * The optional data-path addon (`native/datapath.c` → `build/Release/kubespand_datapath.node`):
 * in-place ChaCha20-Poly1305 and X25519 through Node's own OpenSSL (and libsodium, opened at run time
 * when the system has it: small packets and X25519), and sendmmsg on a dgram socket's fd.
 * Loaded lazily; `tryLoadDatapath()` returns undefined (with the reason) when it is not built or
 * cannot load, and callers fall back to node:crypto and dgram.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface AeadHandle {
  readonly __brand: 'AeadHandle';
}

export interface DatapathAddon {
  aeadCreate(key: Uint8Array): AeadHandle;
  aeadSeal(handle: AeadHandle, counter: number, buf: Uint8Array, offset: number, length: number): boolean;
  aeadOpen(handle: AeadHandle, counter: number, buf: Uint8Array, offset: number, length: number): boolean;
  /** Datagrams sent (a prefix of the list), or -errno when none could be sent for a hard error. */
  udpSendBatch(fd: number, address: Uint8Array, port: number, datagrams: Uint8Array[]): number;
  /**
   * X25519 on raw keys into `out` (32 bytes): the shared secret with `publicKey` (all zeros for a
   * low-order point), or with null the public key of `privateKey`. False if OpenSSL failed otherwise.
   * Absent from an addon built before it existed.
   */
  x25519?(privateKey: Uint8Array, publicKey: Uint8Array | null, out: Uint8Array): boolean;
  /** Which libraries do the work (absent from an addon built before libsodium was used). */
  backends?(): DatapathBackends;
}

export interface DatapathBackends {
  /** libsodium's version when it does X25519 and the AEAD of packets below `sodiumAeadMax` bytes; else null. */
  libsodium: string | null;
  /** Why libsodium is not used (null when it is): not installed, or KUBESPAND_LIBSODIUM=0. */
  why: string | null;
  sodiumAeadMax: number;
}

let cached: { addon?: DatapathAddon; error?: string } | undefined;

export function tryLoadDatapath(): DatapathAddon | undefined {
  if (cached) return cached.addon;
  if (process.env.KUBESPAND_NO_DATAPATH_ADDON === '1') {
    cached = { error: 'disabled by KUBESPAND_NO_DATAPATH_ADDON=1' };
    return undefined;
  }
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'build', 'Release', 'kubespand_datapath.node');
    if (existsSync(candidate)) {
      try {
        cached = { addon: createRequire(import.meta.url)(candidate) as DatapathAddon };
      } catch (err) {
        cached = { error: err instanceof Error ? err.message : String(err) };
      }
      return cached.addon;
    }
    dir = dirname(dir);
  }
  cached = { error: 'kubespand_datapath.node not built (npm run build:native)' };
  return undefined;
}

/** One line for `kubespand version` and the start-up log: what moves and encrypts packets. */
export function describeDatapath(): string {
  const addon = tryLoadDatapath();
  if (!addon) return `data path: node:crypto and dgram (addon unavailable: ${cached?.error ?? 'unknown'})`;
  const b = addon.backends?.();
  if (!b) return 'data path: native addon, OpenSSL';
  return b.libsodium !== null
    ? `data path: native addon, libsodium ${b.libsodium} for X25519 and packets < ${b.sodiumAeadMax} B, OpenSSL for larger ones`
    : `data path: native addon, OpenSSL (libsodium not used: ${b.why ?? 'unknown'})`;
}

/** Why the addon is not in use (undefined when it is). */
export function datapathUnavailableReason(): string | undefined {
  tryLoadDatapath();
  return cached?.error;
}
