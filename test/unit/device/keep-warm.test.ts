/** Keep-warm: the pure decision, the setting, the warm pair's tick, and the device's next-activity callback. */
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { KEEPWARM_DEFAULT_PERIOD_MS, KEEPWARM_WINDOW_MS, keepWarmPeriodFromEnv, keepWarmStep, keepWarmWake } from '../../../src/device/keep-warm.js';
import { WarmPair } from '../../../src/device/warmup.js';
import { WireguardDevice } from '../../../src/device/wireguard-device.js';
import { ChannelTun } from '../../../src/tun/channel-tun.js';
import { createChannelBindPair } from '../../../src/bind/channel-bind.js';
import { nodeCrypto } from '../../../src/noise/crypto-node.js';
import { nobleCrypto } from '../../../src/noise/crypto-noble.js';
import { nativeCrypto } from '../../../src/noise/crypto-native.js';
import { corruptingCrypto } from '../../support/broken-crypto.js';
import { REJECT_AFTER_TIME_MS, REKEY_AFTER_TIME_MS } from '../../../src/noise/constants.js';
import { ManualClock, SeededRandom } from '../../support/clock.js';
import { ipv4Packet } from '../../support/core-pair.js';

describe('keepWarmStep', () => {
  it('ticks within the window after live traffic, skips when live packets ran the path, and goes idle after', () => {
    const s = keepWarmWake(1000, 7);
    expect(keepWarmStep(s, 1003, 7)).toEqual({ tick: true, keep: true });
    // live packets since the last look: the path is warm already, no tick, and the window restarts
    expect(keepWarmStep(s, 1006, 9)).toEqual({ tick: false, keep: true });
    expect(s).toEqual({ lastCount: 9, lastLiveAt: 1006 });
    expect(keepWarmStep(s, 1006 + KEEPWARM_WINDOW_MS, 9)).toEqual({ tick: true, keep: true });
    expect(keepWarmStep(s, 1007 + KEEPWARM_WINDOW_MS, 9)).toEqual({ tick: false, keep: false });
  });

  it('takes the window as a parameter', () => {
    const s = keepWarmWake(0, 0);
    expect(keepWarmStep(s, 50, 0, 40)).toEqual({ tick: false, keep: false });
  });
});

describe('KUBESPAND_KEEPWARM', () => {
  it('is off unless asked for; "on" is the default period; a number is the period in ms', () => {
    for (const v of [undefined, '', 'off', '0']) expect(keepWarmPeriodFromEnv(v)).toBeNull();
    expect(keepWarmPeriodFromEnv('on')).toBe(KEEPWARM_DEFAULT_PERIOD_MS);
    expect(keepWarmPeriodFromEnv('1')).toBe(1);
    expect(keepWarmPeriodFromEnv('1000')).toBe(1000);
  });

  it('refuses anything else, naming the variable and the value', () => {
    for (const v of ['1001', '-3', '2.5', '3ms', 'yes', ' 3']) {
      expect(() => keepWarmPeriodFromEnv(v)).toThrow(`KUBESPAND_KEEPWARM: expected "off", "on" or a period in whole milliseconds from 1 to 1000, got ${JSON.stringify(v)}`);
    }
  });
});

describe('WarmPair.tick', () => {
  for (const crypto of [nativeCrypto, nodeCrypto, nobleCrypto]) {
    for (const packetsHaveRoom of [true, false]) {
      it(`moves its packet unchanged, both ways and both families, through rekeys (${crypto.name}, room ${packetsHaveRoom})`, () => {
        const clock = new ManualClock();
        const pair = new WarmPair({ crypto, clock, random: new SeededRandom(3), mtu: 1420, packetsHaveRoom });
        for (let i = 0; i < 40; i++) expect(pair.tick(), `tick ${i}`).toBe(true);
        const first = pair.a.getPeer(pair.b.getPublicKey()!)!.keypairs.current;
        expect(first).not.toBeNull();
        // past REKEY_AFTER_TIME the initiator re-handshakes inside a tick; past REJECT_AFTER_TIME the old
        // session is unusable: the ticks go on, on a new session, like a live peer's would
        for (const ms of [REKEY_AFTER_TIME_MS + 1000, REJECT_AFTER_TIME_MS]) {
          clock.advance(ms);
          for (let i = 0; i < 8; i++) expect(pair.tick(), `after ${ms} ms, tick ${i}`).toBe(true);
        }
        expect(pair.a.getPeer(pair.b.getPublicKey()!)!.keypairs.current).not.toBe(first);
      });
    }
  }

  it('returns false when the provider corrupts what it opens', () => {
    const broken = corruptingCrypto();
    const pair = new WarmPair({ crypto: broken, clock: new ManualClock(), random: new SeededRandom(4), mtu: 1420 });
    expect(pair.tick()).toBe(false);
  });
});

describe('WireguardDevice.onNextActivity', () => {
  it('calls back once, after the next batch from the TUN or the network, and can be armed again', async () => {
    const { a, b, network } = createChannelBindPair();
    const tun = new ChannelTun({ delivery: 'sync' });
    const device = new WireguardDevice({ name: 'kw0', tun, bind: a, crypto: nodeCrypto, clock: new ManualClock(), random: new SeededRandom(5), log: pino({ level: 'silent' }) });
    await device.start(0);
    await b.open(0);
    let calls = 0;
    const seen: number[] = [];
    device.onNextActivity(() => {
      calls++;
      seen.push(device.stats.packetsFromTun);
    });
    tun.inject(ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(8))); // no peer: dropped, but it is traffic
    expect(calls).toBe(1);
    expect(seen).toEqual([1]); // after the batch was counted and handled
    tun.inject(ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(8)));
    expect(calls).toBe(1); // once
    device.onNextActivity(() => calls++);
    b.send(a.endpoint, new Uint8Array([9, 9, 9])); // garbage from the network: also traffic
    network.deliverAll();
    expect(calls).toBe(2);
    // a callback that throws is the device's internal error, not the packet path's
    device.onNextActivity(() => {
      throw new Error('boom');
    });
    tun.inject(ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(8)));
    expect(device.internalErrors).toBe(1);
    await device.close();
  });
});
