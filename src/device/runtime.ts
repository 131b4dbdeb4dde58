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
import { WarmPair, warmUpDataPath, type WarmupReport } from './warmup.js';
import { KEEPWARM_WINDOW_MS, keepWarmPeriodFromEnv, keepWarmStep, keepWarmWake } from './keep-warm.js';
import { describeDatapath } from '../native-datapath.js';
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
  /**
   * Warm the data path up (see warmup.ts): 'initial' runs a short warm-up before the UAPI socket
   * opens; 'full' adds a longer one in the background; 'off' none. Default: the environment's
   * KUBESPAND_WARMUP (0/off, initial, full), else 'initial'. Measured with bench/latency.ts (7 fresh
   * tunnels each, medians): first reply 14 ms with either vs 21 ms off; the background phase bought
   * no ping improvement and delayed start->reply by ~400 ms (it competes with start-up and
   * configuration), so it is not the default.
   */
  warmup?: 'off' | 'initial' | 'full';
  /**
   * Keep-warm tick period in ms while live traffic flows (keep-warm.ts), null for none. Default: the
   * environment's KUBESPAND_KEEPWARM ("off", "on" = 3 ms, or 1-1000 ms), else off.
   */
  keepWarmMs?: number | null;
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
  // settings from the environment are checked before anything is created
  const warmMode = opts.warmup ?? warmupFromEnv(process.env.KUBESPAND_WARMUP);
  const keepWarmMs = opts.keepWarmMs !== undefined ? opts.keepWarmMs : keepWarmPeriodFromEnv(process.env.KUBESPAND_KEEPWARM);
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
  const packetsHaveRoom = tun.packetsHaveRoom === true;
  const warm = warmMode !== 'off';
  try {
    await device.start(opts.listenPort ?? 0);
    if (warm) {
      // before anyone can configure the device: a few handshakes and packets each way, so the first real
      // handshake does not pay for compiling every function it calls (~15-20 ms on the bench host).
      // 6 handshakes + 512 packets: first reply 6.6 ms vs 9.0 with 2 + 128, and 12 + 1024 was no better
      // (bench/latency.ts, 5 tunnels per row, bench/results/2026-11-26T19-10-50Z-latency.json)
      const crypto = device.core.crypto;
      reportWarmup(log, crypto.name, 'initial', await warmUpDataPath({ crypto, clock: systemClock, random: systemRandom, mtu, packetsHaveRoom, handshakes: 6, packets: 512, sliceMs: 1000 }));
    }
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
  log.info({ uapi: uapi.path, datapath: describeDatapath() }, 'UAPI listening');
  if (warmMode === 'full') {
    // the rest of the warm-up (enough calls for V8 to optimise the hot functions) in the background,
    // in 1 ms slices so that live packets wait at most that long
    const crypto = device.core.crypto;
    void warmUpDataPath({ crypto, clock: systemClock, random: systemRandom, mtu, packetsHaveRoom, sliceMs: 1, cancelled: () => stopping !== null })
      .then((r) => reportWarmup(log, crypto.name, 'background', r))
      .catch((err: unknown) => log.error({ err: err instanceof Error ? err.message : String(err) }, 'data-path warm-up failed'));
  }
  if (keepWarmMs !== null) startKeepWarm(device, new WarmPair({ crypto: device.core.crypto, clock: systemClock, random: systemRandom, mtu, packetsHaveRoom }), keepWarmMs, log);
  return { device, uapi, stopped, stop };
}

/**
 * The keep-warm timer (keep-warm.ts decides): armed by live traffic (the device's next-activity
 * callback), it ticks every `periodMs` until the window since the last live packet has passed, then
 * goes away until the next live packet. A tick whose packet comes out changed is logged (a broken
 * crypto provider) and ends keep-warm; so does a tick that throws.
 */
function startKeepWarm(device: WireguardDevice, pair: WarmPair, periodMs: number, log: Logger): void {
  const traffic = (): number => device.stats.packetsFromTun + device.stats.datagramsIn;
  let state = keepWarmWake(-Infinity, traffic());
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  const idle = (): void => {
    if (timer) clearInterval(timer);
    timer = null;
    if (!stopped) device.onNextActivity(wake);
  };
  const stop = (): void => {
    stopped = true;
    if (timer) clearInterval(timer);
    timer = null;
  };
  function wake(): void {
    if (stopped) return;
    state = keepWarmWake(systemClock.now(), traffic());
    timer = setInterval(fire, periodMs);
    timer.unref();
  }
  function fire(): void {
    const d = keepWarmStep(state, systemClock.now(), traffic());
    if (d.tick && !tickLogged()) return stop();
    if (!d.keep) idle();
  }
  /** One tick; false (logged) when it threw or its packet came out changed. */
  function tickLogged(): boolean {
    try {
      if (pair.tick()) return true;
      log.error({ provider: device.core.crypto.name }, 'keep-warm: a packet came out changed; the crypto provider is broken; keep-warm stopped');
    } catch (err) {
      log.error({ err: err instanceof Error ? err.message : String(err) }, 'keep-warm tick failed; keep-warm stopped');
    }
    return false;
  }
  idle();
  device.onClose(stop);
  log.debug({ periodMs, windowMs: KEEPWARM_WINDOW_MS }, 'keep-warm armed');
}

function warmupFromEnv(value: string | undefined): 'off' | 'initial' | 'full' {
  if (value === undefined || value === '' || value === 'initial' || value === '1') return 'initial';
  if (value === '0' || value === 'off') return 'off';
  if (value === 'full') return 'full';
  throw new Error(`KUBESPAND_WARMUP: expected off, initial or full (or 0/1), got ${JSON.stringify(value)}`);
}

function reportWarmup(log: Logger, provider: string, phase: string, r: WarmupReport): void {
  if (r.mismatches > 0) log.error({ provider, phase, ...r }, 'data-path warm-up: packets came out changed; the crypto provider is broken');
  else log.debug({ provider, phase, ...r }, 'data path warmed up');
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
