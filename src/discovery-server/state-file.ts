/**
 * The server's state file: protobuf `kubespand.discovery.storage.StateSnapshot` (proto/storage.proto)
 * holding encrypted blobs and remaining TTLs, written atomically (temp file 0600, fsync, rename) so
 * a crash never leaves a half-written file.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { discoveryTypes } from '../discovery/proto.js';
import { durationToMs, msToDuration } from '../discovery/wire.js';
import type { StateExport } from './state.js';

export interface StateFileContent {
  state: StateExport;
  /** Wall-clock Unix ms the snapshot was taken (0 if unknown). */
  takenAtMs: number;
}

export function encodeStateFile(state: StateExport, takenAtMs: number): Uint8Array {
  const message = {
    takenAtUnixMs: takenAtMs,
    clusters: state.clusters.map((c) => ({
      id: c.id,
      affiliates: c.affiliates.map((a) => ({
        id: a.id,
        data: a.data,
        remainingTtl: msToDuration(a.remainingMs),
        endpoints: a.endpoints.map((e) => ({ data: e.data, remainingTtl: msToDuration(e.remainingMs) })),
      })),
    })),
  };
  return discoveryTypes().StateSnapshot.encode(message).finish();
}

type Obj = Record<string, unknown>;
const list = (v: unknown): Obj[] => (Array.isArray(v) ? (v as Obj[]) : []);
const bytes = (v: unknown): Uint8Array => (v instanceof Uint8Array ? v : new Uint8Array(0));
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

export function decodeStateFile(buf: Uint8Array): StateFileContent {
  const m = discoveryTypes().StateSnapshot.decode(buf) as unknown as Obj;
  const taken = m['takenAtUnixMs'];
  const takenAtMs =
    typeof taken === 'number' ? taken : taken && typeof taken === 'object' && 'toNumber' in taken ? (taken as { toNumber(): number }).toNumber() : 0;
  return {
    takenAtMs,
    state: {
      clusters: list(m['clusters']).map((c) => ({
        id: str(c['id']),
        affiliates: list(c['affiliates']).map((a) => ({
          id: str(a['id']),
          data: bytes(a['data']),
          remainingMs: durationToMs(a['remainingTtl']) ?? 0,
          endpoints: list(a['endpoints']).map((e) => ({ data: bytes(e['data']), remainingMs: durationToMs(e['remainingTtl']) ?? 0 })),
        })),
      })),
    },
  };
}

/** Writes `content` to `path` atomically with mode 0600. */
export function writeFileAtomic(path: string, content: Uint8Array): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w', 0o600);
  try {
    let off = 0;
    while (off < content.length) off += writeSync(fd, content, off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  try {
    const dirFd = openSync(dirname(path), 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  } catch {
    // directory fsync is best effort (not supported everywhere)
  }
}

/** Reads a state file; undefined when it does not exist. Throws on a corrupt file. */
export function readStateFile(path: string): StateFileContent | undefined {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return decodeStateFile(buf);
  } catch (err) {
    throw new Error(`state file "${path}" is corrupt: ${err instanceof Error ? err.message : String(err)}`);
  }
}
