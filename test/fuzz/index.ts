/** Every fuzz target, for `bench/fuzz/run.ts` (one per parser that takes outside bytes). */
import type { AnyFuzzTarget } from './target.js';
import { deviceDatagramTarget, parseMessageTarget } from './wireguard-targets.js';
import { uapiSessionTarget } from './uapi-target.js';
import { nodeConfigTarget, proxyUrlTarget, wireguardConfigTarget } from './config-targets.js';
import { discoveryBlobsTarget, discoveryGrpcTarget } from './discovery-targets.js';
import { controlRequestTarget } from './control-target.js';

export { runTarget, type AnyFuzzTarget, type FuzzTarget, type RunResult } from './target.js';

export const FUZZ_TARGETS: readonly AnyFuzzTarget[] = [
  parseMessageTarget,
  deviceDatagramTarget,
  uapiSessionTarget,
  wireguardConfigTarget,
  nodeConfigTarget,
  proxyUrlTarget,
  discoveryGrpcTarget,
  discoveryBlobsTarget,
  controlRequestTarget,
];
