/**
 * `kubespand up --config <file.yaml>`: a static WireGuard device from a Talos-shaped YAML file. The
 * file is parsed and every endpoint resolved BEFORE anything on the host is touched; then the TUN is
 * created, the device configured, addresses added, the link brought up and a route installed for
 * every allowed IP not already covered by an interface address. Runs in the foreground until
 * SIGINT/SIGTERM; the TUN (and with it its addresses and routes) is removed on exit. `wg` works on
 * the device while it runs, as on `kubespand device`.
 */
import { parseArgs } from 'node:util';
import { parseWireguardConfigFile, resolveConfigEndpoint, ConfigError, type WireguardDeviceConfig } from '../config/wireguard-config.js';
import { formatIp, formatPrefix, maskPrefix } from '../noise/allowed-ips.js';
import { addAddress, addRoute, setLinkUp } from '../tun/link.js';
import { createLogger, type Logger } from '../log.js';
import { startDevice, stopOnSignals, type RunningDevice } from '../device/runtime.js';
import { refuseOpenMode } from '../kubespan/identity.js';
import { IpSet } from '../peer/ip-set.js';
import type { Command } from './main.js';

const USAGE = 'usage: kubespand up --config <file.yaml>';

/** Allowed IPs that need a route: not a default route, not inside an interface address's own subnet. */
export function routesFor(config: WireguardDeviceConfig): { routes: string[]; skipped: string[] } {
  const connected = IpSet.of(config.addresses.map((a) => maskPrefix(a)));
  const routes: string[] = [];
  const skipped: string[] = [];
  const seen = new Set<string>();
  for (const peer of config.wireguard.peers) {
    for (const p of peer.allowedIps) {
      const cidr = formatPrefix(p);
      if (seen.has(cidr)) continue;
      seen.add(cidr);
      if (p.bits === 0) {
        skipped.push(cidr);
        continue;
      }
      const covered = IpSet.of([p]).removeSet(connected).isEmpty;
      if (!covered) routes.push(cidr);
    }
  }
  return { routes, skipped };
}

async function configure(running: RunningDevice, config: WireguardDeviceConfig, endpoints: ({ address: string; port: number } | null)[], log: Logger): Promise<void> {
  const device = running.device;
  device.setPrivateKey(config.wireguard.privateKey);
  if (config.wireguard.firewallMark) device.setFwmark(config.wireguard.firewallMark);
  config.wireguard.peers.forEach((peer, i) => {
    device.createPeer(peer.publicKey);
    device.setPresharedKey(peer.publicKey, peer.presharedKey);
    const ep = endpoints[i];
    if (ep) device.setEndpoint(peer.publicKey, ep);
    for (const p of peer.allowedIps) device.addAllowedIp(peer.publicKey, p);
    if (peer.persistentKeepaliveSec) device.setPersistentKeepalive(peer.publicKey, peer.persistentKeepaliveSec);
    device.peerDone(peer.publicKey);
  });
  const ifname = device.name;
  for (const a of config.addresses) await addAddress(ifname, `${formatIp(a.address)}/${a.bits}`);
  await setLinkUp(ifname);
  const { routes, skipped } = routesFor(config);
  for (const r of routes) await addRoute(ifname, r);
  if (skipped.length) log.warn({ skipped }, 'default routes in allowedIPs are not installed (use policy routing for a full tunnel)');
  log.info({ peers: config.wireguard.peers.length, addresses: config.addresses.map((a) => `${formatIp(a.address)}/${a.bits}`), routes }, 'device configured');
}

export const upCommand: Command = {
  summary: 'static WireGuard device from a YAML file',
  async run(argv) {
    let values;
    try {
      ({ values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } }, strict: true }));
    } catch (err) {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
      return 2;
    }
    if (values.help) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    if (!values.config) {
      process.stderr.write(`kubespand up: --config is required\n${USAGE}\n`);
      return 2;
    }
    // everything that can fail on bad input happens before the host is touched
    let config: WireguardDeviceConfig;
    let endpoints: ({ address: string; port: number } | null)[];
    try {
      config = await parseWireguardConfigFile(values.config);
      // the file holds the private key: refuse it when others can read it (wg warns about world-accessible keys)
      refuseOpenMode(values.config, 'the WireGuard private key', 0o007);
      endpoints = await Promise.all(config.wireguard.peers.map((p) => (p.endpoint ? resolveConfigEndpoint(p.endpoint) : null)));
    } catch (err) {
      process.stderr.write(err instanceof ConfigError ? `${err.message}\n` : `kubespand up: ${err instanceof Error ? err.message : String(err)}\n`);
      return 1;
    }
    const log = createLogger({ name: 'kubespand-up' });
    let running: RunningDevice;
    try {
      running = await startDevice({ ifname: config.interface, mtu: config.mtu, log, listenPort: config.wireguard.listenPort });
    } catch (err) {
      process.stderr.write(`kubespand up: ${err instanceof Error ? err.message : String(err)}\n`);
      return 1;
    }
    const unhook = stopOnSignals(running);
    try {
      await configure(running, config, endpoints, log.child({ interface: running.device.name }));
    } catch (err) {
      process.stderr.write(`kubespand up: ${err instanceof Error ? err.message : String(err)}\n`);
      await running.stop('configuration failed');
      unhook();
      return 1;
    }
    process.stdout.write(`${running.device.name} is up (listening on UDP ${running.device.getState().listenPort})\n`);
    const reason = await running.stopped;
    unhook();
    log.info({ reason }, 'device stopped');
    return 0;
  },
};
