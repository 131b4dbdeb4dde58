/**
 * A plaintext "tunnel" over kubespand's own shells, for the latency floor (bench/latency.ts --floor):
 * packets read from a TUN go out unchanged as UDP datagrams to the other end, datagrams received go to
 * the TUN. The same native TUN reader, UDP bind (recvmmsg reader, sendmmsg) and Node event loop as the
 * daemon, and no protocol: no crypto, no routing, no timers. What it pings at is what Node and the
 * shells cost; the rest of kubespand's round trip is the protocol core.
 *
 *   node dist/bench/null-tunnel.js IFNAME ADDRESS/PREFIX LISTEN-PORT PEER-ADDRESS PEER-PORT
 *
 * Creates the TUN, gives it the address, brings it up, prints "ready", and runs until SIGTERM/SIGINT.
 * Never in the product: a bench tool with no authentication at all.
 */
import { execFileSync } from 'node:child_process';
import { openLinuxTun } from '../src/tun/tun-linux.js';
import { UdpBind } from '../src/bind/udp-bind.js';

const [ifname, address, port, peerAddress, peerPort] = process.argv.slice(2);
if (!ifname || !address || !port || !peerAddress || !peerPort) {
  process.stderr.write('usage: null-tunnel IFNAME ADDRESS/PREFIX LISTEN-PORT PEER-ADDRESS PEER-PORT\n');
  process.exit(2);
}
const tun = openLinuxTun(ifname, { mtu: 1420 });
execFileSync('ip', ['addr', 'add', address, 'dev', tun.name]);
execFileSync('ip', ['link', 'set', tun.name, 'up']);
const bind = new UdpBind();
const peer = { address: peerAddress, port: Number(peerPort) };
bind.onDatagrams((batch) => tun.write(batch.map((d) => d.data)));
tun.onPackets((packets) => bind.sendBatch(peer, packets));
await bind.open(Number(port));
const stop = (): void => {
  tun.close();
  void bind.close().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
process.stdout.write('ready\n');
