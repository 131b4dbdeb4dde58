/** The start-up warm-up: real handshakes and packets through a private pair, a provider self-test, cancellable. */
import { describe, expect, it } from 'vitest';
import { warmUpDataPath } from '../../../src/device/warmup.js';
import { systemClock, systemRandom } from '../../../src/device/system.js';
import { nodeCrypto } from '../../../src/noise/crypto-node.js';
import { nobleCrypto } from '../../../src/noise/crypto-noble.js';
import { nativeCrypto } from '../../../src/noise/crypto-native.js';
import { corruptingCrypto } from '../../support/broken-crypto.js';

const base = { clock: systemClock, random: systemRandom, mtu: 1420, yieldFn: () => Promise.resolve() };

describe('warmUpDataPath', () => {
  for (const crypto of [nativeCrypto, nodeCrypto, nobleCrypto]) {
    it(`completes every handshake and moves every packet unchanged (${crypto.name})`, async () => {
      const r = await warmUpDataPath({ ...base, crypto, handshakes: 3, packets: 320 });
      expect(r).toMatchObject({ handshakes: 3, packets: 320, mismatches: 0, cancelled: false });
      expect(r.elapsedMs).toBeGreaterThan(0);
    });
  }

  it('works at a small MTU (packets larger than it are sent at the MTU)', async () => {
    const r = await warmUpDataPath({ ...base, crypto: nodeCrypto, handshakes: 1, packets: 64, mtu: 576 });
    expect(r).toMatchObject({ handshakes: 1, packets: 64, mismatches: 0 });
  });

  it('reports a provider whose transport AEAD corrupts data as mismatches (or failed handshakes)', async () => {
    // seals correctly but flips a plaintext bit after a successful open: what a broken accelerator could do
    const broken = corruptingCrypto();
    const r = await warmUpDataPath({ ...base, crypto: broken, handshakes: 1, packets: 64 });
    expect(r.mismatches).toBeGreaterThan(0);
  });

  it('stops at the next slice once cancelled, and yields between slices', async () => {
    let yields = 0;
    let cancel = false;
    const r = await warmUpDataPath({
      ...base,
      crypto: nodeCrypto,
      handshakes: 2,
      packets: 100_000,
      sliceMs: 0,
      yieldFn: () => {
        yields++;
        if (yields === 5) cancel = true;
        return Promise.resolve();
      },
      cancelled: () => cancel,
    });
    expect(r.cancelled).toBe(true);
    expect(yields).toBe(5);
    expect(r.packets).toBeLessThan(100_000);
  });
});
