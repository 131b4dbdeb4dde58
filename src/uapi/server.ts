/**
 * The UAPI socket shell: `/var/run/wireguard/IFNAME.sock`, served as wireguard-go serves it
 * (spec/wireguard.md §11.1, §11.2, §10). All protocol logic is in `protocol.ts`.
 *
 * How the socket appears without a window in which anyone else can use it: we bind inside a fresh
 * private directory (`mkdtemp`, mode 0700) next to the final path, chmod the socket to 0700, and
 * then `rename` it onto `IFNAME.sock`. Until the rename nobody but root can even reach the
 * socket, whatever the process umask is, and the rename is atomic: `wg` sees either the old file
 * or ours. (`process.umask` is never touched: it is process-wide and not allowed in worker
 * threads.) A side benefit: libuv unlinks the path it bound when the server closes, and that path
 * is the temporary one, so closing never deletes a socket another process has put in our place;
 * `close()` unlinks `IFNAME.sock` itself, and only while it is still our inode.
 *
 * Stale sockets (§11.1): if `IFNAME.sock` exists we connect to it; success → "unix socket in use"
 * error; failure (ECONNREFUSED: the daemon died) → our socket replaces it.
 *
 * Like wireguard-go, the daemon must exit when its socket file is deleted (XPLAT). `onGone` fires
 * once when `IFNAME.sock` is deleted or replaced by another inode, found by watching the directory
 * (inotify via fs.watch) plus a slow stat poll as a backstop.
 */
import { constants as fsConstants, watch, type FSWatcher, type Stats } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, rename, rmdir, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { createUapiSession } from './protocol.js';
import { silentUapiLog, type UapiDevice, type UapiLog } from './types.js';

export const DEFAULT_UAPI_DIR = '/var/run/wireguard';
/** sockaddr_un.sun_path is 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;
const BACKSTOP_POLL_MS = 2_000;

export interface UapiServerOptions {
  /** Socket directory; default /var/run/wireguard (what `wg` is built with). */
  dir?: string;
  log?: UapiLog;
  /** Called once when the socket file is deleted or replaced; the daemon should then exit (§10). */
  onGone?: () => void;
  /**
   * An inherited, already bound listening socket (wireguard-go's WG_UAPI_FD). The socket file is
   * then assumed to be `dir/IFNAME.sock` as bound by the parent; nothing is created.
   */
  fd?: number;
}

export interface UapiServer {
  /** The socket path, `dir/IFNAME.sock`. */
  readonly path: string;
  /** Stops accepting, drops open connections and unlinks the socket (if it is still ours). */
  close(): Promise<void>;
}

/** Checks the interface name the way `wg` and Linux do (no '/', 1..15 bytes, no '.', '..', ':' or whitespace). */
export function checkInterfaceName(ifname: string): void {
  const bytes = Buffer.byteLength(ifname);
  if (bytes === 0 || bytes > 15) throw new Error(`interface name ${JSON.stringify(ifname)}: must be 1..15 bytes`);
  if (ifname === '.' || ifname === '..' || /[/:\s\0]/.test(ifname)) {
    throw new Error(`interface name ${JSON.stringify(ifname)}: must not be "." or ".." or contain '/', ':' or whitespace`);
  }
}

/** Resolves true when something accepts connections on `path`. */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection({ path });
    const done = (answered: boolean): void => {
      probe.removeAllListeners();
      probe.on('error', () => {});
      probe.destroy();
      resolve(answered);
    };
    probe.once('connect', () => done(true));
    probe.once('error', () => done(false));
  });
}

async function lstatOrNull(path: string): Promise<Stats | null> {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

function listen(server: Server, target: { path: string } | { fd: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(target, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** Creates `dir` with mode 0755 if missing (an existing directory keeps its mode, as in wireguard-go). */
async function ensureDirectory(dir: string): Promise<void> {
  const created = await mkdir(dir, { recursive: true, mode: 0o755 });
  // mkdir's mode is filtered by the umask; make a directory we created exactly 0755
  if (created !== undefined) await chmod(dir, 0o755);
}

/**
 * Serves the UAPI for `device` on `dir/IFNAME.sock`. Rejects with "unix socket in use" when a live
 * daemon already owns the name.
 */
export async function startUapiServer(ifname: string, device: UapiDevice, options: UapiServerOptions = {}): Promise<UapiServer> {
  checkInterfaceName(ifname);
  const dir = options.dir ?? DEFAULT_UAPI_DIR;
  const log = options.log ?? silentUapiLog;
  const socketName = `${ifname}.sock`;
  const path = join(dir, socketName);
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new Error(`UAPI socket path ${JSON.stringify(path)} is longer than ${MAX_SOCKET_PATH_BYTES} bytes`);
  }

  const connections = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: false }, (socket) => {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    serveConnection(socket, device, log);
  });
  server.on('error', (err) => log.error(`UAPI: listener error: ${err.message}`));

  if (options.fd !== undefined) {
    await listen(server, { fd: options.fd });
  } else {
    await ensureDirectory(dir);
    const existing = await lstatOrNull(path);
    if (existing !== null) {
      if (await socketAnswers(path)) throw new Error(`unix socket in use: ${path}`);
      log.warn(`UAPI: replacing stale socket ${path}`);
    }
    // bind in a private directory, then atomically move into place (see the file comment)
    const privateDir = await mkdtemp(join(dir, '.kubespand-'));
    const tempPath = join(privateDir, 's');
    try {
      if (Buffer.byteLength(tempPath) > MAX_SOCKET_PATH_BYTES) {
        throw new Error(`UAPI socket directory ${JSON.stringify(dir)} is too long for a temporary socket path`);
      }
      await listen(server, { path: tempPath });
      await chmod(tempPath, 0o700);
      await rename(tempPath, path);
    } catch (err) {
      server.close();
      throw err;
    } finally {
      await rmdir(privateDir).catch(() => undefined);
    }
  }

  const own = await lstatOrNull(path);
  const isOurs = (st: Stats | null): boolean =>
    st !== null && own !== null && st.ino === own.ino && st.dev === own.dev && (st.mode & fsConstants.S_IFMT) === fsConstants.S_IFSOCK;

  // ---- watch for deletion or replacement ----
  let closed = false;
  let gone = false;
  let checking = false;
  const check = async (): Promise<void> => {
    if (closed || gone || checking) return;
    checking = true;
    try {
      const st = await lstatOrNull(path).catch(() => null);
      if (!closed && !gone && !isOurs(st)) {
        gone = true;
        log.error(`UAPI: socket ${path} was ${st === null ? 'deleted' : 'replaced'}`);
        options.onGone?.();
      }
    } finally {
      checking = false;
    }
  };
  let watcher: FSWatcher | null = null;
  try {
    watcher = watch(dir, { persistent: false }, (_event, filename) => {
      if (filename === null || filename === socketName) void check();
    });
    watcher.on('error', () => void check());
  } catch (err) {
    log.warn(`UAPI: cannot watch ${dir} (${(err as Error).message}); polling only`);
  }
  const poll = setInterval(() => void check(), BACKSTOP_POLL_MS);
  poll.unref();
  // the socket may have gone between binding and watching
  void check();

  let closing: Promise<void> | null = null;
  return {
    path,
    close() {
      closing ??= (async () => {
        closed = true;
        clearInterval(poll);
        watcher?.close();
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const socket of connections) socket.destroy();
        await stopped;
        if (isOurs(await lstatOrNull(path).catch(() => null))) await unlink(path).catch(() => undefined);
      })();
      return closing;
    },
  };
}

/** Feeds one connection through a UAPI session; requests are handled in order, one at a time. */
function serveConnection(socket: Socket, device: UapiDevice, log: UapiLog): void {
  const session = createUapiSession(device, log);
  let pending: Promise<void> = Promise.resolve();
  const deliver = (result: { replies: string[]; close: boolean }): void => {
    if (socket.destroyed) return;
    for (const reply of result.replies) socket.write(reply);
    if (result.close) socket.end();
  };
  const fail = (err: unknown): void => {
    log.error(`UAPI: connection failed: ${(err as Error).message}`);
    socket.destroy();
  };
  socket.on('data', (chunk: Buffer) => {
    // back-pressure: read no more while this chunk's requests are being applied
    socket.pause();
    pending = pending
      .then(() => session.push(chunk))
      .then(deliver)
      .catch(fail)
      .finally(() => {
        if (!socket.destroyed) socket.resume();
      });
  });
  socket.on('end', () => {
    pending = pending.then(() => session.end()).then(deliver).catch(fail);
  });
  socket.on('error', (err) => {
    log.debug(`UAPI: connection error: ${err.message}`);
    socket.destroy();
  });
}
