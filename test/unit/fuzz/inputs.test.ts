/**
 * Property tests of every other parser that takes outside bytes: UAPI requests, config files,
 * discovery protobuf and encrypted blobs, control-socket requests (contracts in test/fuzz/*).
 * A modest count here; `node dist/bench/fuzz/run.js` runs a million per target.
 */
import { describe, expect, it } from 'vitest';
import { runTarget } from '../../fuzz/target.js';
import { uapiSessionTarget } from '../../fuzz/uapi-target.js';
import { nodeConfigTarget, proxyUrlTarget, wireguardConfigTarget } from '../../fuzz/config-targets.js';
import { discoveryBlobsTarget, discoveryGrpcTarget } from '../../fuzz/discovery-targets.js';
import { controlRequestTarget } from '../../fuzz/control-target.js';
import { fuzzRuns, fuzzSeed } from './fuzz-env.js';

describe('fuzz: inputs from clients, files and the discovery service', () => {
  it('UAPI sessions: well-formed replies, chunking changes nothing, key values never logged', async () => {
    expect((await runTarget(uapiSessionTarget, { numRuns: fuzzRuns(1_500), seed: fuzzSeed() })).cases).toBeGreaterThan(0);
  });

  it('up config: a config or a ConfigError; private and preshared keys never echoed', async () => {
    expect((await runTarget(wireguardConfigTarget, { numRuns: fuzzRuns(1_000), seed: fuzzSeed() })).cases).toBeGreaterThan(0);
  });

  it('node config: a config or a ConfigError; cluster secret and proxy passwords never echoed', async () => {
    expect((await runTarget(nodeConfigTarget, { numRuns: fuzzRuns(1_000), seed: fuzzSeed() })).cases).toBeGreaterThan(0);
  });

  it('proxy URLs: a route or an error naming the key; the password never in a message or the display form', async () => {
    expect((await runTarget(proxyUrlTarget, { numRuns: fuzzRuns(3_000), seed: fuzzSeed() })).cases).toBeGreaterThan(0);
  });

  it('discovery gRPC decoders: server side never throws, state stays bounded; client side throws only Errors', async () => {
    expect((await runTarget(discoveryGrpcTarget, { numRuns: fuzzRuns(3_000), seed: fuzzSeed() })).cases).toBeGreaterThan(0);
  });

  it('discovery blobs: BlobError or a well-formed record; modified sealed blobs never open; round trips', async () => {
    expect((await runTarget(discoveryBlobsTarget, { numRuns: fuzzRuns(3_000), seed: fuzzSeed() })).cases).toBeGreaterThan(0);
  });

  it('control socket requests: always an ok/error reply; handlers only for well-formed ops', async () => {
    expect((await runTarget(controlRequestTarget, { numRuns: fuzzRuns(3_000), seed: fuzzSeed() })).cases).toBeGreaterThan(0);
  });
});
