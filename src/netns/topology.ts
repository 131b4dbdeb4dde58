/**
 * Network-namespace topology helpers, shared by the netns tests and `kubespand demo`. Every namespace, veth and child process a test creates is
 * recorded in a Topology and removed by `destroy()`, which tests call from afterAll/finally so a failing
 * test still cleans up. Names carry a caller-chosen prefix plus the pid, so parallel engineers and CI
 * runs never touch each other's namespaces.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export function assertRoot(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error('network namespace tests need root (they create netns, veth and TUN devices); run the README test command as root');
  }
}

export function sh(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): string {
  try {
    return execFileSync(cmd, args, {
      encoding: 'utf8',
      input: opts.input,
      timeout: opts.timeoutMs ?? 30_000,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(e.stderr || e.stdout || e.message).trim()}`);
  }
}

export interface Spawned {
  child: ChildProcess;
  output(): string;
  /** Resolves when the output matches, rejects on exit or timeout. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  exited(): Promise<number | null>;
}

export class Topology {
  readonly namespaces: string[] = [];
  private readonly children: Spawned[] = [];
  private readonly cleanups: (() => void | Promise<void>)[] = [];
  readonly tag: string;

  constructor(readonly prefix: string) {
    assertRoot();
    this.tag = `${prefix}${process.pid % 100000}`;
  }

  /** Creates `<prefix><pid>-<name>` with loopback up and returns its name. */
  netns(name: string): string {
    const ns = `${this.tag}-${name}`;
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      /* not there: fine */
    }
    sh('ip', ['netns', 'add', ns]);
    this.namespaces.push(ns);
    this.exec(ns, 'ip', ['link', 'set', 'lo', 'up']);
    return ns;
  }

  /** A veth pair between two namespaces with the given addresses (CIDR), both up. */
  veth(nsA: string, addrA: string[], nsB: string, addrB: string[], opts: { mtu?: number } = {}): { ifA: string; ifB: string } {
    const id = Math.random().toString(36).slice(2, 7);
    const ifA = `va${id}`;
    const ifB = `vb${id}`;
    sh('ip', ['link', 'add', ifA, 'netns', nsA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB]);
    for (const [ns, ifn, addrs] of [[nsA, ifA, addrA], [nsB, ifB, addrB]] as const) {
      for (const a of addrs) this.exec(ns, 'ip', ['addr', 'add', a, 'dev', ifn, ...(a.includes(':') ? ['nodad'] : [])]);
      if (opts.mtu) this.exec(ns, 'ip', ['link', 'set', ifn, 'mtu', String(opts.mtu)]);
      this.exec(ns, 'ip', ['link', 'set', ifn, 'up']);
    }
    return { ifA, ifB };
  }

  exec(ns: string, cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): string {
    return sh('ip', ['netns', 'exec', ns, cmd, ...args], opts);
  }

  /** Starts a long-running process inside `ns`; it is killed by destroy(). */
  spawn(ns: string, cmd: string, args: string[], opts: SpawnOptions = {}): Spawned {
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let exitCode: number | null | undefined;
    void exit.then((c) => (exitCode = c));
    const spawned: Spawned = {
      child,
      output: () => out,
      exited: () => exit,
      waitFor: (pattern, timeoutMs = 15_000) =>
        new Promise<void>((resolve, reject) => {
          const started = Date.now();
          const check = (): void => {
            if (pattern.test(out)) return resolve();
            if (exitCode !== undefined) return reject(new Error(`${cmd} exited (${exitCode}) before ${pattern}: ${out.slice(-2000)}`));
            if (Date.now() - started > timeoutMs) return reject(new Error(`timeout waiting for ${pattern} from ${cmd}: ${out.slice(-2000)}`));
            setTimeout(check, 50);
          };
          check();
        }),
      stop: async (signal = 'SIGTERM', timeoutMs = 5_000) => {
        if (exitCode !== undefined) return exitCode;
        child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        const code = await exit;
        clearTimeout(timer);
        return code;
      },
    };
    this.children.push(spawned);
    return spawned;
  }

  onDestroy(fn: () => void | Promise<void>): void {
    this.cleanups.push(fn);
  }

  async destroy(): Promise<void> {
    for (const c of this.children.reverse()) {
      try {
        await c.stop('SIGTERM', 3_000);
      } catch {
        /* keep cleaning */
      }
    }
    for (const fn of this.cleanups.reverse()) {
      try {
        await fn();
      } catch {
        /* keep cleaning */
      }
    }
    for (const ns of this.namespaces.reverse()) {
      // kill anything still running inside the namespace, then delete it
      try {
        const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split(/\s+/).filter(Boolean);
        for (const pid of pids) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      } catch {
        /* ns gone */
      }
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        /* gone */
      }
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `fn` until it returns a truthy value or throws the last error after `timeoutMs`. */
export async function eventually<T>(fn: () => T | Promise<T>, timeoutMs = 20_000, intervalMs = 200): Promise<Exclude<T, false | null | undefined | 0 | ''>> {
  const started = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as Exclude<T, false | null | undefined | 0 | ''>;
      last = new Error('condition not met');
    } catch (err) {
      last = err;
    }
    if (Date.now() - started > timeoutMs) throw last instanceof Error ? last : new Error(String(last));
    await sleep(intervalMs);
  }
}
