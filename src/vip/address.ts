/**
 * Putting the virtual IP on a link and taking it off, and telling the segment who has it now.
 *
 * - IPv4: `ip addr add <vip>/32 dev <link>`, then a gratuitous ARP (`arping -U`: an ARP request
 *   whose sender and target are the VIP, from the link's MAC) so neighbours replace the old
 *   owner's MAC in their caches at once instead of after their entry goes stale.
 * - IPv6: the link's `net.ipv6.conf.<link>.ndisc_notify` is set to 1 (the old value is restored on
 *   release) and `<vip>/128` is added with duplicate address detection; when DAD completes the
 *   kernel itself sends an unsolicited neighbour advertisement (override flag set) to all-nodes.
 *   DAD also keeps a second holder from using the address if two ever overlapped.
 *
 * The VIP is added as a host route (/32, /128) as Talos does, so it never becomes the source of the
 * link's subnet route.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import type { Logger } from '../log.js';

export interface VipAddress {
  /** Adds the address to the link (fine if present) and announces it. */
  add(): Promise<void>;
  /** Removes the address (fine if absent). */
  remove(): Promise<void>;
  /** Whether the link carries the address now. */
  present(): Promise<boolean>;
}

export type CommandRunner = (cmd: string, args: string[]) => Promise<string>;

export const runCommand: CommandRunner = (cmd, args) =>
  new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) {
        const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
        reject(new Error(`${cmd} ${args.join(' ')}: ${missing ? `${cmd} is not installed` : (stderr || err.message).trim()}`));
        return;
      }
      resolve(stdout);
    });
  });

export class LinuxVipAddress implements VipAddress {
  private readonly v6: boolean;
  private readonly cidr: string;
  private savedNdiscNotify: string | undefined;
  private announcer: ChildProcess | null = null;

  constructor(
    readonly ip: string,
    readonly link: string,
    private readonly log: Logger,
    private readonly run: CommandRunner = runCommand,
  ) {
    this.v6 = isIPv6(ip);
    this.cidr = `${ip}/${this.v6 ? 128 : 32}`;
  }

  private sysctlPath(): string {
    return `/proc/sys/net/ipv6/conf/${this.link}/ndisc_notify`;
  }

  async add(): Promise<void> {
    if (this.v6) {
      try {
        const path = this.sysctlPath();
        this.savedNdiscNotify ??= readFileSync(path, 'utf8').trim();
        writeFileSync(path, '1');
      } catch (err) {
        this.log.warn({ link: this.link, err: (err as Error).message }, 'cannot enable ndisc_notify: the VIP is not announced with an unsolicited neighbour advertisement');
      }
    }
    try {
      await this.run('ip', ['addr', 'add', this.cidr, 'dev', this.link]);
    } catch (err) {
      if (!/File exists/.test((err as Error).message)) throw err;
    }
    if (!this.v6) this.announce();
  }

  /** Gratuitous ARP in the background (arping -U sends one a second); failures are logged. */
  private announce(): void {
    this.announcer?.kill();
    const child = spawn('arping', ['-U', '-c', '2', '-I', this.link, this.ip], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.announcer = child;
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => this.log.warn({ err: e.message }, 'gratuitous ARP failed (is iputils-arping installed?)'));
    child.on('exit', (code, signal) => {
      if (this.announcer === child) this.announcer = null;
      if (code !== 0 && signal === null) this.log.warn({ code, err: err.trim() }, 'gratuitous ARP failed');
    });
  }

  async remove(): Promise<void> {
    this.announcer?.kill();
    this.announcer = null;
    try {
      await this.run('ip', ['addr', 'del', this.cidr, 'dev', this.link]);
    } catch (err) {
      if (!/Cannot assign requested address|Cannot find device/.test((err as Error).message)) throw err;
    }
    if (this.v6 && this.savedNdiscNotify !== undefined) {
      try {
        writeFileSync(this.sysctlPath(), this.savedNdiscNotify);
      } catch {
        /* the link is gone */
      }
      this.savedNdiscNotify = undefined;
    }
  }

  async present(): Promise<boolean> {
    const out = await this.run('ip', ['-j', 'addr', 'show', 'dev', this.link]);
    const links = JSON.parse(out) as { addr_info?: { local?: string }[] }[];
    return links.some((l) => (l.addr_info ?? []).some((a) => a.local === this.ip));
  }
}
