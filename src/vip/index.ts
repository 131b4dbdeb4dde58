/**
 * The shared virtual IP (issue 7): settings, and `startVip`, which resolves the link (by name or by
 * device selector), connects to etcd and starts the election. The daemon starts it after its
 * dataplane is up and stops it first on shutdown.
 */
import type { Logger } from '../log.js';
import { listNetLinks } from '../netdev/sysfs.js';
import { selectOneLink, type DeviceSelector } from '../netdev/selector.js';
import { LinuxVipAddress } from './address.js';
import { EtcdGateway } from './etcd-gateway.js';
import { VipManager } from './manager.js';

export { VipManager, campaignKey, type VipState, type VipView } from './manager.js';
export { MemoryElectionStore, type ElectionStore, type CampaignResult } from './election-store.js';
export { EtcdGateway, EtcdError, type EtcdClientOptions } from './etcd-gateway.js';
export { LinuxVipAddress, type VipAddress } from './address.js';

/** The VIP part of DaemonSettings (src/kubespan/settings.ts maps the config to it). */
export interface VipSettings {
  ip: string;
  /** Exactly one of link and deviceSelector. */
  link?: string;
  deviceSelector?: DeviceSelector;
  /** This node's name in the election. */
  owner: string;
  etcd: { endpoints: string[]; caFile?: string; certFile?: string; keyFile?: string };
  leaseTtlSec: number;
}

/** The link that carries the VIP: the named one (which must exist) or the one the selector matches. */
export async function resolveVipLink(settings: Pick<VipSettings, 'link' | 'deviceSelector'>, sysfsRoot?: string): Promise<string> {
  const links = await listNetLinks(sysfsRoot === undefined ? {} : { root: sysfsRoot });
  if (settings.deviceSelector) return selectOneLink(settings.deviceSelector, links, 'machine.network.vip.deviceSelector').name;
  const name = settings.link ?? '';
  if (!links.some((l) => l.name === name)) {
    throw new Error(`machine.network.vip.link: no link named ${JSON.stringify(name)} (links: ${links.map((l) => l.name).join(', ') || 'none'})`);
  }
  return name;
}

/** Resolves the link, connects to etcd and starts the election in the background. */
export async function startVip(settings: VipSettings, log: Logger): Promise<VipManager> {
  const link = await resolveVipLink(settings);
  const store = new EtcdGateway(settings.etcd);
  const manager = new VipManager({
    ip: settings.ip,
    link,
    self: settings.owner,
    leaseTtlSec: settings.leaseTtlSec,
    store,
    address: new LinuxVipAddress(settings.ip, link, log),
    log,
  });
  log.info({ vip: settings.ip, link, etcd: settings.etcd.endpoints, leaseTtlSec: settings.leaseTtlSec }, 'vip: joining the election');
  await manager.start();
  return manager;
}

/** The VIP as a host prefix, for excluding it from the node's own advertised addresses. */
export function vipPrefixes(vip: Pick<VipSettings, 'ip'> | undefined): string[] {
  if (!vip) return [];
  return [`${vip.ip}/${vip.ip.includes(':') ? 128 : 32}`];
}
