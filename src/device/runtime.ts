/**
 * Composition of a running WireGuard device: TUN + UDP bind + DeviceCore loop + UAPI socket, and an
 * orderly shutdown that removes the TUN and the socket. Shared by `kubespand device` and `kubespand up`.
 */
import { openLinuxTun, tunFromFd } from '../tun/tun-linux.js';
import { UdpBind } from '../bind/udp-bind.js';
import { bestCrypto } from '../noise/crypto-native.js';
import { DEFAULT_MTU } from '../noise/constants.js';
import { startUapiServer, type UapiServer } from '../uapi/server.js';
import type { UapiLog } from '../uapi/types.js';
import { systemClock, systemRandom } from './system.js';
import { WireguardDevice } from './wireguard-device.js';
import type { Logger } from '../log.js';

export interface RunningDevice {
  device: WireguardDevice;
  uapi: UapiServer;
  /** Resolves with the reason when the device stops (signal, TUN gone, UAPI socket deleted). */
  stopped: Promise<string>;
  stop(reason: string): Promise<void>;
}

export interface StartDeviceOptions {
  ifname: string;
  mtu?: number;
  log: Logger;
  listenPort?: number;
  /** wireguard-go's WG_TUN_FD / WG_UAPI_FD. */
  tunFd?: number;
  uapiFd?: number;
  uapiDir?: string;
}

function uapiLog(log: Logger): UapiLog {
  return {
    debug: (msg) => log.debug({ component: 'uapi' }, msg),
    warn: (msg) => log.warn({ component: 'uapi' }, msg),
    error: (msg) => log.error({ component: 'uapi' }, msg),
  };
}

export async function startDevice(opts: StartDeviceOptions): Promise<RunningDevice> {
  const mtu = opts.mtu ?? DEFAULT_MTU;
  const tun = opts.tunFd !== undefined ? tunFromFd(opts.tunFd, opts.ifname, mtu) : openLinuxTun(opts.ifname, { mtu });
  const ifname = tun.name;
  const log = opts.log.child({ interface: ifname });
  // (the child binding names the interface; messages below do not repeat it)
  const bind = new UdpBind();
  const device = new WireguardDevice({ name: ifname, tun, bind, crypto: bestCrypto(), clock: systemClock, random: systemRandom, log });
  let resolveStopped!: (reason: string) => void;
  const stopped = new Promise<string>((r) => (resolveStopped = r));
  let uapi: UapiServer | null = null;
  let stopping: Promise<void> | null = null;
  const stop = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      log.info({ reason }, 'shutting down');
      await uapi?.close().catch(() => undefined);
      await device.close(reason);
      resolveStopped(reason);
    })();
    return stopping;
  };
  device.onClose((reason) => void stop(reason));
  try {
    await device.start(opts.listenPort ?? 0);
    uapi = await startUapiServer(ifname, device, {
      log: uapiLog(log),
      onGone: () => void stop('UAPI socket removed'),
      ...(opts.uapiFd !== undefined ? { fd: opts.uapiFd } : {}),
      ...(opts.uapiDir !== undefined ? { dir: opts.uapiDir } : {}),
    });
  } catch (err) {
    await device.close('start failed');
    throw err;
  }
  log.info({ uapi: uapi.path }, 'UAPI listening');
  return { device, uapi, stopped, stop };
}

/** Stops the device on SIGINT/SIGTERM; returns a function that removes the handlers. */
export function stopOnSignals(running: { stop(reason: string): Promise<void> }): () => void {
  const handler = (signal: NodeJS.Signals): void => void running.stop(`received ${signal}`);
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}
