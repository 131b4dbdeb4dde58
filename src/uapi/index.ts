/** Public surface of the cross-platform UAPI (spec/wireguard.md §11). */
export {
  applySet,
  createUapiSession,
  formatGet,
  formatUapiEndpoint,
  parseUapiEndpoint,
  UAPI_MAX_LINE_BYTES,
  UAPI_MAX_SET_REQUEST_BYTES,
  type UapiSession,
  type UapiSessionResult,
} from './protocol.js';
export { checkInterfaceName, DEFAULT_UAPI_DIR, startUapiServer, type UapiServer, type UapiServerOptions } from './server.js';
export {
  silentUapiLog,
  UAPI_ERRNO,
  UapiError,
  type Endpoint,
  type Prefix,
  type UapiDevice,
  type UapiDeviceState,
  type UapiLog,
  type UapiPeer,
} from './types.js';
