#!/usr/bin/env node
// Test helper, run inside a network namespace by test/netns/tun.test.ts, exercising the project's
// TypeScript TUN stack (transpiled by test/support/ts-child.ts into <tree>):
//   node tun-ts-echo.mjs <tree> open|fd <ifname> <mtu> <v4 cidr> <v6 cidr> <extra v4 route>
// "open" uses openLinuxTun(ifname); "fd" opens the TUN with the addon and wraps the fd with tunFromFd
// (the WG_TUN_FD path). Configures addresses and a route with link.ts (each twice: idempotent), then
// answers ICMP echo requests via LinuxTun.onPackets/write. SIGUSR2 blocks the event loop for a second
// (so a burst piles up in the kernel queue and must arrive as one batch). Prints one line per event.
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';

const [tree, mode, ifname, mtuText, cidr4, cidr6, route4] = process.argv.slice(2);
const load = (rel) => import(pathToFileURL(join(tree, rel)).href);
const { openLinuxTun, tunFromFd } = await load('src/tun/tun-linux.js');
const link = await load('src/tun/link.js');
const { buildEchoReplyFor } = await load('src/tun/packets.js');
const { loadNative } = await load('src/native.js');

const mtu = Number(mtuText);
const tun = mode === 'fd' ? tunFromFd(loadNative().tunOpen(ifname).fd, undefined, mtu) : openLinuxTun(ifname, { mtu });
for (let i = 0; i < 2; i++) {
  await link.addAddress(tun.name, cidr4);
  await link.addAddress(tun.name, cidr6);
  await link.setLinkUp(tun.name);
  await link.addRoute(tun.name, route4, { metric: 50 });
}
const info = await link.linkInfo(tun.name);
const addrs = await link.listAddresses(tun.name);

let maxBatch = 0;
tun.onPackets((packets) => {
  maxBatch = Math.max(maxBatch, packets.length);
  const replies = packets.map((p) => buildEchoReplyFor(p)).filter((r) => r !== undefined);
  if (replies.length > 0) {
    tun.write(replies);
    console.log(`batch ${packets.length} replies ${replies.length} written ${tun.stats.packetsWritten} max ${maxBatch}`);
  }
});
tun.onClose((err) => {
  console.log(`closed ${err ? err.message : 'clean'} code=${err?.cause?.code ?? ''}`);
  console.log(`stats ${JSON.stringify(tun.stats)}`);
  process.exit(0);
});
process.on('SIGUSR2', () => {
  console.log('paused');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
  console.log('resumed');
});
process.on('SIGTERM', () => tun.close());
console.log(`ready name=${tun.name} mtu=${tun.mtu} link-mtu=${info?.mtu} up=${info?.up} addrs=${addrs.join(',')}`);
