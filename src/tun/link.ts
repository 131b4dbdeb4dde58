/**
 * Link, address and route configuration through iproute2 (`ip`, run with execFile: no shell, so no
 * quoting issues). Every call is idempotent where the kernel allows it, and every error names the
 * interface, the step and the value, e.g. `link kst0: adding address 10.1.2.3/24 failed: <ip's stderr>`.
 */
import { execFile, execFileSync } from 'node:child_process';
import { isIPv4, isIPv6 } from 'node:net';

const IP_COMMAND = 'ip';
const IP_TIMEOUT_MS = 15_000;

/** Linux `dev_valid_name`: 1–15 bytes, not "." or "..", no '/', ':' or whitespace. */
export function validateIfname(ifname: string, field = 'interface'): void {
  if (
    typeof ifname !== 'string' ||
    ifname.length === 0 ||
    Buffer.byteLength(ifname) > 15 ||
    ifname === '.' ||
    ifname === '..' ||
    /[/:\s]/.test(ifname)
  ) {
    throw new Error(`${field}: "${String(ifname)}" is not a valid interface name (1-15 bytes, no '/', ':' or spaces)`);
  }
}

/** Strict CIDR text check: numeric address, prefix within the family's width. */
export function validateCidr(cidr: string, field = 'cidr'): { address: string; prefix: number; family: 4 | 6 } {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(typeof cidr === 'string' ? cidr : '');
  const address = m?.[1] ?? '';
  const prefix = Number(m?.[2]);
  const family = isIPv4(address) ? 4 : isIPv6(address) && !address.includes('%') ? 6 : 0;
  if (!m || family === 0 || prefix > (family === 4 ? 32 : 128)) {
    throw new Error(`${field}: "${String(cidr)}" is not a CIDR prefix like 10.1.2.3/24 or fd00::1/64`);
  }
  return { address, prefix, family };
}

function validateMtu(ifname: string, mtu: number): void {
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) {
    throw new Error(`link ${ifname}: mtu ${String(mtu)} is not an integer in [68, 65535]`);
  }
}

class IpCommandError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

function failure(ifname: string, step: string, value: string, stderr: string): IpCommandError {
  const detail = stderr.trim() || 'no output';
  return new IpCommandError(`link ${ifname}: ${step}${value ? ' ' + value : ''} failed: ${detail}`, detail);
}

/** Runs `ip args…`; resolves with stdout, or rejects with the named error unless `tolerated(stderr)`. */
function runIp(ifname: string, step: string, value: string, args: string[], opts: NetnsOption, tolerated?: RegExp): Promise<{ stdout: string; tolerated: boolean }> {
  return new Promise((resolve, reject) => {
    execFile(IP_COMMAND, withNetns(args, opts), { timeout: IP_TIMEOUT_MS, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve({ stdout, tolerated: false });
      const text = stderr || (err as Error).message;
      if (tolerated?.test(text)) return resolve({ stdout, tolerated: true });
      reject(failure(ifname, step, value, text));
    });
  });
}

/** Every call can target another network namespace by name (`ip -n NAME`), e.g. from tests. */
export interface NetnsOption {
  netns?: string;
}

function withNetns(args: string[], opts: NetnsOption): string[] {
  if (opts.netns === undefined) return args;
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(opts.netns)) throw new Error(`netns: "${opts.netns}" is not a namespace name`);
  return ['-n', opts.netns, ...args];
}

const NO_DEVICE = /does not exist|Cannot find device/i;

/** Sets the interface MTU. */
export async function setLinkMtu(ifname: string, mtu: number, opts: NetnsOption = {}): Promise<void> {
  validateIfname(ifname);
  validateMtu(ifname, mtu);
  await runIp(ifname, 'setting mtu', String(mtu), ['link', 'set', 'dev', ifname, 'mtu', String(mtu)], opts);
}

/** Synchronous MTU change, for opening a TUN (a constructor cannot await). */
export function setLinkMtuSync(ifname: string, mtu: number, opts: NetnsOption = {}): void {
  validateIfname(ifname);
  validateMtu(ifname, mtu);
  try {
    execFileSync(IP_COMMAND, withNetns(['link', 'set', 'dev', ifname, 'mtu', String(mtu)], opts), {
      timeout: IP_TIMEOUT_MS,
      stdio: ['ignore', 'pipe', 'pipe'],
      encoding: 'utf8',
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw failure(ifname, 'setting mtu', String(mtu), e.stderr || e.message);
  }
}

export async function setLinkUp(ifname: string, opts: NetnsOption = {}): Promise<void> {
  validateIfname(ifname);
  await runIp(ifname, 'setting link', 'up', ['link', 'set', 'dev', ifname, 'up'], opts);
}

export async function setLinkDown(ifname: string, opts: NetnsOption = {}): Promise<void> {
  validateIfname(ifname);
  await runIp(ifname, 'setting link', 'down', ['link', 'set', 'dev', ifname, 'down'], opts);
}

/** Adds an address (CIDR); an address that is already there is fine. */
export async function addAddress(ifname: string, cidr: string, opts: NetnsOption = {}): Promise<void> {
  validateIfname(ifname);
  const { family } = validateCidr(cidr, `link ${ifname}: address`);
  await runIp(ifname, 'adding address', cidr, [`-${family}`, 'addr', 'add', cidr, 'dev', ifname], opts, /File exists|already assigned/i);
}

/** Removes an address (CIDR); an address that is not there is fine. */
export async function delAddress(ifname: string, cidr: string, opts: NetnsOption = {}): Promise<void> {
  validateIfname(ifname);
  const { family } = validateCidr(cidr, `link ${ifname}: address`);
  await runIp(ifname, 'deleting address', cidr, [`-${family}`, 'addr', 'del', cidr, 'dev', ifname], opts, /Cannot assign requested address|not found/i);
}

/** The interface's addresses as CIDR text (all scopes, both families). */
export async function listAddresses(ifname: string, opts: NetnsOption = {}): Promise<string[]> {
  validateIfname(ifname);
  const { stdout } = await runIp(ifname, 'listing addresses', '', ['-j', 'addr', 'show', 'dev', ifname], opts);
  const links = JSON.parse(stdout || '[]') as { addr_info?: { local?: string; prefixlen?: number }[] }[];
  return links.flatMap((l) => (l.addr_info ?? []).filter((a) => a.local !== undefined).map((a) => `${a.local}/${a.prefixlen}`));
}

export interface RouteOptions extends NetnsOption {
  /** Routing table id or name (default main). */
  table?: number | string;
  metric?: number;
  mtu?: number;
  /** Preferred source address. */
  src?: string;
}

function routeArgs(ifname: string, verb: 'replace' | 'del', cidr: string, opts: RouteOptions): string[] {
  const { family } = validateCidr(cidr, `link ${ifname}: route`);
  const tail = [cidr, 'dev', ifname];
  if (opts.table !== undefined) {
    if (!/^[A-Za-z0-9_-]+$/.test(String(opts.table))) throw new Error(`link ${ifname}: route table "${String(opts.table)}" is not a table id or name`);
    tail.push('table', String(opts.table));
  }
  if (opts.metric !== undefined) {
    if (!Number.isInteger(opts.metric) || opts.metric < 0 || opts.metric > 0xffffffff) throw new Error(`link ${ifname}: route metric ${opts.metric} is not an integer in [0, 4294967295]`);
    tail.push('metric', String(opts.metric));
  }
  if (opts.mtu !== undefined) {
    validateMtu(ifname, opts.mtu);
    tail.push('mtu', String(opts.mtu));
  }
  if (opts.src !== undefined) {
    if (!(family === 4 ? isIPv4(opts.src) : isIPv6(opts.src))) throw new Error(`link ${ifname}: route src "${opts.src}" is not an IPv${family} address`);
    tail.push('src', opts.src);
  }
  return [`-${family}`, 'route', verb, ...tail];
}

/** Adds or updates a route through the interface (`ip route replace`, so repeating it is harmless). */
export async function addRoute(ifname: string, cidr: string, opts: RouteOptions = {}): Promise<void> {
  validateIfname(ifname);
  const args = routeArgs(ifname, 'replace', cidr, opts);
  await runIp(ifname, 'replacing route', describeRoute(cidr, opts), args, opts);
}

/** Deletes a route through the interface; a route (or interface) that is not there is fine. */
export async function delRoute(ifname: string, cidr: string, opts: Pick<RouteOptions, 'table' | 'metric' | 'netns'> = {}): Promise<void> {
  validateIfname(ifname);
  const args = routeArgs(ifname, 'del', cidr, opts);
  await runIp(ifname, 'deleting route', describeRoute(cidr, opts), args, opts, /No such process|No such file or directory|Cannot find device|does not exist/i);
}

function describeRoute(cidr: string, opts: RouteOptions): string {
  return [cidr, opts.table !== undefined ? `table ${opts.table}` : '', opts.metric !== undefined ? `metric ${opts.metric}` : ''].filter(Boolean).join(' ');
}

/** True when an interface of that name exists (in this network namespace). */
export async function linkExists(ifname: string, opts: NetnsOption = {}): Promise<boolean> {
  validateIfname(ifname);
  const { tolerated } = await runIp(ifname, 'looking up link', '', ['link', 'show', 'dev', ifname], opts, NO_DEVICE);
  return !tolerated;
}

export interface LinkInfo {
  name: string;
  index: number;
  mtu: number;
  /** Administratively up (IFF_UP). */
  up: boolean;
  operstate: string;
  flags: string[];
}

/** Reads the link's state (`ip -j link show`); undefined when it does not exist. */
export async function linkInfo(ifname: string, opts: NetnsOption = {}): Promise<LinkInfo | undefined> {
  validateIfname(ifname);
  const { stdout, tolerated } = await runIp(ifname, 'looking up link', '', ['-j', 'link', 'show', 'dev', ifname], opts, NO_DEVICE);
  if (tolerated) return undefined;
  const [l] = JSON.parse(stdout || '[]') as { ifname: string; ifindex: number; mtu: number; flags?: string[]; operstate?: string }[];
  if (!l) return undefined;
  const flags = l.flags ?? [];
  return { name: l.ifname, index: l.ifindex, mtu: l.mtu, up: flags.includes('UP'), operstate: l.operstate ?? 'UNKNOWN', flags };
}

/** Deletes the interface. Resolves true when it was deleted, false when it did not exist. */
export async function deleteLink(ifname: string, opts: NetnsOption = {}): Promise<boolean> {
  validateIfname(ifname);
  const { tolerated } = await runIp(ifname, 'deleting link', '', ['link', 'del', 'dev', ifname], opts, NO_DEVICE);
  return !tolerated;
}
