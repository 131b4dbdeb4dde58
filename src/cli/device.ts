/**
 * `kubespand device [-f|--foreground] <ifname>`: a drop-in for `wireguard-go -f <ifname>`. Creates the
 * TUN, serves the UAPI socket, stays in the foreground and exits cleanly on SIGINT/SIGTERM, when the
 * TUN disappears or when the UAPI socket file is deleted (spec/wireguard.md §10). WG_TUN_FD and
 * WG_UAPI_FD are honoured as by wireguard-go. Logs are pino JSON on stderr; LOG_LEVEL takes
 * wireguard-go's words (verbose/debug, error, silent) or pino's level names.
 */
import { createLogger } from '../log.js';
import { startDevice, stopOnSignals } from '../device/runtime.js';
import type { Command } from './main.js';

const USAGE = 'usage: kubespand device [-f|--foreground] <interface-name>';

function envFd(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v)) throw new Error(`${name}: not a file descriptor number (got "${v}")`);
  return Number(v);
}

export const deviceCommand: Command = {
  summary: 'userspace WireGuard device (drop-in for wireguard-go -f)',
  async run(argv) {
    const args = argv.filter((a) => a !== '-f' && a !== '--foreground');
    if (args.includes('-h') || args.includes('--help')) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    if (args.length !== 1 || args[0]!.startsWith('-')) {
      process.stderr.write(USAGE + '\n');
      return 2;
    }
    const ifname = args[0]!;
    const log = createLogger({ name: 'kubespand-device' });
    const tunFd = envFd('WG_TUN_FD');
    const uapiFd = envFd('WG_UAPI_FD');
    let running;
    try {
      running = await startDevice({ ifname, log, ...(tunFd !== undefined ? { tunFd } : {}), ...(uapiFd !== undefined ? { uapiFd } : {}) });
    } catch (err) {
      log.error({ err: err instanceof Error ? err.message : String(err) }, 'failed to start device');
      process.stderr.write(`kubespand device ${ifname}: ${err instanceof Error ? err.message : String(err)}\n`);
      return 1;
    }
    const unhook = stopOnSignals(running);
    const reason = await running.stopped;
    unhook();
    log.info({ reason }, 'device stopped');
    return 0;
  },
};
