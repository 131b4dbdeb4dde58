/** Public surface of the TUN shell. */
export { DEFAULT_TUN_MTU, type TunDevice, type TunStats } from './tun.js';
export { LinuxTun, openLinuxTun, tunFromFd, type LinuxTunOptions } from './tun-linux.js';
export { ChannelTun, type ChannelTunOptions } from './channel-tun.js';
export * from './packets.js';
export {
  addAddress,
  addRoute,
  delAddress,
  delRoute,
  deleteLink,
  linkExists,
  linkInfo,
  listAddresses,
  setLinkDown,
  setLinkMtu,
  setLinkMtuSync,
  setLinkUp,
  validateCidr,
  validateIfname,
  type LinkInfo,
  type NetnsOption,
  type RouteOptions,
} from './link.js';
