/**
 * The in-process peers of the scale bench: N DeviceCores in this one process, each with its own UDP
 * socket on its own loopback address (bench/lib/scale-net.ts), all knowing the hub's public key
 * and none knowing its endpoint (pure responders). Started by bench/scale.ts inside the hub's
 * namespace; talks JSON lines on stdout and reads commands on stdin:
 *
 *   → {"kind":"ready","publicKeys":[…]}   once every socket is bound
 *   ← report                                → {"kind":"report","completions":[epoch ms | null, …], …}
 *   ← exit
 *
 * A completion is the responder's `handshake-complete` event: the hub's first transport packet
 * (its keepalive) decrypted with the new session, i.e. the handshake confirmed end to end.
 *
 *   node dist/bench/scale-peers.js --count 1000 --hub-public BASE64
 */
import { createSocket, type Socket } from 'node:dgram';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { DeviceCore } from '../src/noise/device.js';
import { nodeCrypto } from '../src/noise/crypto-node.js';
import { parsePrefix } from '../src/noise/allowed-ips.js';
import { TIMER_TICK_MS } from '../src/noise/constants.js';
import { generatePrivateKey, keyFromBase64, keyToBase64 } from '../src/noise/keys.js';
import { systemClock, systemRandom } from '../src/device/system.js';
import { HUB_TUNNEL, PEER_PORT, peerOuter, type PeersMessage } from './lib/scale-net.js';
import { processCpuSeconds, processMemory } from './lib/proc.js';

function send(msg: PeersMessage): void {
  process.stdout.write(JSON.stringify(msg) + '\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { count: { type: 'string' }, 'hub-public': { type: 'string' } }, strict: true });
  const count = Number(values.count);
  if (!Number.isInteger(count) || count < 1) throw new Error(`--count: expected a positive whole number, got ${JSON.stringify(values.count)}`);
  if (!values['hub-public']) throw new Error('--hub-public: missing (the hub device public key, base64)');
  const hubPublic = keyFromBase64(values['hub-public'], '--hub-public');
  const hubPrefix = parsePrefix(`${HUB_TUNNEL}/32`);

  const completions: (number | null)[] = new Array<number | null>(count).fill(null);
  let initiationsSeen = 0;
  const sockets: Socket[] = [];
  const cores: DeviceCore[] = [];
  const publicKeys: string[] = [];
  for (let i = 0; i < count; i++) {
    const socket = createSocket({ type: 'udp4' });
    const core = new DeviceCore({
      crypto: nodeCrypto,
      clock: systemClock,
      random: systemRandom,
      outputs: {
        send: (to, data) => socket.send(data, to.port, to.address),
        deliver: () => undefined,
        event: (e) => {
          if (e.kind === 'handshake-complete' && completions[i] === null) completions[i] = performance.timeOrigin + performance.now();
        },
      },
    });
    core.setPrivateKey(generatePrivateKey(systemRandom));
    const hub = core.addPeer(hubPublic);
    core.allowedIps.insert(hubPrefix, hub);
    socket.on('message', (msg, rinfo) => {
      if (msg[0] === 1) initiationsSeen++;
      core.handleDatagram(new Uint8Array(msg.buffer, msg.byteOffset, msg.length), { address: rinfo.address, port: rinfo.port });
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(PEER_PORT, peerOuter(i), () => {
        socket.off('error', reject);
        resolve();
      });
    });
    sockets.push(socket);
    cores.push(core);
    publicKeys.push(keyToBase64(core.getPublicKey()!));
  }
  const ticker = setInterval(() => {
    for (const c of cores) c.tick();
  }, TIMER_TICK_MS);
  send({ kind: 'ready', publicKeys });

  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    const cmd = line.trim();
    if (cmd === 'report') {
      send({ kind: 'report', completions, initiationsSeen, cpuSeconds: processCpuSeconds(process.pid), rss: processMemory(process.pid).rss });
    } else if (cmd === 'exit') {
      break;
    }
  }
  clearInterval(ticker);
  for (const s of sockets) s.close();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    send({ kind: 'error', message: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  },
);
