/**
 * The local control socket (a UNIX stream socket, mode 0600): newline-delimited JSON requests and
 * one JSON reply line each. Used by `kubespand get|status|leave|reload`. Requests:
 *   {"op":"get","kind":"kubespanpeerstatuses"}   {"op":"status"}   {"op":"leave"}   {"op":"reload"}
 * Replies: {"ok":true,...} or {"ok":false,"error":"..."}. A request line over 64 KiB closes the connection.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { chmodSync, mkdirSync, unlinkSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';

export const RESOURCE_KINDS = ['kubespanidentities', 'kubespanpeerspecs', 'kubespanpeerstatuses', 'kubespanendpoints', 'affiliates', 'vip'] as const;
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

/** Short names users type, as talosctl accepts (singular, plural, abbreviations). */
const ALIASES: Record<string, ResourceKind> = {
  kubespanidentity: 'kubespanidentities',
  kubespanidentities: 'kubespanidentities',
  ksi: 'kubespanidentities',
  kubespanpeerspec: 'kubespanpeerspecs',
  kubespanpeerspecs: 'kubespanpeerspecs',
  kubespanpeerstatus: 'kubespanpeerstatuses',
  kubespanpeerstatuses: 'kubespanpeerstatuses',
  kubespanendpoint: 'kubespanendpoints',
  kubespanendpoints: 'kubespanendpoints',
  affiliate: 'affiliates',
  affiliates: 'affiliates',
  vip: 'vip',
  vips: 'vip',
};

export function resolveKind(name: string): ResourceKind | undefined {
  // own keys only: "constructor" or "__proto__" must not resolve to Object.prototype's members
  const key = name.toLowerCase();
  return Object.hasOwn(ALIASES, key) ? ALIASES[key] : undefined;
}

export interface ControlHandlers {
  get(kind: ResourceKind): unknown[];
  status(): unknown;
  leave(): Promise<void>;
  reload(): Promise<unknown>;
}

const MAX_LINE = 64 * 1024;

export async function handleControlRequest(line: string, h: ControlHandlers): Promise<Record<string, unknown>> {
  let req: { op?: unknown; kind?: unknown };
  try {
    req = JSON.parse(line) as { op?: unknown; kind?: unknown };
  } catch {
    return { ok: false, error: 'request is not JSON' };
  }
  if (typeof req !== 'object' || req === null) return { ok: false, error: 'request must be a JSON object' };
  try {
    switch (req.op) {
      case 'get': {
        const kind = typeof req.kind === 'string' ? resolveKind(req.kind) : undefined;
        if (!kind) return { ok: false, error: `unknown resource kind ${JSON.stringify(req.kind)} (one of ${RESOURCE_KINDS.join(', ')})` };
        return { ok: true, kind, items: h.get(kind) };
      }
      case 'status':
        return { ok: true, status: h.status() };
      case 'leave':
        await h.leave();
        return { ok: true };
      case 'reload':
        return { ok: true, result: await h.reload() };
      default:
        return { ok: false, error: `unknown op ${JSON.stringify(req.op)} (get, status, leave, reload)` };
    }
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}

export interface ControlServer {
  path: string;
  close(): Promise<void>;
}

export async function startControlServer(path: string, h: ControlHandlers): Promise<ControlServer> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  if (existsSync(path)) {
    // a live daemon answers; a stale socket from a crash is replaced
    const alive = await new Promise<boolean>((resolve) => {
      const s = createConnection(path);
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (alive) throw new Error(`control socket ${path} is in use by another kubespand`);
    unlinkSync(path);
  }
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    let buf = '';
    let chain = Promise.resolve();
    sock.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      if (buf.length > MAX_LINE && !buf.includes('\n')) {
        sock.end(JSON.stringify({ ok: false, error: 'request too long' }) + '\n');
        return;
      }
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim() === '') continue;
        chain = chain.then(async () => {
          const reply = await handleControlRequest(line, h);
          if (!sock.destroyed) sock.write(JSON.stringify(reply) + '\n');
        });
      }
    });
  });
  const oldMask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
  } finally {
    process.umask(oldMask);
  }
  chmodSync(path, 0o600);
  return {
    path,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      try {
        unlinkSync(path);
      } catch {
        /* gone */
      }
    },
  };
}

/** Sends one request to a running daemon and returns its reply. */
export async function controlRequest(path: string, request: Record<string, unknown>, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer from ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new Error(err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? `kubespand is not running (no control socket at ${path})` : `control socket ${path}: ${err.message}`));
    });
    sock.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        sock.end();
        try {
          resolve(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
        } catch {
          reject(new Error('control socket sent a reply that is not JSON'));
        }
      }
    });
    sock.write(JSON.stringify(request) + '\n');
  });
}
