/** Public surface of the UDP shell. */
export {
  canonicalAddress,
  endpointFamily,
  endpointKey,
  endpointsEqual,
  formatEndpoint,
  normalizeReceivedAddress,
  parseEndpoint,
  validateMark,
  validatePort,
  type Bind,
  type Datagram,
  type Endpoint,
} from './bind.js';
export { UdpBind, socketFd, type UdpBindOptions, type UdpBindStats } from './udp-bind.js';
export { ChannelBind, ChannelNetwork, createChannelBindPair, type ChannelBindPair, type ChannelNetworkOptions, type ChannelNetworkStats } from './channel-bind.js';
